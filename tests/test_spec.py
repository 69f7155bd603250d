"""Experiment definitions: every shipped file, extends, overrides, errors, TOML output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mnist_tui import models
from mnist_tui.config.loading import experiment_names, load_experiment, load_spec_file
from mnist_tui.errors import SpecError
from mnist_tui.studies.diff import diff_definitions

from .conftest import EXPERIMENTS, FIXTURES

ALL = experiment_names(EXPERIMENTS)
BROKEN = FIXTURES / "broken"


def test_every_seed_experiment_is_carried() -> None:
    expected = {
        "logreg",
        "fnn1",
        "fnn2",
        "fnn3",
        "lenet5",
        "custom_mlp",
        "lenet5_aug_bn",
        "mlp_validation",
        "cnn3",
        "lenet5_avgpool",
        "lenet5_tuned",
    }
    expected |= {f"task{i}" for i in range(16)}
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_experiment_loads_builds_and_runs_forward(name: str) -> None:
    spec = load_experiment(name, EXPERIMENTS)
    model = spec.build_model()
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(3, *spec.input_shape()))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_resolved_toml_is_byte_stable_and_reloads(name: str, tmp_path: Path) -> None:
    spec = load_experiment(name, EXPERIMENTS)
    text = spec.to_toml()
    path = tmp_path / name / "spec.toml"
    path.parent.mkdir()
    path.write_text(text)
    again = load_spec_file(path)
    assert again.to_toml() == text
    assert again.definition() == spec.definition()


def test_diff_task4_task6_is_the_kernel_change_only() -> None:
    a = load_experiment("task4", EXPERIMENTS).definition()
    b = load_experiment("task6", EXPERIMENTS).definition()
    changes = diff_definitions(a, b)
    assert [c.key for c in changes] == ["model.kernel"]
    assert changes[0].a == [3, 3] and changes[0].b == [5, 5]


@pytest.mark.parametrize(
    ("parent", "child", "keys"),
    [
        ("task0", "task3", ["train.epochs"]),
        ("task4", "task5", ["train.epochs"]),
        ("task7", "task8", ["model.batch_norm", "model.batch_norm_position", "train.batch_size"]),
        ("task8", "task9", ["model.dropout"]),
        ("task10", "task11", ["optim.eps", "optim.lr", "optim.name"]),
        ("task11", "task15", ["optim.lr", "optim.momentum", "optim.nesterov"]),
    ],
)
def test_task_lineage_diffs(parent: str, child: str, keys: list[str]) -> None:
    a = load_experiment(parent, EXPERIMENTS).definition()
    b = load_experiment(child, EXPERIMENTS).definition()
    assert [c.key for c in diff_definitions(a, b)] == keys


def test_parameter_counts() -> None:
    lenet = load_experiment("lenet5", EXPERIMENTS)
    assert models.count_parameters(lenet.build_model()) == 61_706
    assert lenet.reference.parameters == 61_706
    mlp = load_experiment("custom_mlp", EXPERIMENTS)
    # The study's table says 61,014, adding up its per-layer figures; two of those are
    # arithmetic slips (44*1025 = 45,100 not 44,660; 45*120 = 5,400 not 5,340). The
    # 1024-44-120-84-10 network it describes has 61,514 parameters.
    layer_sizes = [(1024, 44), (44, 120), (120, 84), (84, 10)]
    assert sum((i + 1) * o for i, o in layer_sizes) == 61_514
    assert models.count_parameters(mlp.build_model()) == 61_514
    assert mlp.reference.parameters == 61_014
    assert 44_660 + 5_340 + 10_164 + 850 == 61_014  # the write-up's own sum


def test_lenet5_layer_arithmetic_matches_the_write_up() -> None:
    model = load_experiment("lenet5", EXPERIMENTS).build_model()
    sizes = [p.numel() for p in model.parameters()]
    per_layer = [sizes[i] + sizes[i + 1] for i in range(0, len(sizes), 2)]
    assert per_layer == [156, 2_416, 48_120, 10_164, 850]


def test_extends_chain_and_inherited_keys() -> None:
    spec = load_experiment("task9", EXPERIMENTS)
    assert spec.lineage == ("task8", "task7", "task5", "task4", "task0")
    assert spec.model.params["dropout"] == 0.25
    assert spec.train.batch_size == 64 and spec.train.epochs == 15
    assert "model.dropout" not in spec.inherited
    assert "data.dataset" in spec.inherited
    # reported figures and descriptions describe one file and are not inherited
    assert spec.reference.test_accuracy == pytest.approx(0.911)
    assert load_experiment("task3", EXPERIMENTS).reference.test_accuracy == pytest.approx(0.9064)


def test_changing_model_name_drops_parent_model_params() -> None:
    spec = load_experiment("task2", EXPERIMENTS)
    assert spec.model.name == "minivgg"
    assert "kernel" not in spec.model.params


def test_override_goes_through_validation() -> None:
    spec = load_experiment("task0", EXPERIMENTS, ["optim.lr=0.01", "train.epochs=3"])
    assert spec.optim.lr == 0.01 and spec.train.epochs == 3
    with pytest.raises(SpecError) as exc:
        load_experiment("task0", EXPERIMENTS, ["optim.lrr=0.01"])
    msg = str(exc.value)
    assert "-S optim.lrr=0.01" in msg and "optim.lrr" in msg and "Did you mean 'lr'?" in msg
    with pytest.raises(SpecError, match=r"optim.lr: expected a number > 0, got -1"):
        load_experiment("task0", EXPERIMENTS, ["optim.lr=-1"])
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        load_experiment("task0", EXPERIMENTS, ["optim.lr"])
    with pytest.raises(SpecError, match=r"train.epochs: expected an integer >= 1"):
        load_experiment("task0", EXPERIMENTS, ["train.epochs=many"])


def test_override_with_list_and_string_values() -> None:
    spec = load_experiment("task4", EXPERIMENTS, ["model.kernel=[5,5]", "optim.name=sgd"])
    assert spec.model.params["kernel"] == [5, 5]
    assert spec.optim.name == "sgd"


def _expectations(path: Path) -> list[str]:
    first = path.read_text(errors="replace").splitlines()[0]
    assert first.startswith("# expect:"), path
    return [w.strip() for w in first.removeprefix("# expect:").split("|")]


BROKEN_FILES = sorted(p for p in BROKEN.glob("*.toml") if p.name != "binary.toml")


@pytest.mark.parametrize("path", BROKEN_FILES, ids=[p.stem for p in BROKEN_FILES])
def test_broken_fixture_gives_its_error(path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_experiment(str(path), EXPERIMENTS)
    message = str(exc.value)
    for words in _expectations(path):
        assert words in message, f"{words!r} not in {message!r}"
    assert "Traceback" not in message


def test_binary_file_is_reported() -> None:
    with pytest.raises(SpecError, match=r"binary.toml: not a UTF-8 text file"):
        load_experiment(str(BROKEN / "binary.toml"), EXPERIMENTS)


def test_unknown_experiment_name_suggests() -> None:
    with pytest.raises(SpecError, match=r"no experiment named 'lenet' .*Did you mean 'lenet5'\?"):
        load_experiment("lenet", EXPERIMENTS)


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    p = tmp_path / "many.toml"
    p.write_text('extends = "task0"\n[optim]\nlr = 0\nmomentun = 0.9\n[train]\nepochs = 0\n')
    with pytest.raises(SpecError) as exc:
        load_experiment(str(p), EXPERIMENTS)
    keys = {pr.key for pr in exc.value.problems}
    assert keys == {"optim.lr", "optim.momentun", "train.epochs"}
    assert re.search(r"3 problems", str(exc.value))


def test_file_elsewhere_extends_by_name(tmp_path: Path) -> None:
    p = tmp_path / "mine.toml"
    p.write_text('extends = "lenet5"\n[optim]\nlr = 0.002\n')
    spec = load_experiment(str(p), EXPERIMENTS)
    assert spec.name == "mine" and spec.optim.lr == 0.002 and spec.model.name == "lenet5"


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(SpecError) as exc:
        load_experiment("lenet5", EXPERIMENTS, ["model.name=resnet"])
    for name in models.MODELS:
        assert name in str(exc.value)


def test_assumptions_are_marked() -> None:
    """Values a study leaves open carry an '# assumed:' comment."""
    marked = [n for n in ALL if "# assumed:" in (EXPERIMENTS / f"{n}.toml").read_text()]
    assert {"task0", "logreg", "lenet5", "mlp_validation", "cnn3", "lenet5_tuned"} <= set(marked)


def test_problems_are_placed_at_the_source_that_set_the_key() -> None:
    from mnist_tui.errors import Problems

    origins = {"optim.lr": "a.toml", "model.hidden": "-S model.hidden=[1]", "model.name": "b.toml"}
    problems = Problems(origins, fallback="fallback.toml")
    problems.at("optim.lr").add("exact")
    problems.at("model").add("below: the override wins over the file")
    problems.at("optim.lr.x").add("above")
    problems.at("train.epochs").add("nowhere")
    problems.at("data.pad", source="c.toml").add("explicit")
    assert [p.source for p in problems] == [
        "a.toml",
        "-S model.hidden=[1]",
        "a.toml",
        "fallback.toml",
        "c.toml",
    ]
    with pytest.raises(SpecError, match="5 problems"):
        problems.raise_if_any()
    Problems().raise_if_any()  # none: nothing raised


def test_one_error_lists_problems_of_every_table(tmp_path: Path) -> None:
    p = tmp_path / "all.toml"
    p.write_text(
        'extends = "lenet5"\ncolour = 1\n[data]\npad = -1\n[model]\npool = "maxx"\n'
        '[search]\ntrials = 0\n[search.params]\n"optim.lr" = { low = 1, hihg = 2 }\n'
    )
    with pytest.raises(SpecError) as exc:
        load_experiment(str(p), EXPERIMENTS)
    keys = [pr.key for pr in exc.value.problems]
    assert keys == [
        "colour",
        "data.pad",
        "model.pool",
        "search.trials",
        "search.params.optim.lr.hihg",
    ]
    assert all(
        pr.source == "all.toml" or pr.source.endswith("all.toml") for pr in exc.value.problems
    )


def test_search_values_are_checked_against_their_keys(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    body = (
        'extends = "lenet5"\n[search.params]\n'
        '"train.epochs" = { low = 2, high = 4 }\n'
        '"optim.lr" = { low = 1, high = 2 }\n'
        '"train.batch_size" = { choices = [16, 32.0] }\n'
    )
    p.write_text(body)
    params = {sp.key: sp for sp in load_experiment(str(p), EXPERIMENTS).search.params}
    # the setting's type decides: integer settings search integers, float settings floats
    assert params["train.epochs"].integer and params["train.epochs"].low == 2
    lr = params["optim.lr"]
    assert not lr.integer and isinstance(lr.low, float)
    assert params["train.batch_size"].choices == (16, 32)
    bad = {
        '"train.batch_size" = { choices = [16, 0] }': "choices: item 1: expected an integer >= 1",
        '"model.dropout" = { low = 0.0, high = 1.5 }': "high: expected a number >= 0 and < 1",
        '"optim.name" = { low = 1, high = 2 }': "a range needs a numeric setting",
        '"optim.lr" = { low = 0.1, high = 0.2, choices = [0.1] }': "not both",
        '"train.epochs" = { low = 1.5, high = 3 }': "low: expected an integer",
        '"model.hidden" = { choices = [[8]] }': "not a parameter of model lenet5",
    }
    for line, words in bad.items():
        p.write_text(f'extends = "lenet5"\n[search.params]\n{line}\n')
        with pytest.raises(SpecError) as exc:
            load_experiment(str(p), EXPERIMENTS)
        assert words in str(exc.value), (line, str(exc.value))


def test_the_spec_answers_which_metrics_and_whether_it_validates() -> None:
    plain = load_experiment("fnn1", EXPERIMENTS, ["data.val_split=0"])
    assert not plain.has_validation
    assert (plain.monitored_metric, plain.best_metric) == ("train_loss", "test_acc")
    split = load_experiment("fnn1", EXPERIMENTS, ["data.val_split=0.1"])
    assert split.has_validation
    assert (split.monitored_metric, split.best_metric) == ("val_loss", "val_loss")
    fold = load_experiment("fnn1", EXPERIMENTS, ["data.val_split=0", "data.folds=3"])
    assert fold.has_validation and fold.data.has_validation
    chosen = load_experiment(
        "fnn1", EXPERIMENTS, ["data.val_split=0.1", "schedule.monitor=val_acc"]
    )
    assert chosen.monitored_metric == "val_acc"
    from mnist_tui.train.setup import best_metric, monitored_metric

    assert monitored_metric(chosen) == "val_acc" and best_metric(plain) == "test_acc"


# ---------------------------------------------------------------- the cached model check

_PROBE = (
    "import sys; from mnist_tui.config.loading import load_experiment; "
    "s = load_experiment('fnn1'); print(s.parameters, 'torch' in sys.modules)"
)


def _probe(env: dict[str, str]) -> tuple[int, bool]:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), out[1] == "True"


def test_model_check_is_cached_and_a_warm_load_never_imports_torch(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS)}
    cold = _probe(env)
    assert cold[1], "a cold cache builds the model, with torch"
    assert (tmp_path / "mnist-tui" / "model-checks.json").is_file()
    warm = _probe(env)
    assert warm == (cold[0], False)


def test_model_check_cache_tolerates_corrupt_and_unwritable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnist_tui.config import model_check

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "corrupt"))
    path = model_check.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00{not json")
    assert load_experiment("fnn1", EXPERIMENTS).parameters == 13_434
    assert path.read_text().startswith('{"version"')  # rewritten whole
    # a cache "directory" that is a file: nothing can be written, loading still works
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    assert load_experiment("fnn1", EXPERIMENTS).parameters == 13_434


def test_model_check_cache_is_keyed_by_the_definition_and_keeps_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from mnist_tui.config import model_check

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = load_experiment("fnn1", EXPERIMENTS)
    key = model_check.cache_key(spec.model.name, spec.model.params, spec.input_shape())
    other = model_check.cache_key(
        spec.model.name, {**spec.model.params, "hidden": [8]}, (1, 28, 28)
    )
    assert key != other
    # the stored answer is what validation reports (here doctored, to prove it is read)
    path = model_check.cache_path()
    data = json.loads(path.read_text())
    data["entries"][key] = {"parameters": 7}
    path.write_text(json.dumps(data))
    model_check._memory.clear()
    assert load_experiment("fnn1", EXPERIMENTS).parameters == 7
    # an error is remembered too, word for word
    messages = []
    for _ in range(2):
        model_check._memory.clear()
        with pytest.raises(SpecError) as exc:
            load_experiment("lenet5", EXPERIMENTS, ["data.pad=0"])
        messages.append(str(exc.value))
    assert messages[0] == messages[1] and "lenet5 expects 32x32 inputs" in messages[0]
