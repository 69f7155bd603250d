"""Experiments traced to the authors' code: the settings produce what that code implies.

Layer lists, parameter counts (Keras `model.summary()` arithmetic), optimizer arguments,
the Keras legacy-decay learning-rate sequence, normalisation and padding semantics, and
the `[reference]` provenance keys. Where a copy of the authors' repositories is present
(`MNIST_TUI_MIRRORS`, see the README; unset: those checks skip), the cited lines are
checked against it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from mnist_tui import models
from mnist_tui.config.loading import load_experiment
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data import device as data_device
from mnist_tui.errors import SpecError
from mnist_tui.train.setup import make_optimizer, make_scheduler
from mnist_tui.train.trainer import Trainer
from mnist_tui.views.provenance import provenance_cell, provenance_lines
from tests.conftest import EXPERIMENTS

STUDY_B = [f"task{i}" for i in range(16)]
STUDY_E = ["cnn3", "lenet5_avgpool", "lenet5_tuned"]
TRACED = STUDY_B + STUDY_E


def spec_of(name: str, overrides: list[str] | None = None) -> ExperimentSpec:
    return load_experiment(name, EXPERIMENTS, overrides or [])


# ----------------------------------------------------------------- the authors' layers
# Each model as the authors' code lists its layers (Keras Sequential for study B, the
# PyTorch modules of the notebooks for study E). ("conv", filters, kernel) is a 'same'
# conv with its ReLU; ("dense", units) a ReLU dense layer; ("out", units) the classifier.
Layer = tuple[Any, ...]
C32_3, C32_5 = ("conv", 32, 3), ("conv", 32, 5)
BLOCK_B = [C32_5, ("bn",), ("pool",)]  # Conv2D(relu) -> BatchNormalization -> MaxPooling2D
HEAD_256_DROP = [("flatten",), ("dense", 256), ("dropout",), ("out", 10)]

AUTHORS_LAYERS: dict[str, list[Layer]] = {
    # 6b23f99 FashionMNIST_CNN.py L77-84
    "task0": [C32_3, ("pool",), ("flatten",), ("dense", 128), ("out", 10)],
    # 33952be L77-85
    "task1": [C32_3, ("pool",), ("flatten",), ("dense", 256), ("dropout",), ("out", 10)],
    # 5f009f5 pyimagesearch/minivggnet.py L27-56: CONV => RELU => BN, x2, POOL, DROPOUT
    "task2": [
        *[C32_3, ("bn",), C32_3, ("bn",), ("pool",), ("dropout",)],
        *[("conv", 64, 3), ("bn",), ("conv", 64, 3), ("bn",), ("pool",), ("dropout",)],
        *[("flatten",), ("dense", 512), ("bn",), ("dropout",), ("out", 10)],
    ],
    "task3": [C32_3, ("pool",), ("flatten",), ("dense", 128), ("out", 10)],  # 4de025b L77-84
    # d37e207 L77-91: the second block and Dense(256)
    "task4": [C32_3, ("pool",), C32_3, ("pool",), ("flatten",), ("dense", 256), ("out", 10)],
    "task6": [C32_5, ("pool",), C32_5, ("pool",), ("flatten",), ("dense", 256), ("out", 10)],
    "task8": [*BLOCK_B, *BLOCK_B, ("flatten",), ("dense", 256), ("out", 10)],  # f1aa56e L77-93
    "task9": [*BLOCK_B, *BLOCK_B, *HEAD_256_DROP],  # b3fbe86 L77-94
    "task10": [*BLOCK_B, *HEAD_256_DROP],  # d8b80d9 L77-87
    "task12": [*BLOCK_B, *BLOCK_B, *HEAD_256_DROP],  # a3b1e5d L77-94
    # 2ad5f02 mnist.ipynb json L74-85: conv1, conv2, then the only pool
    "cnn3": [C32_3, ("conv", 64, 3), ("pool",), ("flatten",), ("dense", 128), ("out", 10)],
}
AUTHORS_LAYERS["task5"] = AUTHORS_LAYERS["task4"]
AUTHORS_LAYERS["task7"] = AUTHORS_LAYERS["task6"]
for _name in ("task11", "task13", "task14", "task15"):
    AUTHORS_LAYERS[_name] = AUTHORS_LAYERS["task10"]


def keras_summary(layers: list[Layer], side: int = 28, channels: int = 1) -> tuple[int, int]:
    """(trainable, non-trainable) parameters as Keras' model.summary() counts them."""
    trainable = frozen = 0
    features = channels
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, filters, k = layer
            trainable += k * k * features * filters + filters
            features = filters
        elif kind == "bn":  # gamma, beta trainable; moving mean, variance not
            trainable += 2 * features
            frozen += 2 * features
        elif kind == "pool":
            side //= 2
        elif kind == "flatten":
            features = features * side * side
        elif kind in ("dense", "out"):
            trainable += (features + 1) * layer[1]
            features = layer[1]
    return trainable, frozen


