"""Faults in experiment definitions, directories and overrides, each with its exact error.

Every class of broken input gets a clear SpecError naming where the problem is (the file,
or the `-S` override), never a traceback, a hang or a silently different experiment.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_tui.config import loading
from mnist_tui.config.loading import (
    experiment_names,
    experiment_sources,
    find_experiment,
    load_experiment,
)
from mnist_tui.config.overrides import with_overrides
from mnist_tui.config.toml_layers import MAX_DEPTH
from mnist_tui.errors import SpecError

from .conftest import EXPERIMENTS, FIXTURES

BROKEN = FIXTURES / "broken"

# ------------------------------------------------------------------ experiment directories


def test_user_directory_layers_over_the_shipped_set(tmp_path: Path) -> None:
    mine = tmp_path / "experiments"
    mine.mkdir()
    (mine / "fnn2.toml").write_text('extends = "fnn1"\ndescription = "my fnn2"\n')
    (mine / "extra.toml").write_text('extends = "fnn1"\n')
    sources = experiment_sources(mine)
    shipped = {p.stem for p in EXPERIMENTS.glob("*.toml")}
    assert set(sources) == shipped | {"extra"}
    assert sources["fnn2"].origin == "user" and sources["fnn2"].shadows == EXPERIMENTS / "fnn2.toml"
    assert sources["fnn1"].origin == "shipped" and not sources["fnn1"].shadowed
    assert not sources["extra"].shadowed
    assert load_experiment("fnn2", mine).description == "my fnn2"
    assert find_experiment("fnn1", mine) == EXPERIMENTS / "fnn1.toml"
    # in the checkout the user's directory is the shipped one: nothing shadows anything
    assert all(
        s.origin == "shipped" and not s.shadowed for s in experiment_sources(EXPERIMENTS).values()
    )


def test_a_shadowed_parent_changes_no_shipped_child(tmp_path: Path) -> None:
    """A shipped file's `extends` means the shipped parent, whatever the user shadows."""
    mine = tmp_path / "experiments"
    mine.mkdir()
    (mine / "logreg.toml").write_text('extends = "fnn3"\ndescription = "mine"\n')
    (mine / "child.toml").write_text('extends = "logreg"\n')
    shipped_fnn1 = load_experiment("fnn1", EXPERIMENTS)
    assert load_experiment("fnn1", mine).definition() == shipped_fnn1.definition()
    # a user's file gets the user's parent
    assert load_experiment("child", mine).lineage == ("logreg", "fnn3", "fnn2", "logreg")


def test_missing_user_directory_still_lists_the_shipped_set(tmp_path: Path) -> None:
    assert experiment_names(tmp_path / "nothing-here") == experiment_names(EXPERIMENTS)
    with pytest.raises(SpecError, match=r"no experiment named 'fnn9' in .*Did you mean"):
        find_experiment("fnn9", tmp_path / "nothing-here")


def test_shipped_directory_is_the_checkout_in_a_source_tree() -> None:
    assert loading.shipped_experiments_dir() == EXPERIMENTS


# ---------------------------------------------------------------------------- overrides


