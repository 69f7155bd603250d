"""Every dataset format, generated small in its exact layout: a user's IDX quartet, .npz and
image folders, and the registry's CIFAR-10 binary, EMNIST and QMNIST layouts. Each trains
two epochs (the second after a resume), is listed, shown and diffed; bad data is an exit-2
error naming the file, before any run directory exists."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.data import files as data_files
from mnist_tui.data import registry
from mnist_tui.data.formats import write_idx
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import run_experiment
from mnist_tui.train.events import EpochEnded, Event

N_TRAIN, N_TEST = 30, 12


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def images(n: int, classes: int, side: int = 8, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Learnable images: class c lights up its own band of rows. (N, C, side, side) uint8."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (n, channels, side, side), dtype=np.uint8)
    band = max(1, side // classes)
    for i in range(n):
        c = i % classes
        x[i, :, c * band : (c + 1) * band, :] = 240
    return x


def labels(n: int, classes: int, offset: int = 0) -> np.ndarray:
    return ((np.arange(n) % classes) + offset).astype(np.uint8)


# ----------------------------------------------------------------------------- writers


def make_idx(root: Path, classes: int = 3) -> Path:
    write_idx(root / "train-images-idx3-ubyte.gz", images(N_TRAIN, classes)[:, 0])
    write_idx(root / "train-labels-idx1-ubyte.gz", labels(N_TRAIN, classes))
    write_idx(root / "t10k-images-idx3-ubyte", images(N_TEST, classes, seed=1)[:, 0])
    write_idx(root / "t10k-labels-idx1-ubyte", labels(N_TEST, classes))
    (root / "classes.txt").write_text("alpha\nbeta\ngamma\n")
    return root


def make_npz(root: Path, classes: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "digits.npz"
    np.savez(
        path,
        x_train=images(N_TRAIN, classes)[:, 0],  # Keras: (N, H, W)
        y_train=labels(N_TRAIN, classes).astype(np.int64),
        x_test=images(N_TEST, classes, seed=1)[:, 0],
        y_test=labels(N_TEST, classes).astype(np.int64),
    )
    return path


def make_folder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog", "owl"), side: int = 8, rgb: bool = False
) -> Path:
    for split, n, seed in (("train", N_TRAIN, 0), ("test", N_TEST, 1)):
        x = images(n, len(classes), side, 3 if rgb else 1, seed)
        for i in range(n):
            folder = root / split / classes[i % len(classes)]
            folder.mkdir(parents=True, exist_ok=True)
            arr = x[i].transpose(1, 2, 0) if rgb else x[i, 0]
            Image.fromarray(arr, "RGB" if rgb else "L").save(folder / f"{i:03d}.png")
    return root


def make_cifar(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CIFAR-10's binary batches with 20 records each (the real ones hold 10,000)."""
    monkeypatch.setattr(registry, "CIFAR10_RECORDS", 20)
    folder = data_dir / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for i, name in enumerate((*registry.CIFAR10_TRAIN, *registry.CIFAR10_TEST)):
        x = images(20, 10, 32, 3, seed=i)
        y = labels(20, 10)
        rows = np.concatenate([y[:, None], x.reshape(20, -1)], axis=1)
        (folder / name).write_bytes(rows.astype(np.uint8).tobytes())
    return data_dir


def make_emnist(data_dir: Path) -> Path:
    """EMNIST 'letters' as torchvision extracts it: labels 1..26, images transposed."""
    raw = data_dir / "EMNIST" / "raw"
    for part, n, seed in (("train", 52, 0), ("test", 26, 1)):
        x = images(n, 26, 28, seed=seed)[:, 0].transpose(0, 2, 1).copy()
        write_idx(raw / f"emnist-letters-{part}-images-idx3-ubyte", x)
        write_idx(raw / f"emnist-letters-{part}-labels-idx1-ubyte", labels(n, 26, offset=1))
    return data_dir


