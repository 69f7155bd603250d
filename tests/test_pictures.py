"""Pictures: half-block glyphs for a known image, sample predictions, curves."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mnist_tui.config.loading import load_experiment
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.predictions import predict_samples
from mnist_tui.studies.runner import run_experiment
from mnist_tui.views import pictures

from .conftest import EXPERIMENTS


def test_glyph_grid_of_a_known_image() -> None:
    image = [
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [1, 0, 0, 1],
        [0, 0, 0, 0],
        [1, 1, 0, 0],  # odd last row: paired with blank pixels
    ]
    assert pictures.glyph_grid(image) == [" ██ ", "▀  ▀", "▀▀  "]


def test_image_text_uses_one_cell_per_two_pixels() -> None:
    text = pictures.image_text([[0.0] * 28 for _ in range(28)])
    lines = text.plain.split("\n")
    assert len(lines) == 14 and all(len(line) == 28 for line in lines)


def test_curves_draw_every_series() -> None:
    rows = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.5 / e} for e in range(1, 6)]
    out = pictures.curves(
        [("train", rows, "train_loss"), ("test", rows, "test_loss")],
        title="loss",
        width=50,
        height=12,
    )
    assert "train" in out and "test" in out and "loss" in out
    assert pictures.curves([("x", [], "y")], title="t", width=30, height=8) == "t: no epochs yet"


def test_sample_predictions_from_a_stored_run(fake_data: Path, tmp_path: Path) -> None:
    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=3"])
    run = run_experiment(spec, RunStore(tmp_path), device="cpu", data_dir=fake_data, download=False)
    picked = predict_samples(run, count=6, data_dir=fake_data, download=False)
    assert len(picked.images) == 6 and len(picked.images[0]) == 28
    assert abs(picked.accuracy - run.best("test_acc")) < 1e-6  # best checkpoint, same figure
    grid = pictures.sample_grid(
        picked.images, picked.predicted, picked.true, picked.classes, per_row=3, color=False
    )
    console = Console(width=120, record=True, color_system=None)
    console.print(grid)
    text = console.export_text()
    assert text.count("✓") + text.count("✗") == 6
    mistakes = predict_samples(
        run, count=50, mistakes_only=True, data_dir=fake_data, download=False
    )
    assert all(p != t for p, t in zip(mistakes.predicted, mistakes.true, strict=True))


def test_png_export(fake_data: Path, tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("matplotlib")
    from mnist_tui.views.png import save_run_png

    spec = load_experiment("fnn1", EXPERIMENTS, ["data.dataset=mnist", "train.epochs=2"])
    run = run_experiment(spec, RunStore(tmp_path), device="cpu", data_dir=fake_data, download=False)
    picked = predict_samples(run, count=6, data_dir=fake_data, download=False)
    out = save_run_png(tmp_path / "run.png", "fnn1", run.metrics(), run.summary, picked)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