@pytest.mark.parametrize("override", ["extends=task4", "name=other", 'extends="fnn2"'])
def test_an_override_that_cannot_take_effect_is_an_error(override: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_experiment("fnn1", EXPERIMENTS, [override])
    (problem,) = exc.value.problems
    assert problem.source == f"-S {override}"
    assert "cannot be overridden" in problem.message
    spec = load_experiment("fnn1", EXPERIMENTS)
    with pytest.raises(SpecError, match="cannot be overridden"):
        with_overrides(spec, [override])


def test_description_and_other_overrides_are_stored_as_given(tmp_path: Path) -> None:
    from mnist_tui.config.loading import load_spec_file

    overrides = ["description=a quick look", "train.epochs=2", "model.hidden=[8, 8]"]
    spec = load_experiment("fnn1", EXPERIMENTS, overrides)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "spec.toml").write_text(spec.to_toml())
    stored = load_spec_file(tmp_path / "r" / "spec.toml")
    assert stored.description == "a quick look" and stored.extends == "logreg"
    assert stored.train.epochs == 2 and stored.model.params["hidden"] == [8, 8]
    assert stored.definition() == spec.definition()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optimm.lr=0.1",
            "-S optimm.lr=0.1: optimm: unknown key. Did you mean 'optim'? Allowed at the "
            "top level: description, extends, name, model, data, optim, schedule, train, "
            "augment, reference, cv, search",
        ),
        ("model=[1]", "-S model=[1]: model: expected a table, got [1]"),
        ("optim.lr.x=1", "-S optim.lr.x=1: optim.lr: expected a number > 0, got {x = 1} (a table)"),
        (
            "optim.lr=fast",
            '-S optim.lr=fast: optim.lr: expected a number > 0, got "fast" (a string)',
        ),
        ("a]=1", '-S a]=1: "a]" is not a key such as optim.lr'),
        ("optim.lr", "-S optim.lr: expected KEY=VALUE, e.g. -S optim.lr=0.01"),
    ],
)
def test_override_errors_name_the_override(override: str, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_experiment("fnn1", EXPERIMENTS, [override])
    assert str(exc.value) == message
    assert "fnn1.toml" not in str(exc.value)


def test_override_typo_in_a_model_key_suggests_the_right_one() -> None:
    with pytest.raises(SpecError) as exc:
        load_experiment("fnn1", EXPERIMENTS, ["model.hiden=[8]"])
    assert str(exc.value).startswith(
        "-S model.hiden=[8]: model.hiden: unknown key. Did you mean 'hidden'?"
    )


def test_model_name_override_is_a_file_that_names_another_model(tmp_path: Path) -> None:
    overridden = load_experiment("fnn1", EXPERIMENTS, ["model.name=logreg"])
    child = tmp_path / "child.toml"
    child.write_text('extends = "fnn1"\n[model]\nname = "logreg"\n')
    from_file = load_experiment(str(child), EXPERIMENTS)
    assert overridden.model == from_file.model
    assert overridden.model.params == {"defaults": "pytorch"}  # no hidden, dropout...
    # the new model's own keys may come before or after its name
    for order in (["model.name=cnn", "model.filters=[8]"], ["model.filters=[8]", "model.name=cnn"]):
        spec = load_experiment("fnn1", EXPERIMENTS, order)
        assert spec.model.name == "cnn" and spec.model.params["filters"] == [8]
        assert "hidden" not in spec.model.params
    # as a table, too
    spec = load_experiment("fnn1", EXPERIMENTS, ['model={name = "cnn", filters = [4]}'])
    assert spec.model.params["filters"] == [4] and "hidden" not in spec.model.params
    # the same model name keeps the file's parameters
    same = load_experiment("fnn1", EXPERIMENTS, ["model.name=mlp"])
    assert same.model == load_experiment("fnn1", EXPERIMENTS).model


def test_a_table_override_merges_like_a_file() -> None:
    spec = load_experiment("fnn1", EXPERIMENTS, ["optim={lr = 0.5}"])
    base = load_experiment("fnn1", EXPERIMENTS)
    assert spec.optim.lr == 0.5 and spec.optim.name == base.optim.name


@pytest.mark.parametrize(
    "override",
    [
        "model.hidden=[8, 8]",
        "model.hidden = [8, 8]",
        "model.hidden=[ 8 ,8 ]",
        " model.hidden= [8,8] ",
    ],
)
def test_override_values_may_hold_spaces(override: str) -> None:
    assert load_experiment("fnn1", EXPERIMENTS, [override]).model.params["hidden"] == [8, 8]


def test_a_line_of_overrides_splits_at_keys_not_at_spaces() -> None:
    from mnist_tui.config.overrides import split_overrides

    assert split_overrides("model.hidden=[8, 8] optim.lr=0.1") == [
        "model.hidden=[8, 8]",
        "optim.lr=0.1",
    ]
    assert split_overrides("description=two words train.epochs=3") == [
        "description=two words",
        "train.epochs=3",
    ]
    assert split_overrides('description="a = b" model.hidden = [1, 2]') == [
        'description="a = b"',
        "model.hidden=[1, 2]",
    ]
    assert split_overrides("   ") == []
    spec = load_experiment(
        "fnn1", EXPERIMENTS, split_overrides("model.hidden=[8, 8]  train.epochs=2")
    )
    assert spec.model.params["hidden"] == [8, 8] and spec.train.epochs == 2


# -------------------------------------------------------------------- files that are odd


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf" + b'extends = "fnn1"\n[train]\nepochs = 2\n')
    assert load_experiment(str(p), EXPERIMENTS).train.epochs == 2
    parent = tmp_path / "experiments"
    parent.mkdir()
    (parent / "base.toml").write_bytes(b"\xef\xbb\xbf" + (EXPERIMENTS / "fnn1.toml").read_bytes())
    (parent / "child.toml").write_text('extends = "base"\n')
    assert (
        load_experiment("child", parent).definition()
        == load_experiment("fnn1", EXPERIMENTS).definition()
    )


def test_an_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    exps = tmp_path / "experiments"
    exps.mkdir()
    secret = exps / "secret.toml"
    secret.write_text('extends = "fnn1"\n')
    (exps / "child.toml").write_text('extends = "secret"\n')
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:  # mode 000 does not stop root: refuse by hand
        if self.name == "secret.toml":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as exc:
        load_experiment("secret", exps)
    assert str(exc.value) == "experiments/secret.toml: cannot read: Permission denied"
    with pytest.raises(SpecError) as exc:
        load_experiment("child", exps)
    assert "experiments/secret.toml: cannot read: Permission denied" in str(exc.value)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["arrays", "inline", "headers", "dotted", "mixed"]),
    depth=st.integers(min_value=MAX_DEPTH + 1, max_value=20_000),
)
def test_nesting_of_any_depth_is_a_clear_error(kind: str, depth: int) -> None:
    """Never a RecursionError, never quadratic: a SpecError, quickly."""
    body = {
        "arrays": "x = " + "[" * depth + "]" * depth,
        "inline": "x = " + "{a = " * depth + "1" + "}" * depth,
        "headers": "[" + ".".join(["t"] * depth) + "]\nx = 1",
        "dotted": ".".join(["k"] * depth) + " = 1",
        "mixed": "x = " + "[{a = " * (depth // 2) + "1" + "}]" * (depth // 2),
    }[kind]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deep.toml"
        path.write_text(f'extends = "fnn1"\n{body}\n')
        start = time.perf_counter()
        with pytest.raises(SpecError) as exc:
            load_experiment(str(path), EXPERIMENTS)
        assert time.perf_counter() - start < 1.0
    message = str(exc.value)
    assert message.startswith(str(path)) or message.startswith("deep.toml")
    assert f"nested more than {MAX_DEPTH} levels deep" in message or "dots in keys" in message


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(min_value=MAX_DEPTH + 1, max_value=5_000))
def test_deep_override_values_and_keys_are_clear_errors(depth: int) -> None:
    for override in (
        "model.hidden=" + "[" * depth + "]" * depth,
        ".".join(["k"] * depth) + "=1",
    ):
        with pytest.raises(SpecError) as exc:
            load_experiment("fnn1", EXPERIMENTS, [override])
        assert str(exc.value).startswith("-S ")
        assert len(str(exc.value)) < 400  # the override is quoted, not reprinted