def make_qmnist(data_dir: Path) -> Path:
    """QMNIST: int32 label files of 8 columns (class first), decompressed."""
    raw = data_dir / "QMNIST" / "raw"
    for part, n, seed in (("train", N_TRAIN, 0), ("test", N_TEST, 1)):
        write_idx(raw / f"qmnist-{part}-images-idx3-ubyte", images(n, 10, 28, seed=seed)[:, 0])
        y = np.zeros((n, 8), dtype=np.int32)
        y[:, 0] = labels(n, 10)
        y[:, 5] = 1000 + np.arange(n)  # other columns: writer ids etc., not the class
        write_idx(raw / f"qmnist-{part}-labels-idx2-int", y)
    return data_dir


def experiment(folder: Path, name: str, dataset: str, model: str = "logreg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(
        f'description = "{name}"\n[data]\ndataset = "{dataset}"\n'
        f'[model]\nname = "{model}"\n[optim]\nname = "adam"\nlr = 0.01\n'
        "[train]\nepochs = 2\nbatch_size = 16\n"
    )
    return path


# ----------------------------------------------------------------------------- the round trip


def _stop(event: Event) -> None:
    if isinstance(event, EpochEnded):
        raise KeyboardInterrupt  # as Ctrl-C: the run is stored as killed, resumable


