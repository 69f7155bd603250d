"""Variants, --where, compare and the report's intervals on a store written directly:
two experiments x three variants x three seeds, no training."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.runs.store import RunStore

from .conftest import EXPERIMENTS

# (experiment, overrides) -> final test accuracy of seeds 0, 1, 2
FINAL_ACC: dict[tuple[str, tuple[str, ...]], list[float]] = {
    ("fnn1", ()): [0.9510, 0.9530, 0.9490],
    ("fnn1", ("optim.lr=0.05",)): [0.9400, 0.9420, 0.9380],
    ("fnn1", ("model.hidden=[32,32]",)): [0.9620, 0.9650, 0.9600],
    ("logreg", ()): [0.9200, 0.9215, 0.9190],
    ("logreg", ("optim.lr=0.01",)): [0.9210, 0.9190, 0.9230],
    ("logreg", ("train.epochs=1",)): [0.9000, 0.9010, 0.8990],
}


def make_store(root: Path) -> RunStore:
    """The test store: every run completed, with final and best figures and a group per
    variant, written through the store as a finished run would be."""
    store = RunStore(root)
    for (name, overrides), accs in FINAL_ACC.items():
        for seed, acc in enumerate(accs):
            spec = load_experiment(name, EXPERIMENTS, [f"train.seed={seed}", *overrides])
            group = f"{name}-{'own' if not overrides else overrides[0].split('=')[0]}"
            h = store.create(name, spec.to_toml(), seed=seed, group=group)
            h.update(
                status="completed",
                overrides=[f"train.seed={seed}", *overrides],
                final={"test_acc": acc, "test_loss": 1.0 - acc},
                best={"test_acc": acc + 0.001, "test_loss": 0.9 - acc},
                best_epoch=2,
                epochs_done=spec.train.epochs,
                epochs=spec.train.epochs,
                train_seconds=5.0,
            )
    return store