def test_a_300_kb_description_loads_and_validates_in_well_under_a_second(tmp_path: Path) -> None:
    load_experiment("fnn1", EXPERIMENTS)  # warm: the model check is cached
    for text in ("x" * 300_000, "word. " * 50_000, "a.b" * 100_000):
        p = tmp_path / "long.toml"
        p.write_text(f'extends = "fnn1"\ndescription = """{text}"""\n')
        start = time.perf_counter()
        spec = load_experiment(str(p), EXPERIMENTS)
        spec.to_toml()
        assert time.perf_counter() - start < 0.5
        assert spec.description == text


def test_a_flood_of_bad_keys_costs_linear_time_and_a_short_message(tmp_path: Path) -> None:
    p = tmp_path / "flood.toml"
    p.write_text('extends = "fnn1"\n[optim]\n' + "".join(f"k{i} = 1\n" for i in range(20_000)))
    start = time.perf_counter()
    with pytest.raises(SpecError) as exc:
        load_experiment(str(p), EXPERIMENTS)
    assert time.perf_counter() - start < 2.0
    assert len(exc.value.problems) == 20_000
    assert str(exc.value).endswith("… and 19975 more") and len(str(exc.value)) < 6_000


# --------------------------------------------------------------------- experiment names

BAD_NAMES = ["my exp", "-lead", ".hidden", "_under", "a" * 129, "ünï", "semi;colon", "a+b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_no_run_directory_can_have_is_shown_but_not_trained(
    name: str, tmp_path: Path
) -> None:
    from mnist_tui.config.loading import check_runnable

    exps = tmp_path / "experiments"
    exps.mkdir()
    (exps / f"{name}.toml").write_text('extends = "fnn1"\n')
    (exps / "fine.toml").write_text('extends = "fnn1"\n')
    rule = "cannot name a run directory: use letters, digits, '_', '.', '-' (at most 128, "
    rule += "starting with a letter or digit)"
    src = experiment_sources(exps).get(name)
    if name.startswith("."):  # a dot file is not listed at all (an editor's swap file)
        assert src is None
    else:
        assert src is not None and src.problem is None
    # shown and loaded by name or path; only training refuses, with the rule
    for ref in (name, str(exps / f"{name}.toml")):
        spec = load_experiment(ref, exps)
        assert spec.name == name
        with pytest.raises(SpecError) as exc:
            check_runnable(spec)
        shown = name if len(name) <= 60 else name[:60] + "…"
        assert f"'{shown}' {rule}" in str(exc.value)
    rows = _rows(exps)
    assert rows["fine"].error is None
    if not name.startswith("."):
        assert rows[name].error is None


