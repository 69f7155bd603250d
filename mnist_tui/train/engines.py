"""How one training step executes: eagerly, or replayed from a captured CUDA graph.

On a GPU, MNIST-sized steps are launch-bound: a LeNet-5 step at batch 64 is ~1.5 ms of
Python and kernel launches for well under 0.2 ms of GPU work. Capturing the whole step
(batch gather, augmentation, forward, backward, optimizer update, metric accumulation)
as one CUDA graph turns it into a single launch. Everything the graph touches lives in
static buffers; the host only copies the next batch's indices and replays.

Both engines compute the same thing; `GraphEngine` falls back to eager steps for the
last partial batch, for its first few (warm-up) steps, and for good if capture fails.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data.augment import augment_batch
from mnist_tui.data.device import DeviceData

# Optimizers whose step can live in a CUDA graph (state on the device, no host syncs).
GRAPHABLE_OPTIMIZERS = ("sgd", "adam", "adadelta", "rmsprop")


class EagerEngine:
    """Plain PyTorch steps; the loss and accuracy sums stay on the device."""

    name = "eager"

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        spec: ExperimentSpec,
        data: DeviceData,
        generator: torch.Generator | None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.spec = spec
        self.data = data
        self.generator = generator
        device = data.train_x.device
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.note = ""

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()

    def _forward_backward(self, idx: torch.Tensor) -> None:
        d, spec = self.data, self.spec
        xb = augment_batch(
            d.train_x[idx], spec.augment, self.generator, d.background, d.pixel_scale
        )
        yb = d.train_y[idx]
        out = self.model(xb)
        loss = F.cross_entropy(out, yb, label_smoothing=spec.train.label_smoothing)
        loss.backward()
        self.optimizer.step()
        self.loss_sum.add_(loss.detach() * idx.shape[0])
        self.correct.add_((out.argmax(1) == yb).sum())

    def step(self, idx: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._forward_backward(idx)


class GraphEngine(EagerEngine):
    """Whole-step CUDA graph for full batches; eager for the rest."""

    name = "cuda-graph"
    warmup_steps = 3  # eager steps (real training steps) before capture, as CUDA requires

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generator = None  # graphs capture the default generator's Philox state
        self.batch_size = self.spec.train.batch_size
        self.static_idx = torch.zeros(
            self.batch_size, dtype=torch.long, device=self.loss_sum.device
        )
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm = 0
        self.disabled = False
        self.side = torch.cuda.Stream(device=self.loss_sum.device)
        self.captured_lrs: list[float] = []

    def reset(self) -> None:
        super().reset()
        # learning rates are baked into the captured kernels: a schedule change re-captures
        if self.graph is not None and self._lrs() != self.captured_lrs:
            self.graph = None

    def _lrs(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def step(self, idx: torch.Tensor) -> None:
        if self.disabled or idx.shape[0] != self.batch_size:
            super().step(idx)
            return
        if self.graph is not None:
            self.static_idx.copy_(idx, non_blocking=True)
            self.graph.replay()
            return
        if self.warm < self.warmup_steps:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                super().step(idx)
            torch.cuda.current_stream().wait_stream(self.side)
            self.warm += 1
            return
        self._capture(idx)

    def _capture(self, idx: torch.Tensor) -> None:
        self.static_idx.copy_(idx)
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            torch.cuda.synchronize()
            with torch.cuda.graph(graph):
                self._forward_backward(self.static_idx)
        except Exception as exc:  # anything uncapturable: carry on eagerly, say why
            self.disabled = True
            self.note = f"CUDA graph capture failed, trained eagerly: {type(exc).__name__}: {exc}"
            torch.cuda.synchronize()
            super().step(idx)
            return
        self.graph = graph
        self.captured_lrs = self._lrs()
        graph.replay()  # capture records the work without running it


def make_engine(
    engine: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    spec: ExperimentSpec,
    data: DeviceData,
    generator: torch.Generator,
) -> EagerEngine:
    """`auto`: a CUDA graph where the device and optimizer allow it, else eager."""
    device = data.train_x.device
    use_graph = (
        engine in ("auto", "graph")
        and device.type == "cuda"
        and spec.optim.name in GRAPHABLE_OPTIMIZERS
    )
    if use_graph:
        return GraphEngine(model, optimizer, spec, data, generator)
    eager = EagerEngine(model, optimizer, spec, data, generator)
    if engine == "graph" and device.type == "cuda":
        eager.note = f"{spec.optim.name} cannot be captured in a CUDA graph; trained eagerly"
    return eager