def signature(layers: list[Layer]) -> list[Any]:
    """The PyTorch modules the authors' layers become, with their sizes."""
    out: list[Any] = []
    features, side, flat = 1, 28, False
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            out += [("Conv2d", features, layer[1], layer[2]), ("ReLU",)]
            features = layer[1]
        elif kind == "bn":
            out.append(("BatchNorm1d" if flat else "BatchNorm2d", features))
        elif kind == "pool":
            out.append(("MaxPool2d",))
            side //= 2
        elif kind == "flatten":
            out.append(("Flatten",))
            features, flat = features * side * side, True
        elif kind == "dense":
            out += [("Linear", features, layer[1]), ("ReLU",)]
            features = layer[1]
        elif kind == "dropout":
            out.append(("Dropout",))
        elif kind == "out":
            out.append(("Linear", features, layer[1]))
    return out


def module_signature(model: nn.Module) -> list[Any]:
    out: list[Any] = []
    for m in model.children():
        if isinstance(m, nn.Conv2d):
            out.append(("Conv2d", m.in_channels, m.out_channels, m.kernel_size[0]))
        elif isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features))
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            out.append((type(m).__name__, m.num_features))
        else:
            out.append((type(m).__name__,))
    return out


@pytest.mark.parametrize("name", sorted(AUTHORS_LAYERS))
def test_layers_are_the_authors(name: str) -> None:
    """Same modules, same order (Keras Conv2D(activation) then BatchNormalization), same
    sizes: a wrong padding or pool placement changes the first Linear's input size."""
    model = spec_of(name).build_model(pool_first=False)
    assert module_signature(model) == signature(AUTHORS_LAYERS[name])


@pytest.mark.parametrize(
    ("name", "trainable", "frozen"),
    [
        ("task0", 804_554, 0),
        ("task1", 1_608_778, 0),
        ("task2", 1_677_674, 1_408),  # Keras "Total params" 1,679,082
        ("task4", 413_802, 0),
        ("task6", 430_698, 0),
        ("task8", 430_826, 128),
        ("task10", 1_609_354, 64),
        ("cnn3", 1_625_866, 0),  # 320 + 18,496 + 1,605,760 + 1,290
    ],
)
def test_parameter_counts_match_the_authors_models(name: str, trainable: int, frozen: int) -> None:
    assert keras_summary(AUTHORS_LAYERS[name]) == (trainable, frozen)
    spec = spec_of(name)
    assert spec.parameters == trainable
    assert models.count_parameters(spec.build_model()) == trainable


@pytest.mark.parametrize("name", ["lenet5_avgpool", "lenet5_tuned"])
def test_lenet5_study_e_pads_inside_the_model(name: str) -> None:
    """F.pad(x, (2, 2, 2, 2)) in forward(): 28x28 input, zeros after normalisation."""
    spec = spec_of(name)
    assert spec.input_shape() == (1, 28, 28) and spec.data.pad == 0
    model = spec.build_model(pool_first=False)
    kinds = [type(m).__name__ for m in model.children()]
    assert kinds[:2] == ["ZeroPad2d", "Conv2d"]
    assert kinds.count("AvgPool2d") == 2
    assert "Dropout" not in kinds and "BatchNorm2d" not in kinds
    assert models.count_parameters(model) == 61_706
    black = torch.full((1, 1, 28, 28), -1.0)  # a black image under Normalize(0.5, 0.5)
    padded = model[0](black)
    assert padded.shape == (1, 1, 32, 32)
    assert padded[0, 0, 0].eq(0).all() and padded[0, 0, 2:30, 2:30].eq(-1).all()


def test_lenet5_input_pad_must_make_32x32() -> None:
    with pytest.raises(SpecError) as exc:
        spec_of("lenet5_avgpool", ["model.input_pad=1"])
    assert "32x32" in str(exc.value) and "data.pad" in str(exc.value)