def round_trip(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    exp: Path,
    classes: list[str],
    data_dir: Path,
    change: Callable[[], None],
) -> None:
    """Train (killed after epoch 1, resumed to 2), list, show, change the data, train
    again, and diff: the data hash differs and only it."""
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs)]
    data = ["--data-dir", str(data_dir), "--no-download", "--device", "cpu"]
    code, out, err = cli(capsys, "list", "--experiments-dir", str(exp.parent), "--json")
    assert code == 0, err
    row = next(r for r in json.loads(out) if r["name"] == exp.stem)
    assert row["parameters"] > 0

    spec = load_experiment(str(exp))
    assert spec.num_classes() == len(classes)
    store = RunStore(runs)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, store, device="cpu", data_dir=data_dir, download=False, on_event=_stop)
    (killed,) = store.runs()
    assert killed.status == "killed" and len(killed.metrics()) == 1
    code, out, err = cli(capsys, "resume", killed.id, *common, *data, "-q")
    assert code == 0, err + out
    first = RunStore(runs).runs()[0]
    assert first.status == "completed" and len(first.metrics()) == 2
    assert first.summary["classes"] == classes
    env = json.loads((first.path / "env.json").read_text())
    assert env["data"]["hash"] and env["data"]["classes"] == len(classes)

    code, out, err = cli(capsys, "show", first.id, *common)
    assert code == 0, err
    assert "Per epoch" in out and "Confusion" in out  # a narrow table wraps its title
    assert all(c[:5] in out for c in classes)
    code, out, err = cli(capsys, "runs", *common, "--json")
    assert [r["id"] for r in json.loads(out)] == [first.id]

    change()
    data_files._memory_cache.clear()
    code, out, err = cli(capsys, "run", str(exp), *common, *data, "-q")
    assert code == 0, err + out
    code, out, err = cli(capsys, "diff", "2", "1", *common, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert [c["key"] for c in d["definition"]] == ["data.hash"]
    assert d["definition"][0]["a"] == env["data"]["hash"] != d["definition"][0]["b"]


def _touch_image(path: Path) -> Callable[[], None]:
    def change() -> None:
        arr = np.asarray(Image.open(path)).copy()
        arr[0, 0] = 255 - arr[0, 0]
        Image.fromarray(arr).save(path)

    return change


def test_idx_quartet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_idx(tmp_path / "exps" / "data" / "letters")
    exp = experiment(tmp_path / "exps", "own_idx", "data/letters")

    def change() -> None:
        x = images(N_TEST, 3, seed=7)[:, 0]
        write_idx(data / "t10k-images-idx3-ubyte", x)

    round_trip(capsys, tmp_path, exp, ["alpha", "beta", "gamma"], tmp_path, change)


def test_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_npz(tmp_path / "exps" / "npz")
    exp = experiment(tmp_path / "exps", "own_npz", "npz/digits.npz", model="mlp")

    def change() -> None:
        with np.load(path) as z:
            arrays = dict(z)
        arrays["y_test"] = arrays["y_test"][::-1].copy()
        np.savez(path, **arrays)

    round_trip(capsys, tmp_path, exp, ["0", "1", "2"], tmp_path, change)


def test_image_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_folder(tmp_path / "exps" / "pets")
    exp = experiment(tmp_path / "exps", "own_pngs", "./pets")
    change = _touch_image(root / "train" / "cat" / "000.png")
    round_trip(capsys, tmp_path, exp, ["cat", "dog", "owl"], tmp_path, change)


def test_cifar10_binary_with_lenet5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = make_cifar(tmp_path / "datasets", monkeypatch)
    exp = experiment(tmp_path / "exps", "cifar", "cifar10", model="lenet5")
    spec = load_experiment(str(exp))
    assert spec.input_shape() == (3, 32, 32)
    raw = data_files.load_raw("cifar10", data_dir, download=False)
    assert raw.train_x.shape == (100, 3, 32, 32) and raw.test_x.shape == (20, 3, 32, 32)
    # byte 0 of a record is the label; then the red plane, row by row
    first = (data_dir / "cifar-10-batches-bin" / "data_batch_1.bin").read_bytes()
    assert raw.train_y[0] == first[0] and raw.train_x[0, 0, 0, 1] == first[2]

    def change() -> None:
        p = data_dir / "cifar-10-batches-bin" / "test_batch.bin"
        b = bytearray(p.read_bytes())
        b[5] ^= 0xFF
        p.write_bytes(bytes(b))

    round_trip(capsys, tmp_path, exp, list(registry.DATASETS["cifar10"].classes), data_dir, change)


def test_emnist_letters_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = make_emnist(tmp_path / "datasets")
    raw = data_files.load_raw("emnist_letters", data_dir, download=False)
    assert raw.train_x.shape == (52, 1, 28, 28) and int(raw.train_y.min()) == 1
    # stored transposed: rows of a class band become rows again once loaded
    assert int(raw.train_x[0, 0, 0, :].float().mean()) == 240  # class 0: row 0 lit
    exp = experiment(tmp_path / "exps", "letters", "emnist_letters")

    def change() -> None:
        p = data_dir / "EMNIST" / "raw" / "emnist-letters-test-labels-idx1-ubyte"
        write_idx(p, labels(26, 26, offset=1)[::-1].copy())

    classes = list(registry.EMNIST_CLASSES["letters"])
    round_trip(capsys, tmp_path, exp, classes, data_dir, change)


def test_qmnist_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = make_qmnist(tmp_path / "datasets")
    raw = data_files.load_raw("qmnist", data_dir, download=False)
    assert raw.train_y.tolist() == labels(N_TRAIN, 10).tolist()  # the first column only
    exp = experiment(tmp_path / "exps", "q", "qmnist")

    def change() -> None:
        p = data_dir / "QMNIST" / "raw" / "qmnist-test-images-idx3-ubyte"
        write_idx(p, images(N_TEST, 10, 28, seed=9)[:, 0])

    round_trip(capsys, tmp_path, exp, list(registry.DIGITS), data_dir, change)


def test_shipped_model_on_colour_32x32_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_folder(tmp_path / "exps" / "rgb", side=32, rgb=True)
    exp = experiment(tmp_path / "exps", "rgb", "rgb", model="lenet5")
    # a bare folder name is a typo of a dataset name until written as a path
    code, _, err = cli(capsys, "show", str(exp))
    assert code == 2 and "./my_digits" in " ".join(err.split())
    exp = experiment(tmp_path / "exps", "rgb", "./rgb", model="lenet5")
    spec = load_experiment(str(exp))
    # 61,706 on MNIST; C1 sees 3 channels (+300 weights), the output 3 classes (-595)
    assert spec.input_shape() == (3, 32, 32) and spec.parameters == 61_706 + 300 - 595
    runs = tmp_path / "runs"
    code, out, err = cli(
        capsys, "run", str(exp), "--runs-dir", str(runs), "--device", "cpu", "--epochs", "1"
    )
    assert code == 0, err + out
    code, out, err = cli(capsys, "plot", "1", "--runs-dir", str(runs), "--samples", "4")
    assert code == 0, err
    assert "test images" in out and "cat" in out
    mlp = experiment(tmp_path / "exps", "rgb_mlp", "./rgb", model="custom_mlp")
    code, _, err = cli(capsys, "show", str(mlp))
    flat = " ".join(err.split())
    assert code == 2 and "custom_mlp takes one channel" in flat and "3 channels" in flat


def test_unknown_dataset_suggests_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(
        capsys, "run", "lenet5", "-S", "data.dataset=kmnst", "--runs-dir", str(tmp_path)
    )
    flat = " ".join(err.split())
    assert code == 2 and "Did you mean 'kmnist'?" in flat and "Traceback" not in err


# ----------------------------------------------------------------------------- bad data


def _bad_counts(root: Path) -> tuple[str, str]:
    root.mkdir(parents=True)
    np.savez(
        root / "d.npz",
        x_train=images(10, 2)[:, 0],
        y_train=labels(9, 2),
        x_test=images(4, 2)[:, 0],
        y_test=labels(4, 2),
    )
    return "d/d.npz", "y_train"


def _bad_label(root: Path) -> tuple[str, str]:
    make_idx(root)
    y = labels(N_TEST, 3)
    y[4] = 7
    write_idx(root / "t10k-labels-idx1-ubyte", y)
    return "d", "t10k-labels-idx1-ubyte"


def _mixed_sizes(root: Path) -> tuple[str, str]:
    make_folder(root)
    Image.fromarray(np.zeros((9, 8), np.uint8), "L").save(root / "test" / "dog" / "odd.png")
    return "d", "odd.png"


def _empty_class(root: Path) -> tuple[str, str]:
    make_folder(root)
    (root / "train" / "emu").mkdir()
    return "d", "emu"


def _corrupt_image(root: Path) -> tuple[str, str]:
    make_folder(root)
    p = root / "train" / "owl" / "002.png"
    p.write_bytes(p.read_bytes()[:30])
    return "d", "002.png"


def _truncated_idx(root: Path) -> tuple[str, str]:
    make_idx(root)
    p = root / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-5])
    return "d", "t10k-images-idx3-ubyte"


