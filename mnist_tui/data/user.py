"""A user's own dataset, named by its path: an IDX quartet, an .npz, or image folders.

Formats (see the README's "Your own models and data"):

- a folder with ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``);
- an ``.npz`` with ``x_train, y_train, x_test, y_test`` (Keras' convention), images
  (N, H, W) or (N, H, W, C); loaded with ``allow_pickle=False``;
- a folder ``train/<class>/*.png`` and ``test/<class>/*.png`` (torchvision's ImageFolder).

Class names come from a ``classes.txt`` (one name a line, label order) beside the data,
else from the class folders, else they are the label numbers. Everything is decoded once,
checked, and cached under the content hash of its files; a second look at unchanged files
(same sizes and times) reads a small index and decodes nothing. numpy and Pillow only:
checking an experiment never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_tui.data.formats import cache_dir, read_idx
from mnist_tui.errors import DataError

CACHE_VERSION = 1  # of the decoded cache: a change to decoding must not reuse old files
IDX_NAMES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# torchvision's ImageFolder extensions
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".pgm",
    ".ppm",
)
MAX_CLASSES = 10_000
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class UserMeta:
    """What is known of a user dataset without its pixels."""

    path: str
    format: str  # "idx", "npz" or "folder"
    hash: str  # content hash of its files (16 hex digits)
    classes: tuple[str, ...]
    shape: tuple[int, int, int]  # channels, height, width
    train_count: int
    test_count: int
    mean: float  # of training pixels scaled to 0..1
    std: float

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"], d["shape"] = list(self.classes), list(self.shape)
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> UserMeta:
        return UserMeta(
            path=str(d["path"]),
            format=str(d["format"]),
            hash=str(d["hash"]),
            classes=tuple(str(c) for c in d["classes"]),
            shape=(int(d["shape"][0]), int(d["shape"][1]), int(d["shape"][2])),
            train_count=int(d["train_count"]),
            test_count=int(d["test_count"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
        )


# --------------------------------------------------------------------------- finding files


def _format_of(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".npz":
            return "npz"
        raise DataError(f"{path} is a file but not an .npz (x_train, y_train, x_test, y_test)")
    if not path.is_dir():
        raise DataError(
            f"{path} does not exist: expected an .npz file or a folder of IDX files or "
            "of train/<class>/ and test/<class>/ images"
        )
    if (path / "train").is_dir() or (path / "test").is_dir():
        return "folder"
    if any(_idx_file(path, n) for n in IDX_NAMES.values()):
        return "idx"
    raise DataError(
        f"{path} holds no dataset: expected train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
        " (an IDX quartet), or folders train/<class>/ and test/<class>/ of images"
    )


def _idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _class_folders(split: Path) -> list[Path]:
    return sorted(p for p in split.iterdir() if p.is_dir() and _visible(p))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _classes_file(path: Path) -> Path | None:
    folder = path if path.is_dir() else path.parent
    f = folder / "classes.txt"
    return f if f.is_file() else None


def dataset_files(path: Path) -> list[Path]:
    """Every file the dataset is made of (what its hash covers), sorted."""
    fmt = _format_of(path)
    files: list[Path] = []
    if fmt == "npz":
        files.append(path)
    elif fmt == "idx":
        for name in IDX_NAMES.values():
            f = _idx_file(path, name)
            if f is None:
                raise DataError(f"{path / name} is missing (or {name}.gz): an IDX quartet needs 4")
            files.append(f)
    else:
        for split in ("train", "test"):
            if not (path / split).is_dir():
                raise DataError(f"{path / split} is missing: image folders need train/ and test/")
            files += _images_in(path / split)
    extra = _classes_file(path)
    if extra is not None:
        files.append(extra)
    return sorted(files)


def _signature(files: list[Path]) -> str:
    """Names, sizes and modification times: changes whenever a file does (cheaply)."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def content_hash(path: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(os.path.relpath(f, path if path.is_dir() else path.parent).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\n")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- decoding


