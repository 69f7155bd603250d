"""Dataset files: locate, verify checksums, decode once, and cache the decoded tensors.

Registry datasets (data/registry.py) follow torchvision's layout,
``<root>/MNIST/raw/train-images-idx3-ubyte[.gz]``, ``<root>/cifar-10-batches-bin/...``, so
a data directory torchvision filled works as it is. A user's own data is named by its
path (data/user.py). Batches are drawn with `randperm` + indexing from tensors already on
the device: no DataLoader, no per-sample Python.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mnist_tui.data import formats, registry, user
from mnist_tui.data.formats import cache_dir, resolve_data_dir
from mnist_tui.data.registry import DATASETS, IDX_FILES, DatasetInfo
from mnist_tui.data.sources import is_path
from mnist_tui.errors import DataError

FILES = IDX_FILES  # the MNIST file names (kept for callers that list them)

__all__ = [
    "DATASETS",
    "FILES",
    "DatasetInfo",
    "RawDataset",
    "cache_dir",
    "load_raw",
    "locate",
    "read_idx",
    "resolve_data_dir",
    "verify",
]


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _needed(info: DatasetInfo) -> list[str]:
    if info.layout == "cifar10":
        return [*registry.CIFAR10_TRAIN, *registry.CIFAR10_TEST]
    return list(info.file_names().values())


def _find(info: DatasetInfo, root: Path) -> tuple[dict[str, Path], list[str]]:
    raw = root / info.raw_folder
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in _needed(info):
        for candidate in (raw / f"{name}.gz", raw / name):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _missing_message(info: DatasetInfo, root: Path, missing: list[str], why: str) -> str:
    raw = root / info.raw_folder
    if info.layout == "cifar10":
        archive = root / registry.CIFAR10_ARCHIVE[0]
        lines = [
            f"{info.title} is not in the data directory {root} ({why}).",
            f"Needed in {raw}/ (the binary version, {registry.CIFAR10_URL}):",
            *[f"  {name}" for name in missing],
            f"or the archive itself as {archive} (md5 {registry.CIFAR10_ARCHIVE[1]}).",
        ]
    else:
        lines = [
            f"{info.title} is not in the data directory {root} ({why}).",
            f"Needed in {raw}/ (gzipped or not):",
            *[f"  {name}.gz" for name in missing],
        ]
    lines.append(
        "Either copy the files there, point --data-dir (or MNIST_TUI_DATA) at a directory "
        f"that holds {info.raw_folder}/, or run with network access to download them."
    )
    return "\n".join(lines)


def _download(info: DatasetInfo, root: Path) -> None:
    """Download through torchvision (which also checks its own md5 sums)."""
    from torchvision import datasets
    from torchvision.datasets.utils import download_url

    root.mkdir(parents=True, exist_ok=True)
    if info.layout == "cifar10":
        name, md5 = registry.CIFAR10_ARCHIVE
        download_url(registry.CIFAR10_URL, str(root), filename=name, md5=md5)
        return
    cls_name, kwargs = info.download
    cls = getattr(datasets, cls_name)
    for train in (True, False):
        cls(str(root), train=train, download=True, **kwargs)


def _cifar_archive(info: DatasetInfo, root: Path) -> dict[str, Path] | None:
    """Members of a verified cifar-10-binary.tar.gz, extracted (plain bytes, no pickles)."""
    name, md5 = registry.CIFAR10_ARCHIVE
    archive = root / name
    if not archive.is_file():
        return None
    actual = _md5(archive)
    if actual != md5:
        raise DataError(
            f"checksum mismatch for {archive}: md5 {actual}, expected {md5}. "
            "The file is corrupt or truncated: delete it and copy or download it again."
        )
    out = cache_dir() / f"cifar10-{md5[:12]}"
    found = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if member.isfile() and base in _needed(info):
                    target = out / base
                    if not target.is_file() or target.stat().st_size != member.size:
                        src = tar.extractfile(member)
                        assert src is not None
                        out.mkdir(parents=True, exist_ok=True)
                        tmp = target.with_suffix(f".tmp{os.getpid()}")
                        tmp.write_bytes(src.read())
                        os.replace(tmp, target)
                    found[base] = target
    except (OSError, tarfile.TarError) as exc:
        raise DataError(f"cannot read {archive}: {exc}") from None
    return found


def locate(key: str, root: Path, download: bool = True) -> dict[str, Path]:
    """Paths of the dataset's files, downloading them first when missing and allowed."""
    info = DATASETS[key]
    found, missing = _find(info, root)
    if missing and info.layout == "cifar10":
        from_archive = _cifar_archive(info, root)
        if from_archive is not None and all(n in from_archive for n in missing):
            return {**found, **from_archive}
    if missing and download:
        try:
            _download(info, root)
        except Exception as exc:  # network errors come in many types
            raise DataError(
                _missing_message(info, root, missing, f"the download failed: {exc}")
            ) from None
        if info.layout == "cifar10":
            return locate(key, root, download=False)
        found, missing = _find(info, root)
    if missing:
        why = "downloads are off" if not download else "the download did not produce them"
        raise DataError(_missing_message(info, root, missing, why))
    return found


