"""The dataset registry: one small entry of plain data per dataset (no torch here).

Every entry says where its files lie under the data directory (torchvision's layout, so a
directory torchvision filled works as it is), their md5 sums where torchvision publishes
them, the class names, the input shape and the normalisation. Read-only commands read the
registry to check a `[data] dataset` and size a model without importing torch.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal

Layout = Literal["idx", "qmnist", "emnist", "cifar10"]
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetInfo:
    key: str
    folder: str  # torchvision's class name, the folder under the data directory
    title: str
    classes: tuple[str, ...]
    # of training pixels scaled to 0..1; None: computed from the training images
    mean: float | None
    std: float | None
    # file -> (md5 of the .gz, md5 of the decompressed file); None where none is published
    md5: dict[str, tuple[str | None, str | None]]
    shape: tuple[int, int, int] = (1, 28, 28)  # channels, height, width
    layout: Layout = "idx"
    # role (train_images, ...) -> file name; the MNIST names unless said otherwise
    files: dict[str, str] = field(default_factory=dict)
    # how torchvision downloads it: (class name in torchvision.datasets, keyword arguments)
    download: tuple[str, dict[str, object]] = ("", {})

    def file_names(self) -> dict[str, str]:
        return self.files or dict(zip(ROLES, IDX_FILES, strict=True))

    @property
    def raw_folder(self) -> str:
        """The folder under the data directory that holds the files."""
        return "cifar-10-batches-bin" if self.layout == "cifar10" else f"{self.folder}/raw"


IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DIGITS = tuple(string.digits)


def _idx(
    key: str,
    folder: str,
    title: str,
    classes: tuple[str, ...],
    mean: float | None,
    std: float | None,
    gz: tuple[str, str, str, str],
    raw: tuple[str | None, ...] = (None, None, None, None),
) -> DatasetInfo:
    return DatasetInfo(
        key=key,
        folder=folder,
        title=title,
        classes=classes,
        mean=mean,
        std=std,
        md5={n: (g, r) for n, g, r in zip(IDX_FILES, gz, raw, strict=True)},
        download=(folder, {}),
    )


# EMNIST's splits and class names, as torchvision names them ('letters' keeps its unused
# label 0 as "N/A": its labels run 1..26)
_MERGED = set("cijklmopsuvwxyz")
_ALL = set(string.digits + string.ascii_letters)
EMNIST_CLASSES: dict[str, tuple[str, ...]] = {
    "byclass": tuple(sorted(_ALL)),
    "bymerge": tuple(sorted(_ALL - _MERGED)),
    "balanced": tuple(sorted(_ALL - _MERGED)),
    "letters": ("N/A", *string.ascii_lowercase),
    "digits": DIGITS,
    "mnist": DIGITS,
}


def _emnist(split: str) -> DatasetInfo:
    names = {
        role: f"emnist-{split}-{part}-{kind}"
        for role, part, kind in (
            ("train_images", "train", "images-idx3-ubyte"),
            ("train_labels", "train", "labels-idx1-ubyte"),
            ("test_images", "test", "images-idx3-ubyte"),
            ("test_labels", "test", "labels-idx1-ubyte"),
        )
    }
    return DatasetInfo(
        key=f"emnist_{split}",
        folder="EMNIST",
        title=f"EMNIST {split}",
        classes=EMNIST_CLASSES[split],
        mean=None,
        std=None,
        # torchvision checks only the md5 of the archive it downloads (gzip.zip), not the
        # files it extracts from it
        md5={n: (None, None) for n in names.values()},
        layout="emnist",
        files=names,
        download=("EMNIST", {"split": split}),
    )


_QMNIST_FILES = {
    "train_images": "qmnist-train-images-idx3-ubyte",
    "train_labels": "qmnist-train-labels-idx2-int",
    "test_images": "qmnist-test-images-idx3-ubyte",
    "test_labels": "qmnist-test-labels-idx2-int",
}
_CIFAR10_FILES = {
    "train_images": "data_batch_1.bin",  # with data_batch_2..5.bin; labels are inline
    "test_images": "test_batch.bin",
}
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = ("test_batch.bin",)
CIFAR10_RECORDS = 10000  # per file: 1 label byte then 3072 pixel bytes (R, G, B planes)
CIFAR10_ARCHIVE = ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"

DATASETS: dict[str, DatasetInfo] = {
    "mnist": _idx(
        "mnist",
        "MNIST",
        "MNIST",
        DIGITS,
        0.1307,
        0.3081,
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        (
            "6bbc9ace898e44ae57da46a324031adb",
            "a25bea736e30d166cdddb491f175f624",
            "2646ac647ad5339dbf082846283269ea",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    ),
    "fashion_mnist": _idx(
        "fashion_mnist",
        "FashionMNIST",
        "Fashion-MNIST",
        (
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
        0.2860,
        0.3530,
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        (
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "9018921c3c673c538a1fc5bad174d6f9",
            "8181f5470baa50b63fa0f6fddb340f0a",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ),
    ),
    "kmnist": _idx(
        "kmnist",
        "KMNIST",
        "Kuzushiji-MNIST",
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        None,
        None,
        (
            "bdb82020997e1d708af4cf47b453dcf7",
            "e144d726b3acfaa3e44228e80efcd344",
            "5c965bf0a639b31b8f53240b1b52f4d7",
            "7320c461ea6c1c855c0b718fb2a4b134",
        ),
    ),
    "qmnist": DatasetInfo(
        key="qmnist",
        folder="QMNIST",
        title="QMNIST",
        classes=DIGITS,
        mean=None,
        std=None,
        md5={
            _QMNIST_FILES["train_images"]: ("ed72d4157d28c017586c42bc6afe6370", None),
            _QMNIST_FILES["train_labels"]: ("0058f8dd561b90ffdd0f734c6a30e5e4", None),
            _QMNIST_FILES["test_images"]: ("1394631089c404de565df7b7aeaf9412", None),
            _QMNIST_FILES["test_labels"]: ("5b5b05890a5e13444e108efe57b788aa", None),
        },
        layout="qmnist",
        files=_QMNIST_FILES,
        download=("QMNIST", {}),
    ),
    **{f"emnist_{s}": _emnist(s) for s in EMNIST_CLASSES},
    "cifar10": DatasetInfo(
        key="cifar10",
        folder="CIFAR10",
        title="CIFAR-10",
        classes=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        mean=None,
        std=None,
        # the binary version's files have no published sums; the archive has (and each
        # file's size is checked: 10,000 records of 3,073 bytes)
        md5={n: (None, None) for n in (*CIFAR10_TRAIN, *CIFAR10_TEST)},
        shape=(3, 32, 32),
        layout="cifar10",
        files=_CIFAR10_FILES,
        download=("", {}),
    ),
}


def input_shape(key: str) -> tuple[int, int, int]:
    return DATASETS[key].shape
