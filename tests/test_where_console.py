"""`--where` expressions in the console's `/` filter, and `show GROUP` / `show VARIANT`,
on the variants test store (two experiments x three variants x three seeds)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from textual.widgets import Static

from mnist_tui.runs.store import RunStore
from mnist_tui.studies.where import WhereError, is_expression, parse_where
from mnist_tui.tui.app import MnistTuiApp
from mnist_tui.tui.screens.main import MainScreen

from .conftest import EXPERIMENTS
from .test_tui import loaded, wait_for
from .test_variants import FINAL_ACC, fail_cli, make_store, run_cli

SMALL = (80, 24)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    monkeypatch.setenv("MNIST_TUI_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")
    return make_store(tmp_path / "runs")


# ----------------------------------------------------------------------------- the console


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("fnn1", False),
        ("optim.lr=0.05", False),  # an override as the runs table shows it: text
        ("fnn1 [model.hidden=[32,32]]", False),
        ("'a > b'", False),  # a comparison inside quotes is text
        ("test_acc>0.9", True),
        ("optim.lr > 0.01 and model.name == 'mlp'", True),
        ("status != failed", True),
        ("seed <= 1", True),
        ("tag ~ best", True),
        ("seed in (1, 2)", True),
        ("optim.lr = 0.05", True),
        ("not (status == 'failed')", True),
        ("(seed", True),  # an expression begun: its error says what is missing
    ],
)
def test_is_expression(text: str, expression: bool) -> None:
    assert is_expression(text) is expression


def test_parse_error_carries_its_column() -> None:
    with pytest.raises(WhereError) as exc:
        parse_where("test_acc >= 0.8 and optm.lr > 0.1")
    assert exc.value.column == 21 and "optim.lr" in exc.value.reason
    assert exc.value.render("filter").splitlines()[-1] == " " * 22 + "^"


def app_for(store: RunStore) -> MnistTuiApp:
    return MnistTuiApp(
        runs_dir=store.root,
        experiments_dir=EXPERIMENTS,
        device="cpu",
        concurrency=0,
        poll_interval=0.2,
    )


def status_line(app: MnistTuiApp) -> str:
    return str(app.main.query_one("#status-line", Static).render())


def expected_ids(store: RunStore, lr_above: float, acc_at_least: float) -> set[str]:
    """What `optim.lr > lr_above and test_acc >= acc_at_least` keeps, read straight from
    each run's spec.toml and summary.json."""
    out = set()
    for path in store.root.glob("*/*/spec.toml"):
        lr = tomllib.loads(path.read_text())["optim"]["lr"]
        acc = json.loads((path.parent / "summary.json").read_text())["final"]["test_acc"]
        if lr > lr_above and acc >= acc_at_least:
            out.add(path.parent.name)
    return out


async def test_console_filter_takes_a_where_expression(store: RunStore) -> None:
    text = "optim.lr > 0.01 and test_acc >= 0.835"
    want = expected_ids(store, 0.01, 0.835)
    assert len(want) == 6  # fnn1's own runs and its wider ones; not lr=0.05, not logreg
    async with app_for(store).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "slash", *text, "enter")
        runs = app.main.grid("runs")
        await wait_for(pilot, lambda: set(runs.row_keys()) == want, 10)
        await wait_for(pilot, lambda: "(6 of 18 runs)" in status_line(app), 5)
        assert f"filter '{text}' (6 of 18 runs)" in " ".join(status_line(app).split())
        assert not app.main.marked["runs"]  # the spaces typed went to the box, not to marks
        # the experiments tab keeps the experiments with a matching run
        await pilot.press("1")
        await wait_for(pilot, lambda: app.main.grid("experiments").row_keys() == ["fnn1"], 5)
        # a run that comes to match is shown when the store is next read
        logreg = next(
            r
            for r in store.runs("logreg")
            if r.summary.get("overrides")
            == [
                "train.seed=0",
                "optim.lr=0.01",
            ]
        )
        assert logreg.id not in want
        await pilot.press("2", "slash", "ctrl+u", *"optim.lr >= 0.01", "enter")
        await wait_for(pilot, lambda: logreg.id in runs.row_keys(), 10)
        assert "(12 of 18 runs)" in status_line(app)


async def test_console_filter_says_where_an_expression_is_wrong(store: RunStore) -> None:
    async with app_for(store).run_test(size=SMALL) as pilot:
        app = await loaded(pilot)
        runs = app.main.grid("runs")
        await pilot.press("2", "slash", *"test_acc >", "enter")
        await wait_for(pilot, lambda: "filter error" in status_line(app), 5)
        line = " ".join(status_line(app).split())
        assert "filter error: column 11: expected a value" in line
        assert runs.row_keys() == []  # nothing matched, never a half-filtered table
        said = [str(n.message) for n in app._notifications]
        assert any("filter, column 11" in m and "^" in m for m in said), said
        await pilot.press("slash", "ctrl+u", *"optm.lr > 0.1", "enter")
        await wait_for(pilot, lambda: "column 1:" in status_line(app), 5)
        assert "Did you mean 'optim.lr'?" in " ".join(status_line(app).split())
        assert isinstance(app.screen, MainScreen) and app.is_running
        # plain text is still looked for in the rows: `optim.lr=0.05` is text
        await pilot.press("slash", "ctrl+u", *"optim.lr=0.05", "enter")
        lr = {r.id for r in store.runs("fnn1") if "optim.lr=0.05" in r.summary["overrides"]}
        await wait_for(pilot, lambda: set(runs.row_keys()) == lr, 5)
        assert len(lr) == 3 and "filter error" not in status_line(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(runs.row_keys()) == 18, 5)


