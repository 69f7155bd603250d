"""Datasets: IDX decoding, checksums, missing files, splits, device tensors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mnist_tui.config.spec import AugmentSpec, DataSpec
from mnist_tui.data import device as data_device
from mnist_tui.data import files as data_files
from mnist_tui.data import splits as data_splits
from mnist_tui.errors import DataError

from .conftest import write_idx


def test_read_idx_roundtrip(tmp_path: Path) -> None:
    x = torch.randint(0, 255, (5, 28, 28), dtype=torch.uint8)
    for gz in (True, False):
        p = tmp_path / f"x{gz}"
        write_idx(p if not gz else p.with_suffix(".gz"), x, gz=gz)
        assert torch.equal(data_files.read_idx(p if not gz else p.with_suffix(".gz")), x)


def test_truncated_idx_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "t"
    write_idx(p, torch.zeros(5, 28, 28, dtype=torch.uint8), gz=False)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        data_files.read_idx(p)


def test_missing_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        data_files.load_raw("fashion_mnist", tmp_path, download=False)
    msg = str(exc.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "--data-dir" in msg and "MNIST_TUI_DATA" in msg


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(info: object, root: Path) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(data_files, "_download", offline)
    with pytest.raises(DataError, match="the download failed: network is unreachable"):
        data_files.load_raw("mnist", tmp_path, download=True)


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNIST_TUI_DATA", str(tmp_path / "env"))
    assert data_files.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert data_files.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("MNIST_TUI_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_files.resolve_data_dir() == tmp_path / "xdg" / "mnist-tui" / "data"


@pytest.mark.realdata
def test_real_checksums_and_counts(real_data: Path) -> None:
    ds = data_files.load_raw("mnist", real_data, download=False)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert torch.bincount(ds.test_y).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    fm = data_files.load_raw("fashion_mnist", real_data, download=False)
    assert torch.bincount(fm.train_y).tolist() == [6000] * 10


@pytest.mark.realdata
def test_corrupt_file_names_the_file(real_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "d"
    shutil.copytree(real_data / "MNIST", copy / "MNIST")
    target = copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(DataError) as exc:
        data_files.load_raw("mnist", copy, download=False)
    assert "t10k-labels-idx1-ubyte.gz" in str(exc.value) and "checksum mismatch" in str(exc.value)


@pytest.mark.realdata
def test_uncompressed_files_are_accepted(real_data: Path, tmp_path: Path) -> None:
    import gzip

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data_files.FILES:
        (raw / name).write_bytes(
            gzip.decompress((real_data / "MNIST" / "raw" / f"{name}.gz").read_bytes())
        )
    data_files._memory_cache.clear()
    ds = data_files.load_raw("mnist", tmp_path, download=False)
    assert ds.train_x.shape == (60000, 1, 28, 28)


def test_stratified_indices_keep_class_balance() -> None:
    labels = torch.arange(1000) % 10
    idx = data_splits.stratified_indices(labels, 100, seed=3)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert torch.bincount(labels[idx]).tolist() == [10] * 10
    assert torch.equal(idx, data_splits.stratified_indices(labels, 100, seed=3))


def test_prepare_split_pad_normalise_and_double(fake_data: Path) -> None:
    spec = DataSpec(dataset="mnist", pad=2, val_split=0.2)
    d = data_device.prepare(
        spec, AugmentSpec(double_hflip=True), torch.device("cpu"), fake_data, False
    )
    assert d.val_x is not None and d.val_x.shape == (40, 1, 32, 32)
    assert d.train_x.shape == (320, 1, 32, 32)  # 160 originals + 160 mirrored
    assert torch.equal(d.train_x[160:], d.train_x[:160].flip(-1))
    # the padding is black, i.e. the normalised background value
    assert torch.allclose(d.train_x[:, :, :2, :], torch.tensor(d.background))
    unit = data_device.prepare(
        DataSpec(normalize="unit"), AugmentSpec(), torch.device("cpu"), fake_data, False
    )
    assert unit.train_x.min() >= 0 and unit.train_x.max() <= 1 and unit.background == 0.0


def test_batches_cover_the_epoch_once() -> None:
    g = torch.Generator().manual_seed(0)
    batches = list(data_device.batch_indices(103, 10, g, torch.device("cpu")))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert sorted(torch.cat(batches).tolist()) == list(range(103))
