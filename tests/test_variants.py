"""Variants, --where, compare and the report's intervals on a store written directly:
two experiments x three variants x three seeds, no training."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.runs.store import RunStore

from .conftest import EXPERIMENTS

# (experiment, overrides) -> final test accuracy of seeds 0, 1, 2
FINAL_ACC: dict[tuple[str, tuple[str, ...]], list[float]] = {
    ("fnn1", ()): [0.8360, 0.8400, 0.8390],  # reported 83.80%: inside the interval
    ("fnn1", ("optim.lr=0.05",)): [0.8300, 0.8320, 0.8280],
    ("fnn1", ("model.hidden=[32,32]",)): [0.8460, 0.8490, 0.8440],
    ("logreg", ()): [0.7200, 0.7215, 0.7190],  # reported 71.50%: outside
    ("logreg", ("optim.lr=0.01",)): [0.7210, 0.7190, 0.7230],
    ("logreg", ("train.epochs=1",)): [0.7000, 0.7010, 0.6990],
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


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    assert exc.value.code in (0, None), out.err
    return out.out


def fail_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    monkeypatch.setenv("MNIST_TUI_RUNS", str(tmp_path / "store"))
    monkeypatch.setenv("COLUMNS", "200")
    return make_store(tmp_path / "store")


def label(name: str, overrides: tuple[str, ...]) -> str:
    return name if not overrides else f"{name} [{overrides[0]}]"


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """t, df and two-sided p of mean(b) - mean(a), by the textbook formulas."""
    from scipy import stats as st

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(b) - statistics.fmean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df, float(2 * st.t.sf(abs(t), df))


def test_variants_lists_each_definition_with_its_statistics(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    got = json.loads(run_cli(capsys, "variants", "--json", "--columns", "optim.lr"))
    assert len(got) == 6
    by_label = {v["label"]: v for v in got}
    for (name, overrides), accs in FINAL_ACC.items():
        v = by_label[label(name, overrides)]
        assert v["experiment"] == name and v["own"] == (not overrides)
        assert v["completed"] == 3 and v["seeds"] == [0, 1, 2]
        assert v["final_test_acc"]["mean"] == pytest.approx(statistics.fmean(accs))
        assert v["final_test_acc"]["std"] == pytest.approx(statistics.stdev(accs))
        assert v["best_test_acc"]["mean"] == pytest.approx(statistics.fmean(accs) + 0.001)
        assert v["final_test_loss"]["mean"] == pytest.approx(1 - statistics.fmean(accs))
        assert v["id"].startswith(f"{name}@") and len(v["id"]) == len(name) + 7
    assert by_label["fnn1 [optim.lr=0.05]"]["changes"] == {"optim.lr": 0.05}
    assert by_label["fnn1 [optim.lr=0.05]"]["columns"] == {"optim.lr": 0.05}
    assert by_label["logreg"]["columns"] == {"optim.lr": 0.001}
    # the experiment's own variant first
    assert got[0]["label"] == "fnn1" and got[3]["label"] == "logreg"
    table = run_cli(capsys, "variants", "fnn1", "--columns", "model.hidden")
    assert "fnn1 [model.hidden=[32,32]]" in table and "model.hidden" in table
    hidden = FINAL_ACC[("fnn1", ("model.hidden=[32,32]",))]
    shown = f"{100 * statistics.fmean(hidden):.2f} ± {100 * statistics.stdev(hidden):.2f}%"
    assert "logreg" not in table and shown in table


def test_variants_are_named_by_id_group_and_overrides(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    variants = json.loads(run_cli(capsys, "variants", "--json"))
    lr = next(v for v in variants if v["label"] == "fnn1 [optim.lr=0.05]")
    own = next(v for v in variants if v["label"] == "fnn1")
    digits = lr["id"].split("@")[1]
    for ref in (lr["id"], digits[:4], "fnn1[optim.lr=0.05]", "fnn1-optim.lr"):
        out = json.loads(run_cli(capsys, "compare", "fnn1", ref, "--json"))
        assert sorted(out["sides"][1]["runs"]) == sorted(lr["run_ids"]), ref
        assert sorted(out["sides"][0]["runs"]) == sorted(own["run_ids"])
    err = fail_cli(capsys, "compare", "fnn1", "fnn1[optim.lr=0.07]")
    assert "no runs of fnn1 [optim.lr=0.07] yet" in err
    err = fail_cli(capsys, "compare", "fnn1", "fnn9")
    assert "'fnn9' is not an experiment, a variant" in err and "Did you mean" in err
    assert "named twice" in fail_cli(capsys, "compare", "fnn1", own["id"])


def test_where_selects_by_configuration_and_result(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    expr = "optim.lr > 0.01 and model.name == 'mlp' and test_acc >= 0.835"
    got = json.loads(run_cli(capsys, "runs", "--all", "--json", "--where", expr))
    expected = []
    for (name, overrides), accs in FINAL_ACC.items():
        spec = load_experiment(name, EXPERIMENTS, overrides)
        for acc in accs:
            if spec.optim.lr > 0.01 and spec.model.name == "mlp" and acc >= 0.835:
                expected.append(acc)
    assert len(expected) == 6  # the test means something
    assert sorted(r["final"]["test_acc"] for r in got) == sorted(expected)
    got = json.loads(
        run_cli(
            capsys,
            "runs",
            "--all",
            "--json",
            "--where",
            "not (experiment = fnn1 or seed in (0, 1))",
        )
    )
    assert len(got) == 3 and {r["experiment"] for r in got} == {"logreg"}
    assert {r["seed"] for r in got} == {2}
    table = run_cli(
        capsys, "runs", "--where", "train.epochs == 1", "--columns", "train.epochs,group"
    )
    assert "3 runs" in table and "train.epochs" in table
    assert table.count("logreg-train.epochs") == 3  # the group column
    assert "--columns: unknown key 'grop'" in fail_cli(capsys, "runs", "--columns", "grop")
    assert "not a configuration key" in fail_cli(capsys, "variants", "--columns", "group")
    err = fail_cli(capsys, "runs", "--where", "optim.lr > 0.01 and (model.name == 'mlp'")
    assert "column 41" in err and "expected ')'" in err
    lines = err.splitlines()
    caret = next(line for line in lines if line.strip() == "^")
    assert caret.index("^") == lines[lines.index(caret) - 1].index("(model.name") + len(
        "(model.name == 'mlp'"
    )
    assert "Did you mean 'optim.lr'" in fail_cli(capsys, "runs", "--where", "optm.lr > 1")


def test_compare_two_sides_against_independent_numbers(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = FINAL_ACC[("logreg", ())], FINAL_ACC[("logreg", ("optim.lr=0.01",))]
    out = json.loads(run_cli(capsys, "compare", "logreg", "logreg[optim.lr=0.01]", "--json"))
    (pair,) = out["pairs"]
    t, df, p = welch(a, b)
    assert pair["diff"] == pytest.approx(statistics.fmean(b) - statistics.fmean(a))
    assert pair["t"] == pytest.approx(t) and pair["df"] == pytest.approx(df)
    assert pair["p"] == pytest.approx(p) and pair["p_adjusted"] is None
    assert pair["significant"] is False and pair["seeds_needed"] > 3
    text = run_cli(capsys, "compare", "logreg", "logreg[optim.lr=0.01]")
    assert "not distinguishable with 3 and 3 runs" in text
    md = run_cli(capsys, "compare", "logreg", "logreg[optim.lr=0.01]", "--md")
    assert "| #2 − #1 | +0.08 |" in md
    latex = run_cli(capsys, "compare", "fnn1", "logreg", "--latex")
    assert "\\toprule" in latex and "$\\pm$" in latex and "$-$" in latex
    # at the best epoch every figure is 0.1 pp higher: the same difference
    best = json.loads(run_cli(capsys, "compare", "logreg", "logreg-optim.lr", "--best", "--json"))
    assert best["at"] == "best" and best["pairs"][0]["diff"] == pytest.approx(pair["diff"])
    loss = json.loads(
        run_cli(
            capsys, "compare", "logreg", "logreg-train.epochs", "--metric", "test_loss", "--json"
        )
    )
    assert loss["higher_is_better"] is False and loss["pairs"][0]["better"] == "logreg"
    assert "stored: test_acc, test_loss" in fail_cli(
        capsys, "compare", "fnn1", "logreg", "--metric", "val_acc"
    )


def test_compare_four_sides_ranks_and_holm_adjusts(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = {
        "fnn1": ("fnn1", ()),
        "fnn1[optim.lr=0.05]": ("fnn1", ("optim.lr=0.05",)),
        "fnn1[model.hidden=[32,32]]": ("fnn1", ("model.hidden=[32,32]",)),
        "logreg": ("logreg", ()),
    }
    out = json.loads(run_cli(capsys, "compare", *refs, "--json"))
    values = {label(*k): FINAL_ACC[k] for k in refs.values()}
    ranked = sorted(values, key=lambda k: -statistics.fmean(values[k]))
    assert [s["label"] for s in out["sides"]] == ranked
    pairs = [(ranked[j], ranked[i]) for i in range(4) for j in range(i + 1, 4)]
    assert [(p["a"], p["b"]) for p in out["pairs"]] == pairs
    raw = [welch(values[a], values[b])[2] for a, b in pairs]
    assert [p["p"] for p in out["pairs"]] == pytest.approx(raw)
    # Holm by hand: the i-th smallest times (m - i), running maximum
    order = sorted(range(6), key=lambda i: raw[i])
    adjusted, running = [0.0] * 6, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (6 - rank) * raw[i]))
        adjusted[i] = running
    assert [p["p_adjusted"] for p in out["pairs"]] == pytest.approx(adjusted)
    text = run_cli(capsys, "compare", *refs)
    by = 100 * (statistics.fmean(values[ranked[0]]) - statistics.fmean(values["fnn1"]))
    assert f"fnn1 [model.hidden=[32,32]] is better than fnn1 by {by:.2f} pp" in text


def test_report_interval_of_the_reproduced_mean(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from scipy import stats as st

    rows = json.loads(run_cli(capsys, "report", "fnn1", "logreg", "--json"))
    for row in rows:
        accs = FINAL_ACC[(row["name"], ())]
        half = st.t.ppf(0.975, 2) * statistics.stdev(accs) / math.sqrt(3)
        mean = statistics.fmean(accs)
        assert row["ci_low"] == pytest.approx(mean - half)
        assert row["ci_high"] == pytest.approx(mean + half)
        reported = load_experiment(row["name"], EXPERIMENTS).reference.test_accuracy
        assert row["inside_ci95"] is bool(mean - half <= reported <= mean + half)
        assert row["inside_ci95"] is (row["name"] == "fnn1")  # the store is made so
        assert row["other_variants"] == 2
        assert row["step"] is None or row["step"]["parent"] == "logreg"
    md = run_cli(capsys, "report", "fnn1", "logreg", "--md")
    assert "| 95% CI |" in md and "3 (+2 variants)" in md
    step = statistics.fmean(FINAL_ACC[("fnn1", ())]) - statistics.fmean(FINAL_ACC[("logreg", ())])
    assert f"| logreg → fnn1 | final | 3 / 3 | {100 * step:+.2f} |" in md
    listing = run_cli(capsys, "list")
    assert "9 (+2 variants)" in listing


def test_read_only_commands_do_not_import_scipy(store: RunStore) -> None:
    code = (
        "import sys; from mnist_tui.cli import main\n"
        "codes = []\n"
        "for args in (['list'], ['runs', '--where', 'test_acc > 0.9'], ['variants'],\n"
        "             ['show', 'fnn1-own'], ['show', 'fnn1[optim.lr=0.05]']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        codes.append(exc.code or 0)\n"
        "print(codes, 'scipy' in sys.modules, 'torch' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stderr.strip().splitlines()[-1] == "[0, 0, 0, 0, 0] False False"
