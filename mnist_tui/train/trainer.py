"""The training loop: one experiment, one seed, one device; emits plain-data events.

Data lives on the device (see data.device), so an epoch is `randperm` + indexing + the
step. Host syncs happen once per epoch (metrics) and once per step report (about 50 an
epoch, reading the engine's on-device sums), never per batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnist_tui import models
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data.device import DeviceData, batch_indices
from mnist_tui.status import RunStatus
from mnist_tui.train.allocator import keep_freed_memory
from mnist_tui.train.engines import GRAPHABLE_OPTIMIZERS, make_engine
from mnist_tui.train.events import (
    BatchProgress,
    EpochEnded,
    EpochMetrics,
    Event,
    RunEnded,
    RunStarted,
    StepReport,
)
from mnist_tui.train.setup import (
    CPU_EVAL_BATCH,
    best_metric,
    device_name,
    make_optimizer,
    make_scheduler,
    monitored_metric,
    per_step_schedule,
    prefers_channels_last,
)

EventSink = Callable[[Event], None]
Checkpointer = Callable[[str, dict[str, Any]], None]


class Cancelled(Exception):
    """Raised inside the loop when the caller asked the run to stop."""


# step reports an epoch, and at most this many over a run, so that steps.jsonl stays
# small (~120 bytes a report: a 100-epoch run writes 5,000 reports, ~600 kB)
STEP_REPORTS = 50
MAX_STEP_REPORTS = 5000


def report_interval(steps_per_epoch: int, epochs: int, per_epoch: int | None = None) -> int:
    """Steps between two step reports; 0 turns them off."""
    if per_epoch == 0 or steps_per_epoch <= 0:
        return 0
    want = STEP_REPORTS if per_epoch is None else per_epoch
    want = max(1, min(want, MAX_STEP_REPORTS // max(epochs, 1)))
    return max(1, math.ceil(steps_per_epoch / want))


# kept per epoch in metrics.jsonl, left out of a summary's "final" and "best"
PER_EPOCH_ONLY = ("test_per_class", "test_confusion")


@dataclass
class Evaluation:
    loss: float
    acc: float
    confusion: torch.Tensor  # (classes, classes), rows = true, columns = predicted

    def per_class(self) -> list[float]:
        totals = self.confusion.sum(1).clamp(min=1)
        return (self.confusion.diag().double() / totals).tolist()


@torch.inference_mode()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, num_classes: int = 10
) -> Evaluation:
    """Loss, accuracy and confusion matrix in large batches (one host sync at the end)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    confusion = torch.zeros(num_classes * num_classes, device=x.device, dtype=torch.long)
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        out = model(xb)
        loss_sum += F.cross_entropy(out.float(), yb, reduction="sum").double()
        confusion += torch.bincount(yb * num_classes + out.argmax(1), minlength=num_classes**2)
    model.train(was_training)
    confusion = confusion.view(num_classes, num_classes).cpu()
    n = max(len(y), 1)
    return Evaluation(
        loss=float(loss_sum) / n,
        acc=float(confusion.diag().sum()) / n,
        confusion=confusion,
    )


@dataclass
class TrainState:
    """Everything that changes during a run, enough to resume it."""

    epoch: int = 0  # epochs finished
    best_epoch: int = 0
    best_value: float | None = None
    history: list[EpochMetrics] = field(default_factory=list)


def _better(metric: str, value: float, best: float | None) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if metric.endswith("loss") else value > best


