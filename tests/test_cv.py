"""K-fold cross-validation: folds are disjoint, stratified, cover the training set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.data.splits import kfold_assignment
from mnist_tui.errors import SpecError
from mnist_tui.runs.store import RunStore

from .conftest import EXPERIMENTS


def test_folds_are_disjoint_stratified_and_cover() -> None:
    labels = torch.randint(0, 10, (5003,), generator=torch.Generator().manual_seed(1))
    folds = kfold_assignment(labels, 5, seed=0)
    assert set(folds.tolist()) == set(range(5))  # every example in exactly one fold
    counts = torch.bincount(labels, minlength=10)
    for f in range(5):
        per_class = torch.bincount(labels[folds == f], minlength=10)
        # each class split as evenly as possible across folds
        assert ((per_class - counts / 5).abs() <= 1).all()
    assert torch.equal(folds, kfold_assignment(labels, 5, seed=0))
    assert not torch.equal(folds, kfold_assignment(labels, 5, seed=1))


def test_fold_settings_are_validated() -> None:
    with pytest.raises(SpecError, match=r"data.fold: expected 0 to 2, got 3"):
        load_experiment("fnn1", EXPERIMENTS, ["data.folds=3", "data.fold=3"])
    with pytest.raises(SpecError, match="not both"):
        load_experiment("fnn1", EXPERIMENTS, ["data.folds=3", "data.val_split=0.1"])


def test_cv_command_runs_one_group(
    fake_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "cv",
                "fnn1",
                "--folds",
                "3",
                "--epochs",
                "2",
                "-S",
                "data.dataset=mnist",
                "--data-dir",
                str(fake_data),
                "--runs-dir",
                str(runs),
                "--no-download",
                "--device",
                "cpu",
                "--json",
            ]
        )
    assert exc.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert out["folds"] == 3 and len(out["runs"]) == 3
    infos = RunStore(runs).runs()
    assert len({r.group for r in infos}) == 1
    sizes = set()
    for r in infos:
        assert r.summary["best_metric"] == "val_loss"
        spec = load_experiment("fnn1", EXPERIMENTS)  # the definition file is unchanged
        assert spec.data.folds == 0
        sizes.add(r.summary["final"]["val_acc"] is not None)
    assert sizes == {True}
