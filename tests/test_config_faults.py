"""Faults in experiment definitions, directories and overrides, each with its exact error.

Every class of broken input gets a clear SpecError naming where the problem is (the file,
or the `-S` override), never a traceback, a hang or a silently different experiment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_tui.config import loading
from mnist_tui.config.loading import (
    experiment_names,
    experiment_sources,
    find_experiment,
    load_experiment,
)
from mnist_tui.errors import SpecError

from .conftest import EXPERIMENTS

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
