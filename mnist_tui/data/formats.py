"""File formats decoded with numpy alone (no torch): IDX, CIFAR-10's binary batches.

Also where data lives on disk (data directory, cache directory), so that checking an
experiment's data never imports torch.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from mnist_tui.errors import DataError

# IDX type codes (the MNIST distribution's format) -> numpy big-endian dtypes
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


def read_bytes(path: Path) -> bytes:
    """A file's bytes, decompressed when it ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_idx(path: Path) -> np.ndarray:
    """Decode an IDX file (gzipped or not): uint8 images/labels, or QMNIST's int32 labels."""
    data = read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (it does not start with an IDX header)")
    dtype = np.dtype(IDX_TYPES[data[2]])
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{path} is truncated: its header is cut short")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    need = count * dtype.itemsize
    if len(data) - offset != need:
        raise DataError(f"{path} is truncated: {len(data) - offset} bytes of {need} expected")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_bin(path: Path, records: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 binary batch: records of one label byte then R, G, B 32x32 planes.

    Returns images (N, 3, 32, 32) uint8 and labels (N,). Plain bytes: nothing unpickled.
    """
    data = read_bytes(path)
    if len(data) % CIFAR_RECORD or (records is not None and len(data) != records * CIFAR_RECORD):
        want = f"{records} records of" if records is not None else "a whole number of"
        raise DataError(
            f"{path} is not a CIFAR-10 binary batch: {len(data)} bytes, expected {want} "
            f"{CIFAR_RECORD}-byte records (1 label byte, 3072 pixel bytes)"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), rows[:, 0].astype(np.int64)


def write_idx(path: Path, array: np.ndarray, gz: bool | None = None) -> None:
    """Write an array as an IDX file (uint8, or int32 as QMNIST's labels); gzip by suffix."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    header = bytes([0, 0, code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array).astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz if gz is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=1)
    path.write_bytes(payload)