class Trainer:
    """Trains one spec on one device; `run()` emits events and returns the summary."""

    def __init__(
        self,
        spec: ExperimentSpec,
        data: DeviceData,
        device: torch.device,
        run_id: str = "",
        on_event: EventSink | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint: Checkpointer | None = None,
        progress_every: int = 20,
        engine: str = "auto",
        step_reports: int | None = None,
    ) -> None:
        """`step_reports`: step reports an epoch (None: about STEP_REPORTS; 0: none)."""
        self.spec = spec
        self.data = data
        self.device = device
        self.run_id = run_id
        self.emit = on_event or (lambda _e: None)
        self.should_stop = should_stop or (lambda: False)
        self.checkpoint = checkpoint or (lambda _kind, _state: None)
        self.progress_every = max(1, progress_every)
        self.num_classes = len(data.classes)

        torch.manual_seed(spec.train.seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.model = spec.build_model().to(device)
        if device.type == "cpu":
            keep_freed_memory()
        if device.type == "cpu" and prefers_channels_last(self.model):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.per_step = per_step_schedule(spec)
        if self.per_step:
            engine = "eager"  # a CUDA graph bakes in the learning rate; this one changes each step
        graphable = (
            engine in ("auto", "graph")
            and device.type == "cuda"
            and spec.optim.name in GRAPHABLE_OPTIMIZERS
        )
        self.optimizer = make_optimizer(
            spec,
            self.model.parameters(),
            capturable=graphable,
            foreach=True if device.type == "cpu" else None,
        )
        self.scheduler = make_scheduler(spec, self.optimizer)
        self.generator = torch.Generator(device=device).manual_seed(spec.train.seed)
        self.engine = make_engine(engine, self.model, self.optimizer, spec, data, self.generator)
        self.state = TrainState()
        self.best_metric = best_metric(spec)
        self.parameters = models.count_parameters(self.model)
        self.report_every = report_interval(self.steps_per_epoch(), spec.train.epochs, step_reports)

    # -- resumable state -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda"
            else None,
            "epoch": self.state.epoch,
            "best_epoch": self.state.best_epoch,
            "best_value": self.state.best_value,
            "history": [m.to_json() for m in self.state.history],
            "spec": self.spec.to_toml(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.state = TrainState(
            epoch=state["epoch"],
            best_epoch=state["best_epoch"],
            best_value=state["best_value"],
            history=[EpochMetrics.from_json(m) for m in state["history"]],
        )

    # -- the loop --------------------------------------------------------------------

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train_y) / self.spec.train.batch_size)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training set; returns (mean loss, accuracy)."""
        self.model.train()
        n = len(self.data.train_y)
        steps = self.steps_per_epoch()
        engine = self.engine
        engine.reset()
        batch = self.spec.train.batch_size
        batches = batch_indices(n, batch, self.generator, self.device)
        every = self.report_every
        seen = (0.0, 0.0, 0)  # loss sum, correct, images at the previous report
        for step, idx in enumerate(batches, start=1):
            engine.step(idx)
            if self.per_step and self.scheduler is not None:
                self.scheduler.step()
            if every and (step % every == 0 or step == steps):
                seen = self._report(epoch, step, steps, min(step * batch, n), seen)
            if step % self.progress_every == 0 or step == steps:
                self.emit(BatchProgress(epoch, step, steps))
                if self.should_stop():
                    raise Cancelled
        # the one host sync of the epoch
        return float(engine.loss_sum) / n, float(engine.correct) / n

    def _report(
        self, epoch: int, step: int, steps: int, images: int, seen: tuple[float, float, int]
    ) -> tuple[float, float, int]:
        """Emit the running loss and accuracy since the previous report: the engine keeps
        its sums on the device, so this is one host read, however many steps it covers."""
        loss_sum, correct = torch.stack(
            (self.engine.loss_sum, self.engine.correct.float())
        ).tolist()
        count = images - seen[2]
        if count > 0:
            self.emit(
                StepReport(
                    epoch=epoch,
                    step=step,
                    steps=steps,
                    train_loss=(loss_sum - seen[0]) / count,
                    train_acc=(correct - seen[1]) / count,
                    images=count,
                    time=time.time(),
                )
            )
        return loss_sum, correct, images

    def run(self) -> dict[str, Any]:
        spec, data = self.spec, self.data
        start_epoch = self.state.epoch + 1
        self.emit(
            RunStarted(
                run_id=self.run_id,
                experiment=spec.name,
                device=device_name(self.device),
                parameters=self.parameters,
                epochs=spec.train.epochs,
                steps_per_epoch=self.steps_per_epoch(),
                train_size=len(data.train_y),
                start_epoch=start_epoch,
            )
        )
        started = time.perf_counter()
        last_eval: Evaluation | None = None
        try:
            for epoch in range(start_epoch, spec.train.epochs + 1):
                t0 = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                train_loss, train_acc = self.train_epoch(epoch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                train_seconds = time.perf_counter() - t0
                if not math.isfinite(train_loss):
                    return self._end(
                        RunStatus.FAILED,
                        f"non-finite training loss ({train_loss}) in epoch {epoch}",
                        started,
                        last_eval,
                    )
                bs = spec.train.eval_batch_size
                if self.device.type == "cpu":
                    bs = min(bs, CPU_EVAL_BATCH)
                val = (
                    evaluate(self.model, data.val_x, data.val_y, bs, self.num_classes)
                    if data.val_x is not None and data.val_y is not None
                    else None
                )
                test = evaluate(self.model, data.test_x, data.test_y, bs, self.num_classes)
                last_eval = test
                metrics = EpochMetrics(
                    epoch=epoch,
                    train_loss=train_loss,
                    train_acc=train_acc,
                    val_loss=val.loss if val else None,
                    val_acc=val.acc if val else None,
                    test_loss=test.loss,
                    test_acc=test.acc,
                    lr=lr,
                    seconds=time.perf_counter() - t0,
                    train_seconds=train_seconds,
                    images_per_s=len(data.train_y) / max(train_seconds, 1e-9),
                    test_per_class=test.per_class(),
                    test_confusion=test.confusion.tolist(),
                )
                self._step_scheduler(metrics)
                value = getattr(metrics, self.best_metric)
                improved = _better(self.best_metric, value, self.state.best_value)
                if improved:
                    self.state.best_value, self.state.best_epoch = value, epoch
                self.state.epoch = epoch
                self.state.history.append(metrics)
                if improved:
                    self.checkpoint(
                        "best",
                        {"model": self.model.state_dict(), "epoch": epoch, "spec": spec.to_toml()},
                    )
                self.checkpoint("last", self.state_dict())
                self.emit(EpochEnded(metrics, self.state.best_epoch, improved))
                if self.should_stop():
                    raise Cancelled
        except Cancelled:
            return self._end(RunStatus.KILLED, "cancelled by the user", started, last_eval)
        except torch.cuda.OutOfMemoryError as exc:
            return self._end(
                RunStatus.FAILED,
                f"out of memory on {self.device}: {str(exc).splitlines()[0]}",
                started,
                last_eval,
            )
        return self._end(RunStatus.COMPLETED, "", started, last_eval)

    def _step_scheduler(self, m: EpochMetrics) -> None:
        if self.scheduler is None or self.per_step:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(getattr(m, monitored_metric(self.spec)))
        else:
            self.scheduler.step()

    def _end(
        self, status: RunStatus, reason: str, started: float, last_eval: Evaluation | None
    ) -> dict[str, Any]:
        summary = summarize(self.state, last_eval, self.data.classes, self.best_metric)
        summary.update(
            engine=self.engine.name + (f" ({self.engine.note})" if self.engine.note else ""),
            status=status,
            reason=reason,
            parameters=self.parameters,
            train_seconds=sum(m.train_seconds for m in self.state.history),
            wall_seconds=time.perf_counter() - started,
        )
        self.emit(RunEnded(status, reason, summary))
        return summary


def summarize(
    state: TrainState, last_eval: Evaluation | None, classes: tuple[str, ...], best_metric: str
) -> dict[str, Any]:
    """The figures a run is judged by: final and best epoch, per class, confusion."""
    out: dict[str, Any] = {"epochs_done": state.epoch, "best_metric": best_metric}
    if not state.history:
        return out
    final = state.history[-1]
    best = next((m for m in state.history if m.epoch == state.best_epoch), final)
    out["final"] = {k: v for k, v in final.to_json().items() if k not in PER_EPOCH_ONLY}
    out["best"] = {k: v for k, v in best.to_json().items() if k not in PER_EPOCH_ONLY}
    out["best_epoch"] = best.epoch
    out["classes"] = list(classes)
    if final.test_per_class:
        out["per_class_acc"] = final.test_per_class
        worst = min(range(len(final.test_per_class)), key=final.test_per_class.__getitem__)
        out["hardest_class"] = classes[worst]
    if last_eval is not None:
        out["confusion"] = last_eval.confusion.tolist()
    return out