@given(st.text(min_size=1, max_size=140))
@settings(max_examples=200)
def test_the_name_rule_is_the_run_stores(name: str) -> None:
    from mnist_tui.config.names import name_problem

    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name) is not None
    assert (name_problem(name) is None) == ok


def _rows(exps: Path) -> dict[str, Any]:
    from mnist_tui.runs.store import RunStore
    from mnist_tui.studies.catalog import experiment_rows

    with tempfile.TemporaryDirectory() as runs:
        return {r.name: r for r in experiment_rows(exps, RunStore(Path(runs)))}


def test_links_loops_and_directories_are_error_rows_not_crashes(tmp_path: Path) -> None:
    exps = tmp_path / "experiments"
    exps.mkdir()
    (exps / "loop.toml").symlink_to("loop.toml")
    (exps / "broken.toml").symlink_to("nothere.toml")
    (exps / "folder.toml").mkdir()
    (exps / "good_link.toml").symlink_to(EXPERIMENTS / "fnn1.toml")
    (exps / "fine.toml").write_text('extends = "fnn1"\n')
    problems = {n: s.problem for n, s in experiment_sources(exps).items() if s.problem}
    assert problems == {
        "loop": "a symlink loop; skipped",
        "broken": "a broken symlink (to nothere.toml); skipped",
        "folder": "a directory, not an experiment file; skipped",
    }
    rows = _rows(exps)
    assert rows["fine"].error is None and rows["good_link"].error is None
    for name, problem in problems.items():
        assert rows[name].error.endswith(problem.removesuffix("; skipped"))
        assert f"{name}.toml" in rows[name].error  # the file is named
        with pytest.raises(SpecError):
            load_experiment(name, exps)
    # as a parent, too
    (exps / "child.toml").write_text('extends = "loop"\n')
    with pytest.raises(SpecError, match=r"child.toml: extends: .*loop.toml: a symlink loop"):
        load_experiment("child", exps)


