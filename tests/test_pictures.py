"""Pictures and the shared tables: half-block glyphs, sample predictions, curves told apart
without colour, tables that drop columns instead of cutting ids, diff figures by kind."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mnist_tui.config.loading import load_experiment
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.diff import Change, FigureDelta
from mnist_tui.studies.predictions import predict_samples
from mnist_tui.studies.runner import run_experiment
from mnist_tui.views import curves, diff_tables, pictures, render, run_tables, tables

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


def test_curves_draw_every_series() -> None:  # the wrapper the tune command still uses
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


def _rows(n: int) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.1 / e,
            "test_loss": 1.2 / e,
            "train_acc": 1 - 0.3 / e,
            "val_acc": 1 - 0.35 / e,
            "test_acc": 1 - 0.4 / e,
        }
        for e in range(1, n + 1)
    ]


def test_series_are_told_apart_without_colour() -> None:
    from plotext import uncolorize

    loss, acc = curves.run_curves(_rows(7), "run")
    assert [s.marker for s in loss.series] == ["•", "+", "x"]
    assert [s.label for s in acc.series] == ["train", "val", "test"] and acc.percent
    text = uncolorize(pictures.plot(loss, width=60, height=14))
    for marker, label in (("•", "train"), ("+", "val"), ("x", "test")):
        assert f"{marker} {label}" in text  # the legend names each glyph
        assert text.count(marker) > 5  # and the line is drawn with it
    overlay = curves.overlay_curve([(f"r{i}", _rows(3)) for i in range(12)])
    markers = [s.marker for s in overlay.series]
    assert len(set(markers[:10])) == 10  # ten runs, ten glyphs


def test_epoch_ticks_are_whole_numbers() -> None:
    from plotext import uncolorize

    for n in (2, 3, 7, 30, 150):
        ticks = pictures.int_ticks(1, n, 50)
        assert ticks == sorted(set(ticks)) and all(isinstance(t, int) for t in ticks)
        assert ticks[0] >= 1 and ticks[-1] <= n and len(ticks) <= 50 // 8
        loss, _ = curves.run_curves(_rows(n), "run")
        axis = uncolorize(pictures.plot(loss, width=58, height=12)).splitlines()[-2]
        assert [int(t) for t in axis.split()] == pictures.int_ticks(1, n, 50)


def _wide_table() -> tables.TableData:
    return tables.TableData(
        "t",
        [
            tables.Column("id", keep=True),
            tables.Column("name", keep=True),
            tables.Column("a", "right", drop=1),
            tables.Column("b", "right", drop=3),
            tables.Column("c", "right", drop=2),
        ],
        [
            tables.Row(
                f"k{i}",
                (
                    tables.Cell(f"{i:08x}"),
                    tables.Cell("a_rather_long_name"),
                    tables.Cell("1" * 12),
                    tables.Cell("2" * 12),
                    tables.Cell("3" * 12),
                ),
            )
            for i in range(3)
        ],
    )


def test_narrow_tables_drop_columns_by_rank_and_keep_ids_whole() -> None:
    data = _wide_table()
    assert [c.header for c in tables.fit(data, 200).columns] == ["id", "name", "a", "b", "c"]
    assert [c.header for c in tables.fit(data, 60).columns] == ["id", "name", "a", "c"]
    assert [c.header for c in tables.fit(data, 10).columns] == ["id", "name"]  # never less
    for width in (40, 60, 80):
        console = Console(width=width, record=True, color_system=None)
        console.print(render.rich_table(data))
        text = console.export_text()
        assert "…" not in text
        for i in range(3):
            assert f"{i:08x}" in text and "a_rather_long_name" in text


def test_diff_figures_are_shown_by_their_kind() -> None:
    deltas = [
        FigureDelta("final test acc", 0.9, 0.91, True),
        FigureDelta("final test loss", 0.3, 0.25, False),
        FigureDelta("best val loss", 0.3, 0.35, False),
    ]
    classified = diff_tables.deltas_of(deltas, (3, 5))
    assert [d.kind for d in classified] == ["accuracy", "loss", "number", "epoch"]
    table = diff_tables.delta_table("a", "b", classified, "Results")
    cells = {r.key: r.cells for r in table.rows}
    assert [c.text for c in cells["final test acc"][1:]] == ["90.00%", "91.00%", "+1.00 pp"]
    assert cells["final test acc"][3].style == "green"  # higher accuracy is better
    assert [c.text for c in cells["final test loss"][1:]] == ["0.3000", "0.2500", "-0.0500"]
    assert cells["final test loss"][3].style == "green"  # lower loss is better
    assert cells["best epoch"][3].text == "+2" and not cells["best epoch"][3].style
    keys = diff_tables.diff_keys_table("a", "b", [Change("x", 1, 2), Change("y", 3, 3)])
    styles = {r.key: r.cells[1].style for r in keys.rows}
    assert styles == {"x": "bold", "y": "dim"}  # from `changed`, not from the text
    assert [r.cells[0].text for r in keys.rows] == ["≠", "="]  # told apart without colour


def test_per_class_bars_span_the_data_so_a_3_point_gap_shows() -> None:
    table = run_tables.per_class_table(["a", "b", "c"], [0.95, 0.98, 0.90])
    bars = {r.key: r.cells[2].text.count("█") for r in table.rows}
    assert bars["b"] - bars["a"] >= 5  # on a 0-100% scale it would be one character
    assert table.columns[2].header == "bar: 90% to 98%"
    assert table.rows[2].cells[0].style == "bold red"  # the hardest class


def test_a_damaged_but_finite_figure_is_left_out_of_a_plot_not_a_crash() -> None:
    rows = [
        {"epoch": 1, "train_acc": 0.5, "val_acc": 1.7976931264911547e308, "test_acc": 0.6},
        {"epoch": 2, "train_acc": 0.6, "val_acc": 0.7, "test_acc": 0.7},
    ]
    _loss, acc = curves.run_curves(rows, "x")  # 100 x the huge value is inf
    text = pictures.plot(acc, width=60, height=10)
    assert "1 unplottable points left out" in text
