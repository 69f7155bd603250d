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
                        "data.pad",
                        "augment.crop_scale",
                        "model",
                        "train",
                        "x.y.z",
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
