"""Dataset files: locate, verify checksums, decode once, and cache the decoded tensors.

Files follow torchvision's layout, ``<root>/MNIST/raw/train-images-idx3-ubyte[.gz]``,
so a data directory made by torchvision works as it is. Batches are drawn with
`randperm` + indexing from tensors already on the device: no DataLoader, no per-sample
Python.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_tui.errors import DataError

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetInfo:
    key: str
    folder: str  # torchvision's class name, the folder under the data directory
    title: str
    classes: tuple[str, ...]
    mean: float  # of training pixels scaled to 0..1
    std: float
    md5: dict[str, tuple[str, str]]  # file -> (md5 of .gz, md5 of the decompressed file)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        key="mnist",
        folder="MNIST",
        title="MNIST",
        classes=tuple(str(i) for i in range(10)),
        mean=0.1307,
        std=0.3081,
        md5={
            "train-images-idx3-ubyte": (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "6bbc9ace898e44ae57da46a324031adb",
            ),
            "train-labels-idx1-ubyte": (
                "d53e105ee54ea40749a09fcbcd1e9432",
                "a25bea736e30d166cdddb491f175f624",
            ),
            "t10k-images-idx3-ubyte": (
                "9fb629c4189551a2d022fa330f9573f3",
                "2646ac647ad5339dbf082846283269ea",
            ),
            "t10k-labels-idx1-ubyte": (
                "ec29112dd5afa0611ce80d1b7f02629c",
                "27ae3e4e09519cfbb04c329615203637",
            ),
        },
    ),
    "fashion_mnist": DatasetInfo(
        key="fashion_mnist",
        folder="FashionMNIST",
        title="Fashion-MNIST",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mean=0.2860,
        std=0.3530,
        md5={
            "train-images-idx3-ubyte": (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            ),
            "train-labels-idx1-ubyte": (
                "25c81989df183df01b3e8a0aad5dffbe",
                "9018921c3c673c538a1fc5bad174d6f9",
            ),
            "t10k-images-idx3-ubyte": (
                "bef4ecab320f06d8554ea6380940ec79",
                "8181f5470baa50b63fa0f6fddb340f0a",
            ),
            "t10k-labels-idx1-ubyte": (
                "bb300cfdad3c16e7a12a480ee83cd310",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
        },
    ),
}


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """`--data-dir`, else `MNIST_TUI_DATA`, else the per-user data directory."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("MNIST_TUI_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mnist-tui" / "data"


def cache_dir() -> Path:
    env = os.environ.get("MNIST_TUI_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mnist-tui"


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find(info: DatasetInfo, root: Path) -> tuple[dict[str, Path], list[str]]:
    raw = root / info.folder / "raw"
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in FILES:
        for candidate in (raw / f"{name}.gz", raw / name):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _missing_message(info: DatasetInfo, root: Path, missing: list[str], why: str) -> str:
    raw = root / info.folder / "raw"
    lines = [
        f"{info.title} is not in the data directory {root} ({why}).",
        f"Needed in {raw}/ (gzipped or not):",
        *[f"  {name}.gz" for name in missing],
        "Either copy the files there, point --data-dir (or MNIST_TUI_DATA) at a directory "
        f"that holds {info.folder}/raw/, or run with network access to download them.",
    ]
    return "\n".join(lines)


def _download(info: DatasetInfo, root: Path) -> None:
    """Download through torchvision (which also checks its own md5 sums)."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[info.key]
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(str(root), train=train, download=True)


def locate(key: str, root: Path, download: bool = True) -> dict[str, Path]:
    """Paths of the four files, downloading them first when missing and allowed."""
    info = DATASETS[key]
    found, missing = _find(info, root)
    if missing and download:
        try:
            _download(info, root)
        except Exception as exc:  # network errors come in many types
            raise DataError(
                _missing_message(info, root, missing, f"the download failed: {exc}")
            ) from None
        found, missing = _find(info, root)
    if missing:
        why = "downloads are off" if not download else "the download did not produce them"
        raise DataError(_missing_message(info, root, missing, why))
    return found


def verify(key: str, files: dict[str, Path]) -> str:
    """Check every file's md5; return a digest naming this exact set of files."""
    info = DATASETS[key]
    digests = []
    for name, path in files.items():
        gz_md5, raw_md5 = info.md5[name]
        expected = gz_md5 if path.suffix == ".gz" else raw_md5
        actual = _md5(path)
        if actual != expected:
            raise DataError(
                f"checksum mismatch for {path}: md5 {actual}, expected {expected}. "
                "The file is corrupt or truncated: delete it and copy or download it again."
            )
        digests.append(actual)
    return hashlib.md5("".join(digests).encode()).hexdigest()[:16]


def read_idx(path: Path) -> torch.Tensor:
    """Decode an IDX file (gzipped or not) into a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = 1
    for d in dims:
        count *= d
    if len(data) - offset != count:
        raise DataError(f"{path} is truncated: {len(data) - offset} bytes of {count} expected")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(dims)


@dataclass(frozen=True)
class RawDataset:
    """The decoded dataset: uint8 images (N, 28, 28) and int64 labels."""

    info: DatasetInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


_memory_cache: dict[tuple[str, str], RawDataset] = {}
_memory_lock = threading.Lock()


def load_raw(key: str, data_dir: Path | None = None, download: bool = True) -> RawDataset:
    """Locate, verify and decode a dataset; decoded tensors are cached in memory and on disk."""
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
    cache_file = cache_dir() / f"{key}-{digest}.pt"
    tensors: dict[str, torch.Tensor] | None = None
    if cache_file.is_file():
        try:
            tensors = torch.load(cache_file, weights_only=True)
        except Exception:  # a damaged cache is rebuilt, never trusted
            tensors = None
    if tensors is None:
        tensors = {
            "train_x": read_idx(files["train-images-idx3-ubyte"]),
            "train_y": read_idx(files["train-labels-idx1-ubyte"]).long(),
            "test_x": read_idx(files["t10k-images-idx3-ubyte"]),
            "test_y": read_idx(files["t10k-labels-idx1-ubyte"]).long(),
        }
        _write_cache(cache_file, tensors)
    ds = RawDataset(info, **tensors)
    with _memory_lock:
        _memory_cache[(key, digest)] = ds
    return ds


def _write_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Best effort: a read-only or full cache directory only costs a re-decode next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(tensors, tmp)
        os.replace(tmp, path)
    except OSError:
        pass