def _read_classes(path: Path) -> tuple[Path, list[str]] | None:
    f = _classes_file(path)
    if f is None:
        return None
    try:
        names = [line.strip() for line in f.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {f}: {exc}") from None
    names = [n for n in names if n]
    if not names:
        raise DataError(f"{f} lists no class names (expected one name a line)")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{f} names class '{dup}' twice")
    return f, names


def _as_images(arr: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) with C in 1, 3 -> uint8 (N, C, H, W)."""
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise DataError(
            f"{where}: images of shape {tuple(arr.shape)}, expected (N, height, width) or "
            "(N, height, width, 1 or 3)"
        )
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1 or np.isnan(arr).any()):
            raise DataError(f"{where}: float pixels must lie in 0..1")
        return np.ascontiguousarray(np.round(arr * 255).astype(np.uint8))
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{where}: integer pixels must lie in 0..255")
        return np.ascontiguousarray(arr.astype(np.uint8))
    raise DataError(f"{where}: pixels of type {arr.dtype}, expected uint8 (or floats in 0..1)")


def _as_labels(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{where}: labels of shape {tuple(arr.shape)}, expected (N,)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{where}: labels of type {arr.dtype}, expected whole numbers")
    return arr.astype(np.int64)


def _load_npz(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise DataError(
                    f"{path} lacks {', '.join(missing)}: expected arrays x_train, y_train, "
                    f"x_test, y_test (it holds {', '.join(z.files) or 'none'})"
                )
            out = {}
            for ours, key in zip(IDX_NAMES, NPZ_KEYS, strict=True):
                out[ours] = (z[key], f"{path} [{key}]")
            return out
    except DataError:
        raise
    except ValueError as exc:  # object arrays: would need unpickling, which is never done
        raise DataError(
            f"{path} cannot be read without unpickling ({exc}); save plain arrays"
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz: {exc}") from None


def _load_idx(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    out = {}
    for ours, name in IDX_NAMES.items():
        f = _idx_file(path, name)
        if f is None:
            raise DataError(f"{path / name} is missing (or {name}.gz): an IDX quartet needs 4")
        out[ours] = (read_idx(f), str(f))
    return out


def _open_image(f: Path) -> Any:
    from PIL import Image

    try:
        im = Image.open(f)
        im.load()  # a truncated or damaged file fails here, not later
        return im
    except Exception as exc:  # Pillow raises many types for damaged files
        raise DataError(f"{f} is not a readable image: {exc}") from None


def _load_folder(
    path: Path, names: list[str] | None, classes_file: Path | None
) -> tuple[dict[str, tuple[np.ndarray, str]], list[str]]:
    train_classes = [p.name for p in _class_folders(path / "train")]
    if not train_classes:
        raise DataError(f"{path / 'train'} holds no class folders (train/<class>/*.png)")
    if names is None:
        names = train_classes
    else:
        for c in train_classes:
            if c not in names:
                raise DataError(
                    f"{path / 'train' / c}: class '{c}' is not in {classes_file} "
                    f"(its labels would lie outside the {len(names)} classes)"
                )
    items: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for split in ("train", "test"):
        for folder in _class_folders(path / split):
            if folder.name not in names:
                raise DataError(
                    f"{folder}: class '{folder.name}' is not a training class "
                    f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
                )
            images = _images_in(folder)
            if not images:
                raise DataError(f"{folder} is an empty class folder: it holds no images")
            label = names.index(folder.name)
            items[split] += [(f, label) for f in images]
        if not items[split]:
            raise DataError(f"{path / split} holds no images in class folders")
    # one pass over the headers first: sizes must agree, and any colour image makes all RGB
    first: tuple[Path, tuple[int, int]] | None = None
    colour = False
    opened: dict[Path, Any] = {}
    for f, _ in items["train"] + items["test"]:
        im = _open_image(f)
        opened[f] = im
        if first is None:
            first = (f, im.size)
        elif im.size != first[1]:
            raise DataError(
                f"{f} is {im.size[0]}x{im.size[1]} but {first[0]} is {first[1][0]}x"
                f"{first[1][1]}: every image must have the same size"
            )
        colour = colour or im.mode not in GREY_MODES
    mode = "RGB" if colour else "L"
    out: dict[str, tuple[np.ndarray, str]] = {}
    for split, key in (("train", "train"), ("test", "test")):
        pixels = []
        for f, _ in items[split]:
            im = opened.pop(f)
            arr = np.asarray(im.convert(mode), dtype=np.uint8)
            im.close()
            pixels.append(arr)
        x = np.stack(pixels)
        out[f"{key}_x"] = (x, str(path / split))
        out[f"{key}_y"] = (
            np.array([label for _, label in items[split]], dtype=np.int64),
            str(path / split),
        )
    return out, names


def decode(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read and check every file: images (N, C, H, W) uint8, labels (N,) int64, classes."""
    fmt = _format_of(path)
    read = _read_classes(path)
    classes_file, names = (read[0], list(read[1])) if read else (None, None)
    if fmt == "folder":
        raw, names = _load_folder(path, names, classes_file)
    else:
        raw = _load_npz(path) if fmt == "npz" else _load_idx(path)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        (x, x_where), (y, y_where) = raw[f"{split}_x"], raw[f"{split}_y"]
        arrays[f"{split}_x"] = _as_images(x, x_where)
        arrays[f"{split}_y"] = _as_labels(y, y_where)
        if len(arrays[f"{split}_x"]) != len(arrays[f"{split}_y"]):
            raise DataError(
                f"{y_where}: {len(arrays[f'{split}_y'])} labels for "
                f"{len(arrays[f'{split}_x'])} images in {x_where}: the counts must match"
            )
        if not len(arrays[f"{split}_y"]):
            raise DataError(f"{x_where} holds no images")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DataError(
            f"{raw['test_x'][1]}: test images of shape {arrays['test_x'].shape[1:]} "
            f"(channels, height, width) but training images of {arrays['train_x'].shape[1:]}"
        )
    if names is None:
        top = max(int(arrays["train_y"].max()), int(arrays["test_y"].max()))
        if top >= MAX_CLASSES:
            raise DataError(
                f"{raw['train_y'][1]}: label {top} would make {top + 1} classes (at most "
                f"{MAX_CLASSES}); labels are numbered 0..classes-1"
            )
        names = [str(i) for i in range(top + 1)]
    for split in ("train", "test"):
        y = arrays[f"{split}_y"]
        bad = np.nonzero((y < 0) | (y >= len(names)))[0]
        if len(bad):
            i = int(bad[0])
            source = f"from {classes_file}" if classes_file else "numbered from 0"
            raise DataError(
                f"{raw[f'{split}_y'][1]}: label {int(y[i])} (at index {i}) is outside the "
                f"{len(names)} classes ({source}); {len(bad)} such label(s)"
            )
    return arrays, names


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Of all training pixels scaled to 0..1, in chunks so a big set needs no float copy."""
    total = 0.0
    squares = 0.0
    n = x.size
    flat = x.reshape(len(x), -1)
    for i in range(0, len(flat), 4096):
        chunk = flat[i : i + 4096].astype(np.float64) / 255.0
        total += float(chunk.sum())
        squares += float((chunk * chunk).sum())
    mean = total / max(n, 1)
    std = max(squares / max(n, 1) - mean * mean, 0.0) ** 0.5
    return mean, std if std > 1e-6 else 1.0  # a blank set must not divide by zero


# --------------------------------------------------------------------------- cache

_memory: dict[str, tuple[str, UserMeta]] = {}  # path -> (signature, meta)
_lock = threading.Lock()


def _user_cache() -> Path:
    return cache_dir() / "user-data"


def _index_path() -> Path:
    return _user_cache() / "index.json"


def _read_index() -> dict[str, Any]:
    try:
        data = json.loads(_index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Any) -> None:
    """Best effort: an unwritable cache only costs a decode next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def _arrays_path(digest: str) -> Path:
    return _user_cache() / f"{digest}-v{CACHE_VERSION}.npz"


def _remember(path: Path, signature: str, meta: UserMeta) -> None:
    with _lock:
        _memory[str(path)] = (signature, meta)
    index = _read_index()
    index[str(path)] = {"signature": signature, "meta": meta.to_json(), "v": CACHE_VERSION}
    while len(index) > 500:
        del index[next(iter(index))]
    _write_json(_index_path(), index)


def _build(path: Path, files: list[Path], signature: str) -> tuple[UserMeta, dict[str, np.ndarray]]:
    digest = content_hash(path, files)
    arrays, names = decode(path)
    mean, std = mean_std(arrays["train_x"])
    c, h, w = arrays["train_x"].shape[1:]
    meta = UserMeta(
        path=str(path),
        format=_format_of(path),
        hash=digest,
        classes=tuple(names),
        shape=(int(c), int(h), int(w)),
        train_count=len(arrays["train_y"]),
        test_count=len(arrays["test_y"]),
        mean=mean,
        std=std,
    )
    try:
        target = _arrays_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, target)
    except OSError:
        pass
    _remember(path, signature, meta)
    return meta, arrays