def verify(key: str, files: dict[str, Path]) -> str:
    """Check every file's md5 where one is published; return a digest naming this exact set
    of files (the md5 sums, or sizes and names where no sum is published)."""
    info = DATASETS[key]
    digests = []
    for name, path in files.items():
        gz_md5, raw_md5 = info.md5.get(name, (None, None))
        expected = gz_md5 if path.suffix == ".gz" else raw_md5
        if expected is None:
            # torchvision publishes no sum for this file: its content still names the set
            digests.append(_md5(path))
            continue
        actual = _md5(path)
        if actual != expected:
            raise DataError(
                f"checksum mismatch for {path}: md5 {actual}, expected {expected}. "
                "The file is corrupt or truncated: delete it and copy or download it again."
            )
        digests.append(actual)
    return hashlib.md5("".join(digests).encode()).hexdigest()[:16]


def read_idx(path: Path) -> torch.Tensor:
    """Decode an IDX file (gzipped or not) into a tensor (uint8 for images and labels)."""
    return torch.from_numpy(formats.read_idx(path).copy())


@dataclass(frozen=True)
class RawDataset:
    """The decoded dataset: uint8 images (N, C, H, W) and int64 labels."""

    info: DatasetInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    digest: str = ""  # names the exact files (recorded in env.json)

    @property
    def mean(self) -> float:
        assert self.info.mean is not None
        return self.info.mean

    @property
    def std(self) -> float:
        assert self.info.std is not None
        return self.info.std


_memory_cache: dict[tuple[str, str], RawDataset] = {}
_memory_lock = threading.Lock()


def _decode(info: DatasetInfo, files: dict[str, Path]) -> dict[str, torch.Tensor]:
    names = info.file_names()
    if info.layout == "cifar10":
        parts = {
            split: [
                formats.read_cifar_bin(files[n], registry.CIFAR10_RECORDS)
                for n in (registry.CIFAR10_TRAIN if split == "train" else registry.CIFAR10_TEST)
            ]
            for split in ("train", "test")
        }
        out = {}
        for split, batches in parts.items():
            out[f"{split}_x"] = torch.from_numpy(np.concatenate([b[0] for b in batches]))
            out[f"{split}_y"] = torch.from_numpy(np.concatenate([b[1] for b in batches]))
        return out
    out = {}
    for split in ("train", "test"):
        x = read_idx(files[names[f"{split}_images"]])
        y = read_idx(files[names[f"{split}_labels"]])
        if info.layout == "qmnist":
            y = y[:, 0]  # QMNIST's labels carry 8 columns; the first is the class
        if info.layout == "emnist":
            x = x.transpose(1, 2)  # EMNIST stores images transposed; make them upright
        if len(x) != len(y):
            raise DataError(
                f"{files[names[f'{split}_labels']]}: {len(y)} labels for {len(x)} images"
            )
        out[f"{split}_x"] = x.unsqueeze(1).contiguous()
        out[f"{split}_y"] = y.long()
    return out


def _with_stats(info: DatasetInfo, x: torch.Tensor) -> DatasetInfo:
    """A registry entry with its mean and std filled in from the training images."""
    if info.mean is not None and info.std is not None:
        return info
    mean, std = user.mean_std(x.numpy())
    return replace(info, mean=round(mean, 4), std=round(std, 4))


def load_raw(key: str, data_dir: Path | None = None, download: bool = True) -> RawDataset:
    """Locate, verify and decode a dataset (a registry key, or a user dataset's path);
    decoded tensors are cached in memory and on disk."""
    if is_path(key):
        return _load_user(Path(key).expanduser())
    if key not in DATASETS:
        raise DataError(f"unknown dataset '{key}'; known: {', '.join(DATASETS)}")
    root = resolve_data_dir(data_dir)
    files = locate(key, root, download)
    digest = verify(key, files)
    with _memory_lock:
        hit = _memory_cache.get((key, digest))
    if hit is not None:
        return hit
    info = DATASETS[key]
    cache_file = cache_dir() / f"{key}-{digest}-v2.pt"
    tensors: dict[str, torch.Tensor] | None = None
    if cache_file.is_file():
        try:
            tensors = torch.load(cache_file, weights_only=True)
        except Exception:  # a damaged cache is rebuilt, never trusted
            tensors = None
    if tensors is None:
        tensors = _decode(info, files)
        _write_cache(cache_file, tensors)
    ds = RawDataset(_with_stats(info, tensors["train_x"]), **tensors, digest=digest)
    with _memory_lock:
        _memory_cache[(key, digest)] = ds
    return ds


def _load_user(path: Path) -> RawDataset:
    meta, arrays = user.load(path)
    info = DatasetInfo(
        key=str(path),
        folder="",
        title=path.name,
        classes=meta.classes,
        mean=meta.mean,
        std=meta.std,
        md5={},
        shape=meta.shape,
    )
    return RawDataset(
        info,
        train_x=torch.from_numpy(arrays["train_x"]),
        train_y=torch.from_numpy(arrays["train_y"]),
        test_x=torch.from_numpy(arrays["test_x"]),
        test_y=torch.from_numpy(arrays["test_y"]),
        digest=meta.hash,
    )


def _write_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Best effort: a read-only or full cache directory only costs a re-decode next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(tensors, tmp)
        os.replace(tmp, path)
    except OSError:
        pass