def test_pool_after_needs_one_entry_per_block() -> None:
    with pytest.raises(SpecError) as exc:
        spec_of("cnn3", ["model.pool_after=[true]"])
    assert "model.pool_after" in str(exc.value) and "one entry per conv block" in str(exc.value)
    with pytest.raises(SpecError, match=r"model\.pool_after"):
        spec_of("cnn3", ["model.pool_after=[1, 0]"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("schedule.decay=-1", "schedule.decay"),
        ("schedule.name=inverse", "schedule.name"),
        ("data.normalize=halff", "data.normalize"),
        ("reference.commit=12", "reference.commit"),
        ("reference.figure_line=0", "reference.figure_line"),
        ("reference.cells=[-1]", "reference.cells"),
        ('reference.files="x.py"', "reference.files"),
    ],
)
def test_new_keys_are_validated(override: str, key: str) -> None:
    with pytest.raises(SpecError) as exc:
        spec_of("task2", [override])
    assert key in str(exc.value)


# ------------------------------------------------------------------------- optimizers


def _optimizer(name: str) -> torch.optim.Optimizer:
    return make_optimizer(spec_of(name), [nn.Parameter(torch.zeros(3))])


@pytest.mark.parametrize(
    ("name", "cls", "args"),
    [
        # Keras 2.2.x defaults where the code passes only a name
        ("task0", torch.optim.Adam, {"lr": 1e-3, "eps": 1e-7, "betas": (0.9, 0.999)}),
        # SGD(lr=1e-2, momentum=0.9, decay=1e-2 / 25): 5f009f5 L96
        ("task2", torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": False}),
        ("task11", torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False}),
        ("task13", torch.optim.Adagrad, {"lr": 0.01, "eps": 1e-7, "initial_accumulator_value": 0}),
        ("task14", torch.optim.Adadelta, {"lr": 1.0, "rho": 0.95, "eps": 1e-7}),
        # SGD(lr=0.15, momentum=0.2, decay=0.0, nesterov='true'): e07d93b L102
        ("task15", torch.optim.SGD, {"lr": 0.15, "momentum": 0.2, "nesterov": True}),
        ("cnn3", torch.optim.Adam, {"lr": 1e-3, "eps": 1e-8, "betas": (0.9, 0.999)}),
        ("lenet5_avgpool", torch.optim.Adam, {"lr": 1e-3, "eps": 1e-8}),
        ("lenet5_tuned", torch.optim.Adam, {"lr": 0.0029079897364446237, "eps": 1e-8}),
    ],
)
def test_optimizer_arguments(name: str, cls: type, args: dict[str, Any]) -> None:
    opt = _optimizer(name)
    assert type(opt) is cls
    group = opt.param_groups[0]
    for k, v in args.items():
        assert group[k] == pytest.approx(v), k
    assert group["weight_decay"] == 0


def test_task2_learning_rate_follows_keras_decay_step_by_step() -> None:
    """Keras 2.x SGD: lr_t = lr / (1 + decay * iterations), iterations never reset."""
    spec = spec_of("task2")
    assert spec.schedule.name == "inverse_time"
    assert spec.schedule.decay == pytest.approx(0.01 / 25)
    param = nn.Parameter(torch.zeros(1))
    opt = make_optimizer(spec, [param])
    sched = make_scheduler(spec, opt)
    steps_per_epoch = 375  # 48,000 training images / batch 128
    seen = []
    for _ in range(3 * steps_per_epoch):
        seen.append(opt.param_groups[0]["lr"])
        param.grad = torch.ones(1)
        opt.step()
        sched.step()
    keras = [0.01 / (1 + 0.0004 * t) for t in range(len(seen))]
    assert seen == pytest.approx(keras, rel=1e-12)
    # after 30 epochs (11,250 updates) the rate is down to 0.00182
    assert 0.01 / (1 + 0.0004 * 30 * steps_per_epoch) == pytest.approx(0.001818, abs=1e-6)


def test_trainer_steps_inverse_time_every_batch(fake_data: Path) -> None:
    spec = spec_of(
        "task2",
        [
            "data.dataset=mnist",
            "model.filters=[4, 8]",
            "model.dense=16",
            "train.epochs=2",
            "train.batch_size=32",
            "schedule.decay=0.1",
        ],
    )
    dev = torch.device("cpu")
    data = data_device.prepare(spec.data, spec.augment, dev, fake_data, download=False)
    assert len(data.train_y) == 160 and data.val_y is not None and len(data.val_y) == 40
    trainer = Trainer(spec, data, dev)
    assert trainer.engine.name == "eager"
    trainer.run()
    steps = trainer.steps_per_epoch()
    assert steps == 5
    lrs = [m.lr for m in trainer.state.history]  # the rate at the start of each epoch
    assert lrs == pytest.approx([0.01, 0.01 / (1 + 0.1 * steps)])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / (1 + 0.1 * 2 * steps))