def describe(path: Path) -> UserMeta:
    """Classes, shape, counts, normalisation and hash; decodes only what was never seen."""
    path = path.resolve()
    files = dataset_files(path)
    signature = _signature(files)
    with _lock:
        hit = _memory.get(str(path))
    if hit is not None and hit[0] == signature:
        return hit[1]
    entry = _read_index().get(str(path))
    if (
        isinstance(entry, dict)
        and entry.get("signature") == signature
        and entry.get("v") == CACHE_VERSION
    ):
        try:
            meta = UserMeta.from_json(entry["meta"])
        except (KeyError, TypeError, ValueError, IndexError):
            meta = None
        if meta is not None:
            with _lock:
                _memory[str(path)] = (signature, meta)
            return meta
    return _build(path, files, signature)[0]


def load(path: Path) -> tuple[UserMeta, dict[str, np.ndarray]]:
    """The decoded arrays (from the cache when the files are unchanged) and their meta."""
    meta = describe(path)
    cached = _arrays_path(meta.hash)
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as z:
                arrays = {k: z[k] for k in IDX_NAMES}
            if arrays["train_x"].shape[1:] == meta.shape:
                return meta, arrays
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            pass  # a damaged cache is rebuilt, never trusted
    path = path.resolve()
    files = dataset_files(path)
    return _build(path, files, _signature(files))
