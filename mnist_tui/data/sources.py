"""What a `[data] dataset` names, without torch: a registry entry or a user dataset's path.

Validation sizes the model from here (input shape, number of classes) and the views take
class names from here; for a user dataset that is its cached description (data/user.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnist_tui.data import registry
from mnist_tui.errors import DataError, did_you_mean


@dataclass(frozen=True)
class DataShape:
    title: str
    shape: tuple[int, int, int]  # channels, height, width (before data.pad)
    classes: tuple[str, ...]
    hash: str | None = None  # content hash of a user dataset's files


def is_path(dataset: str) -> bool:
    """Whether a `[data] dataset` value names a path rather than a registry entry."""
    return (
        "/" in dataset
        or os.sep in dataset
        or dataset.startswith((".", "~"))
        or dataset.endswith(".npz")
    )


def resolve_path(dataset: str, base: Path | None = None) -> str:
    """A user dataset's path made absolute (relative paths are relative to `base`, else to
    the working directory); a registry name is returned as it is."""
    if not is_path(dataset):
        return dataset
    p = Path(dataset).expanduser()
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return os.path.normpath(p)


def unknown_message(dataset: str) -> str:
    hint = did_you_mean(dataset, registry.DATASETS)
    return (
        f"unknown dataset '{dataset}'.{hint} Known: {', '.join(registry.DATASETS)}; or the "
        'path of your own data (a folder or an .npz), e.g. "./my_digits"'
    )


def describe(dataset: str) -> DataShape:
    """Shape and classes of a dataset; DataError for a missing or damaged user dataset."""
    if is_path(dataset):
        from mnist_tui.data import user  # numpy and Pillow: only for a user's own data

        meta = user.describe(Path(dataset))
        return DataShape(Path(dataset).name, meta.shape, meta.classes, meta.hash)
    info = registry.DATASETS.get(dataset)
    if info is None:
        raise DataError(unknown_message(dataset))
    return DataShape(info.title, info.shape, info.classes)


SHORT = {"mnist": "MNIST", "fashion_mnist": "Fashion", "kmnist": "KMNIST", "qmnist": "QMNIST"}


def short_name(dataset: str) -> str:
    """A few characters for a listing: "MNIST", "EMNIST-letters", or a path's last part."""
    if is_path(dataset):
        return Path(dataset).name or dataset
    if dataset.startswith("emnist_"):
        return "EMNIST-" + dataset.removeprefix("emnist_")
    info = registry.DATASETS.get(dataset)
    return SHORT.get(dataset) or (info.title if info else dataset)


def display_name(dataset: str) -> str:
    """The registry name, or a path's last part (a report never prints a machine's paths)."""
    return (Path(dataset).name or dataset) if is_path(dataset) else dataset