# ----------------------------------------------------------------------------- show


def pct(xs: list[float]) -> str:
    return f"{100 * statistics.fmean(xs):.2f} ± {100 * statistics.stdev(xs):.2f}%"


def test_show_group(store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    accs = FINAL_ACC[("fnn1", ("optim.lr=0.05",))]
    members = {r.id: r.seed for r in store.runs("fnn1") if r.summary["group"] == "fnn1-optim.lr"}
    out = run_cli(capsys, "show", "fnn1-optim.lr")
    flat = " ".join(out.split())
    assert "group fnn1-optim.lr 3 runs, 3 completed" in flat
    assert "experiment fnn1" in flat and "made with: -S optim.lr=0.05" in flat
    assert "fnn1 [optim.lr=0.05]" in flat  # the variant its runs are
    assert pct(accs) in out  # final
    assert pct([a + 0.001 for a in accs]) in out  # best
    for run_id in members:
        assert run_id in out
    got = json.loads(run_cli(capsys, "show", "fnn1-optim.lr", "--json"))
    assert got["kind"] == "group" and got["made_with"] == ["optim.lr=0.05"]
    assert {r["id"]: r["seed"] for r in got["runs"]} == members
    assert got["final_test_acc"]["mean"] == pytest.approx(statistics.fmean(accs))
    assert got["final_test_acc"]["std"] == pytest.approx(statistics.stdev(accs))
    assert got["best_test_loss"]["mean"] == pytest.approx(statistics.fmean(0.9 - a for a in accs))
    assert [v["label"] for v in got["variants"]] == ["fnn1 [optim.lr=0.05]"]


def test_show_variant(store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    accs = FINAL_ACC[("fnn1", ("model.hidden=[32,32]",))]
    variants = json.loads(run_cli(capsys, "variants", "fnn1", "--json"))
    wide = next(v for v in variants if v["label"] == "fnn1 [model.hidden=[32,32]]")
    for ref in (wide["id"], "fnn1[model.hidden=[32,32]]"):
        out = run_cli(capsys, "show", ref)
        flat = " ".join(out.split())
        assert f"variant {wide['id']} fnn1 [model.hidden=[32,32]]" in flat, ref
        assert "made with: -S model.hidden=[32,32]" in flat
        assert "groups: fnn1-model.hidden" in flat
        assert pct(accs) in out and pct([a + 0.001 for a in accs]) in out
        got = json.loads(run_cli(capsys, "show", ref, "--json"))
        assert sorted(r["id"] for r in got["runs"]) == sorted(wide["run_ids"])
        assert got["final_test_acc"]["mean"] == pytest.approx(statistics.fmean(accs))
    own = json.loads(run_cli(capsys, "show", "fnn1[]", "--json"))
    assert own["made_with"] == [] and own["label"] == "fnn1"
    assert "the experiment file's own definition" in run_cli(capsys, "show", "fnn1[]")


def test_show_unknown_group_or_variant_exits_2(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    err = " ".join(fail_cli(capsys, "show", "fnn1-optim.lrr").split())
    assert "'fnn1-optim.lrr' is neither an experiment, a run, a variant nor a group." in err
    assert "Did you mean 'fnn1-optim.lr'?" in err
    err = " ".join(fail_cli(capsys, "show", "qqqq-zzzzzz").split())
    assert "neither an experiment" in err and "mnist-tui variants" in err
    err = " ".join(fail_cli(capsys, "show", "fnn1@abcdef").split())
    assert "'fnn1@abcdef' is not an experiment, a variant" in err
    err = " ".join(fail_cli(capsys, "show", "fnn1[optim.lr=0.07]").split())
    assert "no runs of fnn1 [optim.lr=0.07] yet" in err


def test_show_group_and_variant_import_no_torch(store: RunStore) -> None:
    code = (
        "import sys; from mnist_tui.cli import main\n"
        "codes = []\n"
        "for args in (['show', 'fnn1-own'], ['show', 'logreg[optim.lr=0.01]', '--json']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        codes.append(exc.code or 0)\n"
        "print(codes, 'torch' in sys.modules, 'scipy' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stderr.strip().splitlines()[-1] == "[0, 0] False False"


def test_diff_takes_a_group_and_a_variant(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    lr = FINAL_ACC[("fnn1", ("optim.lr=0.05",))]
    wide = FINAL_ACC[("fnn1", ("model.hidden=[32,32]",))]
    got = json.loads(
        run_cli(capsys, "diff", "fnn1-optim.lr", "fnn1[model.hidden=[32,32]]", "--json")
    )
    keys = {c["key"]: (c["a"], c["b"]) for c in got["definition"] if c["changed"]}
    assert keys["optim.lr"] == (0.05, 0.1) and keys["model.hidden"] == ([16, 32], [32, 32])
    final = next(r for r in got["results"] if r["figure"] == "final test acc")
    assert final["a"] == pytest.approx(statistics.fmean(lr))
    assert final["delta"] == pytest.approx(statistics.fmean(wide) - statistics.fmean(lr))
    out = " ".join(run_cli(capsys, "diff", "fnn1-optim.lr", "fnn1[model.hidden=[32,32]]").split())
    # the variant's label in a column header is text, not a markup tag
    assert "fnn1 [model.hidden=[32,32]] mean reproduced" in out