def test_list_command_survives_broken_entries(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    exps = tmp_path / "experiments"
    exps.mkdir()
    (exps / "loop.toml").symlink_to("loop.toml")
    (exps / "my exp.toml").write_text('extends = "fnn1"\n')
    env = {**os.environ, "MNIST_TUI_EXPERIMENTS": str(exps), "MNIST_TUI_RUNS": str(tmp_path / "r")}
    out = subprocess.run(
        [sys.executable, "-m", "mnist_tui", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert "symlink loop" in rows["loop"]["error"]
    assert rows["my exp"]["error"] is None  # any name is listed; only `run` refuses it
    assert rows["fnn1"]["error"] is None


# ------------------------------------------------------------ broken files, exact errors

EXACT = {
    "binary.toml": "binary.toml: not a UTF-8 text file",
    "cycle_a.toml": "cycle_a.toml: extends: cycle in extends: cycle_a -> cycle_b -> cycle_a",
    "deep_arrays.toml": "deep_arrays.toml: tables and lists nested more than 32 levels deep "
    "(experiments need about 6)",
    "deep_dotted_key.toml": "deep_dotted_key.toml: line 3: more than 64 dots in keys",
    "deep_inline_tables.toml": "deep_inline_tables.toml: tables and lists nested more than 32 "
    "levels deep (experiments need about 6)",
    "deep_tables.toml": "deep_tables.toml: tables and lists nested more than 32 levels deep "
    "(experiments need about 6)",
    "model_not_a_table.toml": "model_not_a_table.toml: model: expected a table, got [1]",
    "name_mismatch.toml": 'name_mismatch.toml: name: "other" is not this file\'s name: an '
    "experiment is named by its file ('name_mismatch'); remove the key",
    "not_toml.toml": "not_toml.toml: not valid TOML: Expected '=' after a key in a key/value "
    "pair (at line 2, column 6)",
    "out_of_range.toml": "out_of_range.toml: data.val_split: expected a number >= 0 and < 1, "
    "got 1.5",
    "search_choice_type.toml": "search_choice_type.toml: search.params.train.batch_size."
    'choices: item 1: expected an integer >= 1 and <= 1048576, got "big" (a string)',
    "search_not_a_table.toml": "search_not_a_table.toml: search.params.optim.lr: expected a "
    "table such as { low = 1e-4, high = 1e-2, log = true } or { choices = [64, 128] }",
    "typo_section_name.toml": "typo_section_name.toml: optimm: unknown key. Did you mean "
    "'optim'? Allowed at the top level: description, extends, name, model, data, optim, "
    "schedule, train, augment, reference, cv, search",
    "val_metric_without_split.toml": 'val_metric_without_split.toml: train.best_metric: "val_loss"'
    " needs a validation split: set data.val_split",
    "wrong_type.toml": 'wrong_type.toml: optim.lr: expected a number > 0, got "fast" (a string)',
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_broken_fixture_gives_exactly_its_error(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    with pytest.raises(SpecError) as exc:
        load_experiment(name, EXPERIMENTS)
    assert str(exc.value) == EXACT[name]


def test_an_override_is_one_value_though_it_may_span_lines() -> None:
    # tomli_w writes arrays over several lines; tune passes its trials' values that way
    spec = load_experiment("fnn1", EXPERIMENTS, ["model.hidden=[\n    16,\n    8,\n]"])
    assert spec.model.params["hidden"] == [16, 8]
    with pytest.raises(SpecError) as exc:
        load_experiment("fnn1", EXPERIMENTS, ["optim.lr=1\n[train]\nepochs = 1"])
    assert str(exc.value) == (
        "-S optim.lr=1\n[train]\nepochs = 1: expected one value, not more lines of TOML"
    )