# ------------------------------------------------------------------------- data


def test_half_normalisation_is_torchvision_normalize_05(fake_data: Path) -> None:
    spec = spec_of("cnn3", ["train.epochs=1"])
    assert spec.data.normalize == "half" and spec.data.val_split == 0
    data = data_device.prepare(spec.data, spec.augment, torch.device("cpu"), fake_data, False)
    assert data.background == -1.0 and data.pixel_scale == 2.0
    assert data.train_x.min() >= -1.0 and data.train_x.max() <= 1.0
    assert len(data.train_y) == 200 and data.val_x is None  # all training images


@pytest.mark.parametrize("name", STUDY_B)
def test_study_b_trains_on_80_percent_and_reports_the_final_test_figure(name: str) -> None:
    spec = spec_of(name)
    assert spec.data.val_split == pytest.approx(0.2) and spec.data.normalize == "unit"
    assert spec.reference.at == "final"
    if spec.model.name == "cnn":
        assert spec.model.params["padding"] == "same"


EPOCHS_AND_BATCH = {
    "task0": (30, 128), "task1": (30, 128), "task2": (30, 128), "task3": (10, 128),
    "task4": (30, 128), "task5": (10, 128), "task6": (30, 128), "task7": (15, 128),
    "task8": (15, 64), "task9": (15, 64), "task10": (15, 64), "task11": (15, 64),
    "task12": (15, 64), "task13": (15, 64), "task14": (15, 64), "task15": (15, 64),
    "cnn3": (5, 64), "lenet5_avgpool": (5, 64), "lenet5_tuned": (18, 256),
}  # fmt: skip


@pytest.mark.parametrize("name", TRACED)
def test_epochs_and_batch_size_from_the_code(name: str) -> None:
    spec = spec_of(name)
    assert (spec.train.epochs, spec.train.batch_size) == EPOCHS_AND_BATCH[name]


def test_lenet5_tuned_is_the_notebook_run() -> None:
    spec = spec_of("lenet5_tuned")
    assert spec.data.val_split == 0 and spec.schedule.name == "none"
    assert spec.augment.rotation == 10 and spec.augment.translate == pytest.approx(0.1)
    assert spec.augment.scale == [1.0, 1.0] and spec.augment.noise_std == 0
    assert spec.model.params["dropout"] == 0
    assert "lenet5" not in spec.lineage  # study C's assumptions no longer leak in


# ------------------------------------------------------------------------- provenance


@pytest.mark.parametrize("name", TRACED)
def test_reference_provenance_is_complete(name: str) -> None:
    ref = spec_of(name).reference
    assert ref.repository in ("ahnyujin/fashion_mnist", "MachuEngine/mnist-classifier")
    assert re.fullmatch(r"[0-9a-f]{40}", ref.commit)
    assert re.fullmatch(r"[0-9a-f]{40}", ref.figure_commit or ref.commit)
    assert ref.files and ref.figure_file and ref.figure_line
    if any(f.endswith(".ipynb") for f in ref.files):
        assert ref.cells
    assert provenance_cell(spec_of(name)).startswith(f"{ref.repository}@{ref.commit[:7]} ")
    lines = provenance_lines(spec_of(name))
    assert lines[0].startswith(f"settings: {ref.repository} @ {ref.commit[:12]}")
    assert lines[1].startswith("figure:") and f"line {ref.figure_line}" in lines[1]


@pytest.mark.parametrize("name", TRACED)
def test_assumptions_name_the_library_version(name: str) -> None:
    """In traced files `# assumed:` is left only for what the code leaves open, and says
    whose default fills it."""
    for line in (EXPERIMENTS / f"{name}.toml").read_text().splitlines():
        if "# assumed:" in line:
            assert re.search(r"Keras 2\.2\.x|torch 2\.5\.1|seeds nothing", line), line


# local clones of the authors' repositories, `<owner>+<name>/repo` (no default: a path of
# one machine means nothing on another)
MIRRORS = os.environ.get("MNIST_TUI_MIRRORS")


def _git_show(repository: str, commit: str, path: str) -> list[str]:
    if not MIRRORS:
        pytest.skip("MNIST_TUI_MIRRORS is not set (a directory of the authors' repositories)")
    repo = Path(MIRRORS) / repository.replace("/", "+") / "repo"
    if not repo.is_dir():
        pytest.skip(f"no copy of {repository} under {MIRRORS}")
    out = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()


