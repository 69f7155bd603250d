"""The fast paths compute what a plain loop computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mnist_tui.config.loading import load_experiment
from mnist_tui.config.overrides import with_overrides
from mnist_tui.data import device as data_device
from mnist_tui.data.device import batch_indices
from mnist_tui.train.setup import make_optimizer, prefers_channels_last
from mnist_tui.train.trainer import Trainer

from .conftest import EXPERIMENTS


def _plain_loop(spec, data, device: torch.device) -> list[float]:  # type: ignore[no-untyped-def]
    """The textbook loop: same init, same batch order, `.item()` every step."""
    torch.manual_seed(spec.train.seed)
    model = spec.build_model().to(device)
    if device.type == "cpu" and prefers_channels_last(model):
        # same layout as the engine: NHWC vs NCHW convs round differently (by about 1e-5
        # after 3 epochs with one thread), which is not what this test is about
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(spec, model.parameters())
    g = torch.Generator(device=device).manual_seed(spec.train.seed)
    losses = []
    n = len(data.train_y)
    for _ in range(spec.train.epochs):
        model.train()
        total = 0.0
        for idx in batch_indices(n, spec.train.batch_size, g, device):
            opt.zero_grad()
            loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / n)
    return losses


@pytest.mark.parametrize("name", ["lenet5", "task8", "fnn1"])
def test_engine_matches_plain_loop_on_cpu(name: str, fake_data: Path) -> None:
    spec = load_experiment(
        name, EXPERIMENTS, ["data.dataset=mnist", "train.epochs=3", "train.batch_size=24"]
    )
    device = torch.device("cpu")
    data = data_device.prepare(spec.data, spec.augment, device, fake_data, download=False)
    trainer = Trainer(spec, data, device, engine="eager")
    trainer.run()
    ours = [m.train_loss for m in trainer.state.history]
    ref = _plain_loop(spec, data, device)
    assert ours == pytest.approx(ref, rel=1e-5, abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["lenet5", "task8", "task11", "lenet5_tuned", "task2"])
def test_cuda_graph_matches_eager(name: str, real_data: Path) -> None:
    """Same seed, graph vs eager on the GPU: the loss trajectories agree closely."""
    spec = load_experiment(
        name,
        EXPERIMENTS,
        [
            "train.epochs=3",
            "data.subset=6000",
            "augment.rotation=0",
            "augment.scale=[1.0, 1.0]",
            "augment.noise_std=0",
        ],
    )
    if "dropout" in spec.model.params:
        spec = with_overrides(spec, ["model.dropout=0"])
    if "conv_dropout" in spec.model.params:
        spec = with_overrides(spec, ["model.conv_dropout=0"])
    device = torch.device("cuda")
    data = data_device.prepare(spec.data, spec.augment, device, real_data, download=False)
    runs = {}
    for kind in ("eager", "graph"):
        trainer = Trainer(spec, data, device, engine=kind)
        trainer.run()
        runs[kind] = [m.train_loss for m in trainer.state.history]
        if kind == "graph":
            assert trainer.engine.name == "cuda-graph" and not trainer.engine.note
    assert runs["graph"] == pytest.approx(runs["eager"], rel=2e-2)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("task0", []),
        ("task8", ["model.batch_norm_position=before_activation"]),
        ("lenet5", ["model.activation=tanh"]),
        ("lenet5_aug_bn", ["model.activation=sigmoid"]),
    ],
)
def test_pool_before_activation_is_exact(name: str, overrides: list[str]) -> None:
    """The fast layer order gives the same outputs and gradients as the written one."""
    spec = load_experiment(name, overrides=overrides)
    torch.manual_seed(0)
    written = spec.build_model(pool_first=False)
    fast = spec.build_model()
    fast.load_state_dict(written.state_dict())  # same keys: only parameter-free modules move
    kinds = [type(m).__name__ for m in fast]
    assert kinds != [type(m).__name__ for m in written]  # the rewrite did happen
    x = torch.randn(16, *spec.input_shape())
    x[:4] = -x[:4].abs()  # whole windows below zero: ReLU's tie case
    y = torch.randint(0, 10, (16,))
    for m in (written, fast):
        m.train()
        m.zero_grad()
        F.cross_entropy(m(x), y).backward()
    torch.testing.assert_close(fast(x.clone()).detach(), written(x.clone()).detach())
    for (key, a), (_, b) in zip(fast.named_parameters(), written.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=key)


def test_batch_norm_after_activation_keeps_its_place() -> None:
    """Keras order conv-ReLU-BN-pool: BN between ReLU and pool blocks the pool swap."""
    spec = load_experiment("task8", overrides=["model.batch_norm_position=after_activation"])
    kinds = [type(m).__name__ for m in spec.build_model()]
    assert kinds[:4] == ["Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d"]
    assert [type(m).__name__ for m in spec.build_model(pool_first=False)] == kinds


def test_channels_last_rule() -> None:
    """NHWC for conv nets, except batch norm over fewer than 16 channels (measured slower)."""
    assert prefers_channels_last(load_experiment("task0").build_model())
    assert prefers_channels_last(load_experiment("task8").build_model())
    assert not prefers_channels_last(load_experiment("lenet5_aug_bn").build_model())
    assert not prefers_channels_last(load_experiment("fnn1").build_model())


def test_allocator_tuning_applies_on_glibc() -> None:
    import platform
    import sys

    from mnist_tui.train.allocator import keep_freed_memory

    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is on_glibc
    assert keep_freed_memory() is on_glibc  # once per process, same answer
