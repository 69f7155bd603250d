"""Fuzzing experiment files and overrides: the only failure allowed is a clean SpecError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_tui.config.loading import load_experiment
from mnist_tui.config.spec import SECTIONS
from mnist_tui.errors import SpecError
from mnist_tui.models import MODELS, model_params

from .conftest import EXPERIMENTS

KEYS = {name: [f.name for f in cls.__dataclass_fields__.values()] for name, cls in SECTIONS.items()}
MODEL_KEYS = sorted({k for m in MODELS for k in model_params(m)} | {"name"})

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["adam", "sgd", "mnist", "fashion_mnist", "lenet5", "cnn", "max", "same"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))


@st.composite
def experiment_docs(draw: st.DrawFn) -> dict[str, object]:
    doc: dict[str, object] = {}
    if draw(st.booleans()):
        doc["extends"] = draw(st.sampled_from(["task4", "lenet5", "fnn2", "nope", ""]))
    for section in draw(st.lists(st.sampled_from([*KEYS, "model", "bogus"]), max_size=4)):
        keys = MODEL_KEYS if section == "model" else KEYS.get(section, ["x"])
        table = {
            k: draw(values) for k in draw(st.lists(st.sampled_from([*keys, "typo"]), max_size=4))
        }
        if section == "model" and draw(st.booleans()):
            table["name"] = draw(st.sampled_from([*MODELS, "resnet"]))
        doc[section] = table
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(experiment_docs())
def test_random_experiment_files(doc: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        path.write_text(tomli_w.dumps(doc))
        try:
            load_experiment(str(path), EXPERIMENTS)
        except SpecError as exc:
            assert str(exc)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.builds(
                lambda k, v: f"{k}={v}",
                st.sampled_from(
                    [
                        "optim.lr",
                        "train.epochs",
                        "model.kernel",
                        "model.name",
                        "data.pad",
                        "augment.crop_scale",
                        "model",
                        "train",
                        "x.y.z",
                        "extends",
                        "name",
                        "description",
                        'search.params."optim.lr"',
                        "search.trials",
                        "a b",
                        "",
                    ]
                ),
                st.text(max_size=12),
            ),
        ),
        max_size=3,
    )
)
def test_random_overrides(overrides: list[str]) -> None:
    try:
        load_experiment("task4", EXPERIMENTS, overrides)
    except SpecError as exc:
        assert str(exc)


def test_huge_model_is_refused_without_allocating() -> None:
    import pytest

    with pytest.raises(SpecError, match="parameters; at most"):
        load_experiment("fnn1", EXPERIMENTS, ["model.hidden=[65536, 65536, 65536]"])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_as_an_experiment_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bytes.toml"
        path.write_bytes(data)
        try:
            load_experiment(str(path), EXPERIMENTS)
        except SpecError as exc:
            assert str(exc).startswith(str(path)) or "bytes.toml" in str(exc)


# Overrides that are valid on fnn1, with the value the resolved definition must then hold.
VALID = {
    "optim.lr": [("0.05", 0.05), ("1e-3", 0.001)],
    "optim.name": [("sgd", "sgd"), ('"adam"', "adam")],
    "train.epochs": [("1", 1), ("7", 7)],
    "train.batch_size": [("32", 32)],
    "data.pad": [("2", 2), ("0", 0)],
    "model.hidden": [("[8, 8]", [8, 8]), ("[ 4 ]", [4]), ("[16,32,64]", [16, 32, 64])],
    "model.dropout": [("0.25", 0.25)],
    "augment.crop_scale": [("[0.5, 1.0]", [0.5, 1.0])],
    "description": [("two words", "two words"), ('"quoted = text"', "quoted = text")],
}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from([(k, text, v) for k, opts in VALID.items() for text, v in opts]),
        max_size=6,
        # a key set twice to different values is an error (tests/test_option_conflicts.py)
        unique_by=lambda c: c[0],
    ),
    st.sampled_from(["{k}={v}", "{k} = {v}", " {k}= {v} "]),
)
def test_what_is_stored_is_what_the_overrides_said(
    chosen: list[tuple[str, str, object]], form: str
) -> None:
    from mnist_tui.config.loading import load_spec_file
    from mnist_tui.config.overrides import split_overrides
    from mnist_tui.config.spec import flatten

    overrides = [form.format(k=k, v=text) for k, text, _ in chosen]
    spec = load_experiment("fnn1", EXPERIMENTS, overrides)
    resolved = flatten(spec.to_dict())
    expected = {k: v for k, _, v in chosen}
    for key, value in expected.items():
        assert resolved[key] == value, (key, overrides)
    assert spec.extends == "logreg" and spec.name == "fnn1"
    # typed on one line (the console's box), they mean the same
    line = " ".join(form.format(k=k, v=text).strip() for k, text, _ in chosen)
    assert load_experiment("fnn1", EXPERIMENTS, split_overrides(line)).to_dict() == spec.to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run" / "spec.toml"
        path.parent.mkdir()
        path.write_text(spec.to_toml())
        assert load_spec_file(path).to_dict() == {**spec.to_dict(), "name": "fnn1"}
