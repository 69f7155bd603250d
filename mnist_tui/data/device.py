"""Datasets held in device memory, normalised and split, and the batches drawn from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from mnist_tui.data.files import DatasetInfo, load_raw
from mnist_tui.data.splits import kfold_assignment, stratified_indices


@dataclass
class DeviceData:
    """Normalised float tensors (N, C, H, W) and labels, resident on one device."""

    info: DatasetInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor
    digest: str  # names the exact data files (recorded in env.json)
    background: float  # the normalised value of a black (0) pixel
    pixel_scale: float  # multiply a 0..1 pixel amount by this to get normalised units

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes


def _to_float(
    x: torch.Tensor, pad: int, mean: float, std: float, device: torch.device
) -> torch.Tensor:
    x = x.to(device).float().div_(255.0)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    return x.sub_(mean).div_(std)


def prepare(
    spec_data: object,
    augment: object,
    device: torch.device,
    data_dir: Path | None = None,
    download: bool = True,
) -> DeviceData:
    """Build the device-resident tensors an experiment trains and evaluates on."""
    from mnist_tui.config.spec import AugmentSpec, DataSpec

    assert isinstance(spec_data, DataSpec) and isinstance(augment, AugmentSpec)
    raw = load_raw(spec_data.dataset, data_dir, download)
    info = raw.info
    train_x, train_y = raw.train_x, raw.train_y
    val_x = val_y = None
    if spec_data.folds > 1:
        held = kfold_assignment(train_y, spec_data.folds, spec_data.split_seed) == spec_data.fold
        val_x, val_y = train_x[held], train_y[held]
        train_x, train_y = train_x[~held], train_y[~held]
    elif spec_data.val_split > 0:
        n_val = round(len(train_y) * spec_data.val_split)
        val_idx = stratified_indices(train_y, n_val, spec_data.split_seed)
        keep = torch.ones(len(train_y), dtype=torch.bool)
        keep[val_idx] = False
        val_x, val_y = train_x[val_idx], train_y[val_idx]
        train_x, train_y = train_x[keep], train_y[keep]
    if spec_data.subset and spec_data.subset < len(train_y):
        idx = stratified_indices(train_y, spec_data.subset, spec_data.split_seed + 1)
        train_x, train_y = train_x[idx], train_y[idx]
    test_x, test_y = raw.test_x, raw.test_y
    if spec_data.test_subset and spec_data.test_subset < len(test_y):
        idx = stratified_indices(test_y, spec_data.test_subset, spec_data.split_seed + 2)
        test_x, test_y = test_x[idx], test_y[idx]
    if augment.double_hflip:
        # the FNN study's "doubling": every training image plus its mirror image
        train_x = torch.cat([train_x, train_x.flip(-1)])
        train_y = torch.cat([train_y, train_y])

    # "half" is torchvision's Normalize((0.5,), (0.5,)): black -1, white +1
    mean, std = {
        "standard": (raw.mean, raw.std),
        "unit": (0.0, 1.0),
        "half": (0.5, 0.5),
    }[spec_data.normalize]

    def conv(x: torch.Tensor) -> torch.Tensor:
        return _to_float(x, spec_data.pad, mean, std, device)

    return DeviceData(
        info=info,
        train_x=conv(train_x),
        train_y=train_y.to(device),
        val_x=conv(val_x) if val_x is not None else None,
        val_y=val_y.to(device) if val_y is not None else None,
        test_x=conv(test_x),
        test_y=test_y.to(device),
        digest=raw.digest,
        background=(0.0 - mean) / std,
        pixel_scale=1.0 / std,
    )


def batch_indices(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches; the last batch may be smaller."""
    perm = torch.randperm(n, generator=generator, device=device)
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]