@pytest.mark.parametrize("name", TRACED)
def test_figure_is_on_the_cited_line(name: str) -> None:
    ref = spec_of(name).reference
    lines = _git_show(ref.repository, ref.figure_commit or ref.commit, ref.figure_file)
    for path in ref.files:
        _git_show(ref.repository, ref.commit, path)  # the settings' files exist there
    assert ref.figure_line is not None and ref.test_accuracy is not None
    text = lines[ref.figure_line - 1]
    pct = 100 * ref.test_accuracy
    # README "(91.1%)", notebook "99.00%", Optuna "finished with value: 99.28"
    shown = (f"{pct:.2f}%", f"{round(pct, 2):g}%", f"value: {pct:.2f} ")
    assert any(s in text for s in shown), text


# (experiment, file, 1-based line, text the cited line holds)
CITED_LINES = [
    ("task0", "FashionMNIST_CNN.py", 79, "padding='same'"),
    ("task0", "FashionMNIST_CNN.py", 107, "test_size=0.2"),
    ("task0", "FashionMNIST_CNN.py", 122, "epochs = 30"),
    ("task1", "FashionMNIST_CNN.py", 84, "Dropout(0.5)"),
    ("task2", "FashionMNIST_CNN.py", 96, "SGD(lr=1e-2, momentum=0.9, decay=1e-2 / 25)"),
    ("task2", "FashionMNIST_CNN.py", 126, "epochs = 30"),
    ("task2", "pyimagesearch/minivggnet.py", 49, "Dense(512)"),
    ("task3", "FashionMNIST_CNN.py", 83, "Dense(128"),
    ("task4", "FashionMNIST_CNN.py", 90, "Dense(256"),
    ("task6", "FashionMNIST_CNN.py", 77, "kernel_size=(5,5)"),
    ("task6", "FashionMNIST_CNN.py", 83, "kernel_size=(5,5)"),
    ("task6", "FashionMNIST_CNN.py", 129, "epochs = 30"),
    ("task7", "FashionMNIST_CNN.py", 129, "epochs = 15"),
    ("task8", "FashionMNIST_CNN.py", 81, "BatchNormalization()"),
    ("task8", "FashionMNIST_CNN.py", 130, "batch_size = 64"),
    ("task9", "FashionMNIST_CNN.py", 93, "model.add(Dropout(0.25)"),
    ("task11", "FashionMNIST_CNN.py", 98, "optimizer='sgd'"),
    ("task13", "FashionMNIST_CNN.py", 98, "optimizer='Adagrad'"),
    ("task14", "FashionMNIST_CNN.py", 98, "optimizer='Adadelta'"),
    (
        "task15",
        "FashionMNIST_CNN.py",
        102,
        "SGD(lr=0.15, momentum=0.2, decay=0.0, nesterov='true')",
    ),
    ("cnn3", "mnist.ipynb", 36, "Normalize((0.5,), (0.5,))"),
    ("cnn3", "mnist.ipynb", 75, "nn.Conv2d(32, 64, kernel_size=3, padding=1)"),
    ("cnn3", "mnist.ipynb", 85, "x = self.pool(F.relu(self.conv2(x)))"),
    ("cnn3", "mnist.ipynb", 326, "num_epochs = 5"),
    ("lenet5_avgpool", "lenet5.ipynb", 74, "F.pad(x, (2, 2, 2, 2))"),
    ("lenet5_avgpool", "lenet5.ipynb", 276, "num_epochs = 5"),
    ("lenet5_tuned", "lenet5.ipynb", 25, "RandomAffine(0, translate=(0.1, 0.1))"),
    ("lenet5_tuned", "lenet5.ipynb", 62, "def __init__(self, dropout_rate=0.5)"),
]


@pytest.mark.parametrize(("name", "path", "line", "text"), CITED_LINES)
def test_cited_code_lines(name: str, path: str, line: int, text: str) -> None:
    ref = spec_of(name).reference
    assert path in ref.files
    assert text in _git_show(ref.repository, ref.commit, path)[line - 1]


def test_lenet5_tuned_dropout_rate_is_never_used() -> None:
    """The notebook's LeNet5 takes dropout_rate and has no Dropout layer (cell 2)."""
    ref = spec_of("lenet5_tuned").reference
    nb = json.loads("\n".join(_git_show(ref.repository, ref.commit, "lenet5.ipynb")))
    source = "".join(nb["cells"][2]["source"])
    assert "dropout_rate" in source and "Dropout" not in source and "self.dropout" not in source


def test_no_provenance_without_a_repository() -> None:
    spec = spec_of("logreg")
    assert provenance_cell(spec) == "" and not any(
        line.startswith(("settings:", "figure:")) for line in provenance_lines(spec)
    )
