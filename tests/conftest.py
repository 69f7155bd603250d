"""Shared fixtures: the real data directory, tiny generated IDX datasets, a run store."""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mnist_tui.data import files as data_files

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "experiments"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _close_indexes() -> Iterator[None]:
    """The run indexes a test opened are closed after it: a session of a thousand tests
    would otherwise hold thousands of open files (select() refuses any above 1023)."""
    from mnist_tui.runs.index import close_indexes

    yield
    close_indexes()


def _real_data_dir() -> Path | None:
    env = os.environ.get("MNIST_TUI_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(data_files.resolve_data_dir())
    for c in candidates:
        if (c / "MNIST" / "raw").is_dir() and (c / "FashionMNIST" / "raw").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The genuine datasets; CI sets MNIST_TUI_REQUIRE_DATA=1 so a missing copy fails."""
    found = _real_data_dir()
    if found is None:
        if os.environ.get("MNIST_TUI_REQUIRE_DATA"):
            pytest.fail("MNIST_TUI_DATA does not point at MNIST/raw and FashionMNIST/raw")
        pytest.skip("real MNIST / Fashion-MNIST not found (set MNIST_TUI_DATA)")
    return found


def write_idx(path: Path, array: torch.Tensor, gz: bool = True) -> None:
    """Write a uint8 tensor as an IDX file (the format of the MNIST distribution)."""
    header = struct.pack(">BBBB", 0, 0, 8, array.dim())
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.contiguous().numpy().tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def make_fake_dataset(
    root: Path, folder: str = "MNIST", n_train: int = 200, n_test: int = 50, seed: int = 0
) -> Path:
    """Small learnable IDX files: each class is a bright square at its own place."""
    g = torch.Generator().manual_seed(seed)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 10
        x = torch.randint(0, 40, (n, 28, 28), generator=g, dtype=torch.uint8)
        for i, c in enumerate(y.tolist()):
            r, col = 2 + (c // 5) * 12, 2 + (c % 5) * 5
            x[i, r : r + 8, col : col + 4] = 250
        return x, y.to(torch.uint8)

    raw = root / folder / "raw"
    tx, ty = images(n_train)
    sx, sy = images(n_test)
    write_idx(raw / "train-images-idx3-ubyte.gz", tx)
    write_idx(raw / "train-labels-idx1-ubyte.gz", ty)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", sx)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", sy)
    return root


@pytest.fixture
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory of generated IDX files, with checksum checks pointed at them."""
    root = make_fake_dataset(tmp_path / "data")
    for key, info in data_files.DATASETS.items():
        if key != "mnist":
            continue
        md5 = {}
        for name in data_files.FILES:
            gz = root / info.folder / "raw" / f"{name}.gz"
            md5[name] = (data_files._md5(gz), "")
        monkeypatch.setitem(
            data_files.DATASETS,
            key,
            data_files.DatasetInfo(
                info.key, info.folder, info.title, info.classes, info.mean, info.std, md5
            ),
        )
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path / "cache"))
    data_files._memory_cache.clear()
    return root


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write runs into the repository or the user's cache."""
    monkeypatch.setenv("MNIST_TUI_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MNIST_TUI_EXPERIMENTS", str(EXPERIMENTS))
    monkeypatch.setenv("MNIST_TUI_CACHE", str(tmp_path.parent / "mnist-tui-cache"))
