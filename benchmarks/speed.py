"""Training speed: the studies' DataLoader pipeline vs the mnist-tui engine, side by side.

For each experiment, the same model, optimizer, batch size, epochs and augmentation are
trained two (or three) ways in one process on one device:

  baseline-w0   torchvision dataset + ToTensor/Normalize + torchvision augmentation
                transforms + DataLoader(num_workers=0), loss.item() every batch
  baseline-wN   the same with N loader workers (pin_memory on a GPU)
  mnist-tui     the engine: device-resident data, batched per-image augmentation,
                CUDA-graph steps on a GPU, one host sync per epoch

It prints per-epoch training time (median over epochs), images/s, the speed-up over the
best baseline, and both test accuracies after the same epochs. The engine is timed with
its step reports (running train loss ~50 times an epoch, steps.jsonl) on and off, in
alternating order, and the cost of the reports is printed beside them. A last row, "step floor",
times the model's bare forward/backward/optimizer step on one resident batch for an
epoch's worth of steps: no pipeline can train faster than that eagerly, so its ratio is
the ceiling on the speed-up for that model on that machine.

    python benchmarks/speed.py                       # defaults below, auto device
    python benchmarks/speed.py lenet5 task2 --epochs 3 --device cuda --workers 4
    python benchmarks/speed.py task2 --epochs 2 --train-images 10000   # mini-VGG on a CPU
    python benchmarks/speed.py fnn1 lenet5 --engine-only --ab-epochs 10   # step reports' cost
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Subset
from torchvision import datasets, transforms

from mnist_tui.config.loading import load_experiment
from mnist_tui.config.overrides import with_overrides
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data import device as data_device
from mnist_tui.data import files as data_files
from mnist_tui.data import splits as data_splits
from mnist_tui.train.allocator import keep_freed_memory
from mnist_tui.train.setup import make_optimizer, resolve_device
from mnist_tui.train.trainer import Trainer, evaluate

DEFAULT = ["lenet5", "task0", "task2", "fnn2", "lenet5_aug_bn"]


def extracted_root(data_dir: Path, tmp: Path) -> Path:
    """torchvision wants decompressed files; the data directory may be read-only."""
    for info in (data_files.DATASETS[k] for k in ("mnist", "fashion_mnist")):
        files = data_files.locate(info.key, data_dir, download=False)
        raw = tmp / info.folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name, path in files.items():
            if path.suffix == ".gz":
                with gzip.open(path) as src, (raw / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copy(path, raw / name)
    return tmp


def study_transforms(spec: ExperimentSpec, info: data_files.DatasetInfo) -> transforms.Compose:
    """The per-sample pipeline a study would write for this experiment."""
    a, d = spec.augment, spec.data
    t: list[object] = []
    side = 28 + 2 * d.pad
    if d.pad:
        t.append(transforms.Pad(d.pad))
    if a.crop_scale != [1.0, 1.0]:
        t.append(transforms.RandomResizedCrop(side, scale=tuple(a.crop_scale)))
    if a.rotation or a.translate or a.scale != [1.0, 1.0]:
        t.append(
            transforms.RandomAffine(
                degrees=a.rotation,
                translate=(a.translate, a.translate) if a.translate else None,
                scale=tuple(a.scale) if a.scale != [1.0, 1.0] else None,
            )
        )
    if a.hflip:
        t.append(transforms.RandomHorizontalFlip(a.hflip))
    t.append(transforms.ToTensor())
    if a.noise_std:
        std = a.noise_std
        t.append(transforms.Lambda(lambda x: x + torch.randn_like(x) * std))
    if d.normalize == "standard":
        t.append(transforms.Normalize((info.mean,), (info.std,)))
    return transforms.Compose(t)


def baseline(spec: ExperimentSpec, root: Path, device: torch.device, workers: int) -> dict:
    info = data_files.DATASETS[spec.data.dataset]
    cls = datasets.MNIST if info.key == "mnist" else datasets.FashionMNIST
    tf = study_transforms(spec, info)
    train = cls(str(root), train=True, transform=tf)
    keep = None
    if spec.data.subset:  # the engine's own stratified subset, so both see the same images
        seed = spec.data.split_seed + 1
        keep = data_splits.stratified_indices(train.targets, spec.data.subset, seed)
        train = Subset(train, keep.tolist())
    if spec.augment.double_hflip:
        flipped = transforms.Compose([transforms.RandomHorizontalFlip(1.0), tf])
        mirror = cls(str(root), train=True, transform=flipped)
        train = ConcatDataset([train, mirror if keep is None else Subset(mirror, keep.tolist())])
    eval_tf = study_transforms(
        with_overrides(
            spec,
            [
                "augment.rotation=0",
                "augment.translate=0",
                "augment.crop_scale=[1.0, 1.0]",
                "augment.scale=[1.0, 1.0]",
                "augment.hflip=0",
                "augment.noise_std=0",
            ],
        ),
        info,
    )
    test = cls(str(root), train=False, transform=eval_tf)
    pin = device.type == "cuda"
    loader = DataLoader(
        train,
        batch_size=spec.train.batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
    )
    test_loader = DataLoader(test, batch_size=1000, num_workers=workers, pin_memory=pin)
    torch.manual_seed(spec.train.seed)
    model = spec.build_model(pool_first=False).to(device)  # the layer order as the study wrote it
    opt = make_optimizer(spec, model.parameters())
    epoch_times = []
    for _ in range(spec.train.epochs):
        model.train()
        t0 = time.perf_counter()
        running = 0.0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            running += loss.item()  # what the studies' loops do every batch
        epoch_times.append(time.perf_counter() - t0)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in test_loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return {"epoch_s": epoch_times, "n": len(train), "test_acc": correct / total}


def engine(
    spec: ExperimentSpec, data_dir: Path, device: torch.device, kind: str, steps: bool = True
) -> dict:
    data = data_device.prepare(spec.data, spec.augment, device, data_dir, download=False)
    reports = []
    trainer = Trainer(
        spec, data, device, engine=kind, step_reports=None if steps else 0, on_event=reports.append
    )
    trainer.run()
    hist = trainer.state.history
    ev = evaluate(trainer.model, data.test_x, data.test_y, 4096)
    return {
        "epoch_s": [m.train_seconds for m in hist],
        "n": len(data.train_y),
        "test_acc": ev.acc,
        "engine": trainer.engine.name,
        "eval_s": statistics.median(m.seconds - m.train_seconds for m in hist),
        "reports": sum(1 for e in reports if type(e).__name__ == "StepReport"),
    }


def step_report_cost(
    spec: ExperimentSpec, data_dir: Path, device: torch.device, epochs: int
) -> dict:
    """One trainer, its training epochs timed with step reports on and off in turn
    (on, off, off, on, ...), so a machine warming up or slowing down favours neither;
    the median epoch of each. The first epoch (warm-up, graph capture) is not counted."""
    data = data_device.prepare(spec.data, spec.augment, device, data_dir, download=False)
    reports: list[object] = []
    trainer = Trainer(spec, data, device, on_event=reports.append)
    every = trainer.report_every
    inside = [0.0]  # seconds spent in the reports themselves (on a GPU: with their sync)
    report = trainer._report

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return report(*args)
        finally:
            inside[0] += time.perf_counter() - t0

    trainer._report = timed  # type: ignore[method-assign]
    trainer.train_epoch(1)
    inside[0] = 0.0
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(max(1, epochs)):
        for on in (True, False) if i % 2 == 0 else (False, True):
            trainer.report_every = every if on else 0
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            trainer.train_epoch(1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[on].append(time.perf_counter() - t0)
    per_epoch = sum(1 for e in reports if type(e).__name__ == "StepReport") // (1 + epochs)
    return {
        "on": statistics.median(times[True]),
        "off": statistics.median(times[False]),
        "reports": per_epoch,
        "engine": trainer.engine.name,
        "epochs": epochs,
        "inside": inside[0] / max(1, len(times[True])),
    }


def step_floor(spec: ExperimentSpec, data_dir: Path, device: torch.device) -> dict:
    """The model's bare training step, one epoch's worth, on one resident batch.

    No data gathering, augmentation or metrics: forward, loss, backward and optimizer step
    as plain eager PyTorch, with the engine's memory layout. Its epoch time bounds what any
    input pipeline can reach on this machine, so best-baseline / floor is the ceiling on
    the speed-up for this model here (a CUDA graph can beat it on a GPU, where launch
    overhead rather than arithmetic is the floor).
    """
    data = data_device.prepare(spec.data, spec.augment, device, data_dir, download=False)
    trainer = Trainer(spec, data, device, engine="eager")
    model, opt = trainer.model, trainer.optimizer
    b = spec.train.batch_size
    xb, yb = data.train_x[:b], data.train_y[:b]
    if next(model.parameters()).is_contiguous(memory_format=torch.channels_last) and xb.ndim == 4:
        xb = xb.contiguous(memory_format=torch.channels_last)
    steps = len(data.train_y) // b

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    for _ in range(10):
        one()
    times = []
    for _ in range(2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            one()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return {"epoch_s": [min(times)], "n": steps * b, "test_acc": None}


def steady(times: list[float]) -> float:
    """Median epoch time, leaving out the first epoch (warm-up, capture) when there are more."""
    return statistics.median(times[1:] if len(times) > 1 else times)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("experiments", nargs="*", default=DEFAULT)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--skip-w0", action="store_true", help="skip the 0-worker baseline")
    p.add_argument("--eager", action="store_true", help="also time the engine without graphs")
    p.add_argument(
        "--train-images",
        type=int,
        default=0,
        help="train every way on this many (stratified) images, for slow models on a CPU",
    )
    p.add_argument(
        "--no-floor", action="store_true", help="skip timing the bare model step (the ceiling)"
    )
    p.add_argument(
        "--engine-only",
        action="store_true",
        help="only the engine, step reports on and off (no baselines, no floor)",
    )
    p.add_argument(
        "--ab-epochs",
        type=int,
        default=6,
        help="epochs timed each way, step reports on and off in turn, on one trainer",
    )
    args = p.parse_args()
    device = resolve_device(args.device)
    # The engine tunes glibc's allocator on a CPU; do it before the baselines too, so the
    # ratio counts the input pipeline and the step, not the allocator.
    keep_freed_memory()
    data_dir = data_files.resolve_data_dir(args.data_dir)
    print(
        f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
        f" | torch {torch.__version__} | CPU threads {torch.get_num_threads()}"
        f" | epochs {args.epochs} | loader workers 0 and {args.workers}"
        + (f" | {args.train_images:,} training images" if args.train_images else ""),
        flush=True,
    )
    header = (
        f"{'experiment':<14}{'way':<20}{'batch':>6}{'epoch s':>9}{'img/s':>10}"
        f"{'test acc':>10}{'speed-up':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) if args.engine_only else extracted_root(data_dir, Path(tmp))
        print(header)
        print("-" * len(header))
        for name in args.experiments:
            overrides = [f"train.epochs={args.epochs}"]
            if args.train_images:
                overrides.append(f"data.subset={args.train_images}")
            spec = load_experiment(name, overrides=overrides)
            rows = []
            worker_counts = ([] if args.skip_w0 else [0]) + ([args.workers] if args.workers else [])
            if args.engine_only:
                worker_counts = []
            for w in worker_counts:
                rows.append((f"baseline-w{w}", baseline(spec, root, device, w)))
            ours = []
            kinds = ["auto", "eager"] if args.eager and device.type == "cuda" else ["auto"]
            for kind in kinds:
                r = engine(spec, data_dir, device, kind)
                ours.append((f"mnist-tui {r['engine']}", r))
            if not args.no_floor and not args.engine_only:
                ours.append(("step floor", step_floor(spec, data_dir, device)))
            best_base = min(steady(r["epoch_s"]) for _, r in rows) if rows else None
            for way, r in rows + ours:
                t = steady(r["epoch_s"])
                ratio = f"{best_base / t:.1f}x" if best_base else "—"
                acc = f"{100 * r['test_acc']:>9.2f}%" if r["test_acc"] is not None else f"{'—':>10}"
                print(
                    f"{name:<14}{way:<20}{spec.train.batch_size:>6}{t:>9.2f}{r['n'] / t:>10,.0f}"
                    f"{acc}{ratio:>10}",
                    flush=True,
                )
            cost = step_report_cost(spec, data_dir, device, args.ab_epochs)
            print(
                f"{name:<14}{cost['engine']:<20}step reports on {cost['on']:.3f} s, "
                f"off {cost['off']:.3f} s an epoch ({cost['reports']} reports an epoch, "
                f"median of {cost['epochs']} each): {100 * (cost['on'] / cost['off'] - 1):+.1f}%"
                " (goal: within 2%)",
                flush=True,
            )
            print(
                f"{'':<34}time inside the reports: {1000 * cost['inside']:.2f} ms an epoch "
                f"({100 * cost['inside'] / cost['on']:.3f}% of it)",
                flush=True,
            )
            print()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