@pytest.mark.parametrize(
    "make",
    [_bad_counts, _bad_label, _mixed_sizes, _empty_class, _corrupt_image, _truncated_idx],
)
def test_bad_data_is_exit_2_naming_the_file_with_no_run_left(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], tuple[str, str]],
) -> None:
    dataset, named = make(tmp_path / "exps" / "d")
    exp = experiment(tmp_path / "exps", "bad", "./" + dataset)
    runs = tmp_path / "runs"
    for command in (
        ["run", str(exp), "--device", "cpu"],
        ["queue", "add", str(exp), "--no-start-worker"],
    ):
        code, out, err = cli(capsys, *command, "--runs-dir", str(runs))
        flat = "".join(err.split())  # the console wraps long paths at its width
        assert code == 2, (command, err, out)
        assert named in flat and "Traceback" not in err + out
        assert not runs.exists() or not any(runs.rglob("spec.toml"))


def test_idx_header_is_checked(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(struct.pack(">BBBB", 1, 2, 3, 4))
    from mnist_tui.data.formats import read_idx
    from mnist_tui.errors import DataError

    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(p)


def test_colour_pictures_keep_their_colour() -> None:
    from mnist_tui.views.pictures import glyph_grid, image_text

    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    text = image_text([[red, blue], [blue, red], [red, red]])  # an odd last row too
    styles = {str(span.style) for span in text.spans}
    assert "rgb(255,0,0) on rgb(0,0,255)" in styles and "rgb(255,0,0) on rgb(0,0,0)" in styles
    assert glyph_grid([[red, [1.0, 1.0, 1.0]], [red, red]], 0.5) == [" ▀"]  # by brightness
