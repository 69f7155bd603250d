"""Run store: layout, atomic writes, torn lines, interrupted runs, references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_tui.errors import StoreError
from mnist_tui.runs import schema
from mnist_tui.runs.io import read_metrics, write_json_atomic
from mnist_tui.runs.store import RunStore

ROW = {
    "epoch": 1,
    "train_loss": 0.9,
    "train_acc": 0.6,
    "test_loss": 1.0,
    "test_acc": 0.5,
    "lr": 0.1,
    "seconds": 1.5,
    "images_per_s": 4000.0,
}


def test_create_and_read_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    h = store.create("lenet5", "name = 'lenet5'\n", seed=3)
    h.append_metrics(ROW)
    h.update(status="completed", final={"test_acc": 0.5})
    (info,) = store.runs()
    assert info.id == h.id and info.experiment == "lenet5" and info.status == "completed"
    assert info.seed == 3 and info.metrics() == [ROW] and info.damaged is None
    assert (tmp_path / "runs" / "lenet5" / h.id / "spec.toml").is_file()


def test_torn_metrics_line_is_ignored(tmp_path: Path) -> None:
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_metrics(p) == [{"epoch": 1}, {"epoch": 2}]


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "s.json", {"a": 1})
    write_json_atomic(tmp_path / "s.json", {"a": 2})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_running_run_whose_process_is_gone_reads_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    h = store.create("x", "")
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    h.update(status="running", pid=int(proc.stdout))
    assert store.runs()[0].status == "interrupted"
    h.update(pid=os.getpid())
    assert store.runs()[0].status == "running"


def test_damaged_run_is_listed_as_damaged_not_fatal(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    good = store.create("x", "")
    good.update(created=2.0)
    bad = store.create("x", "")
    bad.update(created=1.0)
    (bad.path / "summary.json").write_text("{not json")
    runs = store.runs()
    assert [(r.id, r.status) for r in runs] == [(good.id, "running"), (bad.id, "damaged")]
    assert (runs[1].damaged or "").startswith("summary.json: not valid JSON")
    assert [r.path for r in store.damaged()] == [bad.path]


def test_resolve_by_prefix_and_recency(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    first = store.create("a", "")
    first.update(created=1.0)
    second = store.create("b", "")
    second.update(created=2.0)
    assert store.resolve("1").id == second.id
    assert store.resolve("@2").id == first.id
    assert store.resolve(first.id[:6]).id == first.id
    with pytest.raises(StoreError, match="no run"):
        store.resolve("ffffffff" if "ffffffff" not in (first.id, second.id) else "00000000")
    with pytest.raises(StoreError, match="not a run id"):
        store.resolve("../../etc")
    with pytest.raises(StoreError, match="only 2 runs"):
        store.resolve("@9")


def test_experiment_name_cannot_escape_the_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot name a run directory"):
        RunStore(tmp_path).create("../evil", "")


def test_unwritable_runs_dir_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/mnist-tui-runs")  # not creatable even for root
    else:
        target = tmp_path / "ro" / "runs"
        (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(StoreError, match=r"cannot create the runs directory|not writable"):
        RunStore(target).create("x", "")


# ----------------------------------------------------------------------------- validation


def epoch_row(epoch: int, acc: float = 0.9) -> dict[str, object]:
    """A metrics.jsonl row as the trainer writes it."""
    return {
        "epoch": epoch,
        "train_loss": 0.3,
        "train_acc": acc + 0.01,
        "val_loss": None,
        "val_acc": None,
        "test_loss": 0.35,
        "test_acc": acc,
        "lr": 0.01,
        "seconds": 2.5,
        "train_seconds": 2.0,
        "images_per_s": 30000.0,
        "test_per_class": [acc] * 10,
        "test_confusion": [[90 if i == j else 1 for j in range(10)] for i in range(10)],
    }


def write_run(
    root: Path,
    experiment: str,
    spec_toml: str,
    *,
    run_id: str,
    seed: int = 0,
    created: float = 1.7e9,
    status: str = "completed",
    epochs: int = 3,
    acc: float = 0.9,
    group: str | None = None,
) -> Path:
    """A finished run's directory written directly, as if copied in from elsewhere."""
    path = root / experiment / run_id
    path.mkdir(parents=True)
    rows = [epoch_row(e, acc - 0.01 * (epochs - e)) for e in range(1, epochs + 1)]
    figures = {k: v for k, v in rows[-1].items() if not isinstance(v, list)}
    summary = {
        "id": run_id,
        "experiment": experiment,
        "status": status,
        "created": created,
        "seed": seed,
        "group": group,
        "pid": 12345,
        "host": "elsewhere",
        "device": "cpu",
        "epochs": epochs,
        "epochs_done": epochs,
        "best_epoch": epochs,
        "best_metric": "test_acc",
        "final": figures,
        "best": figures,
        "last": {k: v for k, v in rows[-1].items() if k != "test_confusion"},
        "classes": [str(i) for i in range(10)],
        "per_class_acc": rows[-1]["test_per_class"],
        "confusion": rows[-1]["test_confusion"],
        "hardest_class": "3",
        "parameters": 7850,
        "reason": "",
        "train_seconds": 6.0,
        "wall_seconds": 7.5,
    }
    (path / "spec.toml").write_text(spec_toml, encoding="utf-8")
    (path / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    (path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    (path / "env.json").write_text(json.dumps({"python": "3.11", "seed": seed}), encoding="utf-8")
    return path


def _edit(path: Path, **fields: object) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data, allow_nan=True))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("created", "yesterday", "created: expected a finite number"),
        ("created", float("nan"), "created: expected a finite number"),
        ("status", "sleeping", "status: expected one of"),
        ("final", {"test_acc": "high"}, "final: test_acc: expected a number"),
        ("best", [0.9], "best: expected a table of figures"),
        ("epochs_done", -1, "epochs_done: expected a whole number"),
        ("seed", True, "seed: expected a whole number"),
        ("pid", 1 << 40, "pid: expected a process id"),
        ("confusion", [[1, 2], [3]], "confusion: expected a square matrix"),
        ("per_class_acc", [0.5] * 3, "per_class_acc: 3 values for 10 classes"),
        ("wall_seconds", float("inf"), "wall_seconds: expected a finite number"),
    ],
)
def test_wrong_field_types_make_a_damaged_run(
    tmp_path: Path, field: str, value: object, words: str
) -> None:
    path = write_run(tmp_path, "fnn1", "", run_id="0000000a")
    _edit(path / "summary.json", **{field: value})
    (run,) = RunStore(tmp_path).runs()
    assert run.status == "damaged" and words in (run.damaged or "")
    assert field not in run.summary  # the bad value never reaches a view
    assert run.summary["experiment"] == "fnn1"  # the good ones still do


def test_unknown_fields_pass_and_good_runs_are_not_damaged(tmp_path: Path) -> None:
    path = write_run(tmp_path, "fnn1", "", run_id="0000000b")
    _edit(path / "summary.json", some_future_field={"x": [1, "two"]})
    (run,) = RunStore(tmp_path).runs()
    assert run.damaged is None and run.status == "completed"
    assert run.summary["some_future_field"] == {"x": [1, "two"]}


def test_bad_env_meta_or_spec_damage_the_run(tmp_path: Path) -> None:
    a = write_run(tmp_path, "fnn1", "", run_id="0000000c")
    (a / "env.json").write_text('{"python": 3, "seed": 0}')
    b = write_run(tmp_path, "fnn1", "", run_id="0000000d")
    (b / "meta.json").write_text('{"tags": "not-a-list"}')
    write_run(tmp_path, "fnn1", "this = is = not toml", run_id="0000000e")
    damaged = {r.id: r.damaged for r in RunStore(tmp_path).runs()}
    assert "env.json: python: expected a string" in (damaged["0000000c"] or "")
    assert "meta.json: tags: expected a list" in (damaged["0000000d"] or "")
    assert damaged["0000000e"] == "spec.toml: not valid TOML"
    assert RunStore(tmp_path).read_run("fnn1", "0000000c").env() == {"seed": 0}  # type: ignore[union-attr]


def test_bad_metrics_rows_are_dropped_with_a_note(tmp_path: Path) -> None:
    path = write_run(tmp_path, "fnn1", "", run_id="0000000f", epochs=4)
    lines = (path / "metrics.jsonl").read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "test_acc": "0.9"})
    lines[2] = "[1, 2, 3]"
    lines.append('{"epoch": 5, "train_lo')  # torn last line: expected, no note
    (path / "metrics.jsonl").write_text("\n".join(lines))
    run = RunStore(tmp_path).resolve("0000000f")
    assert [r["epoch"] for r in run.metrics()] == [1, 4]
    assert run.notes == [
        "metrics.jsonl line 2: test_acc: expected a number, got '0.9', dropped",
        "metrics.jsonl line 3: expected a JSON object, got [1, 2, 3], dropped",
    ]
    assert run.damaged is None  # the other epochs are good


# ----------------------------------------------------------------------------- fuzz via the CLI

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=8,
)
SUMMARY_KEYS = [*sorted(schema.SUMMARY_FIELDS), "final.test_acc", "best.test_loss", "last.lr"]
ROW_KEYS = sorted({**schema.ROW_REQUIRED, **schema.ROW_OPTIONAL})


@pytest.fixture(scope="module")
def fnn1_toml() -> str:
    from mnist_tui.config.loading import load_experiment

    from .conftest import EXPERIMENTS

    return load_experiment("fnn1", EXPERIMENTS).to_toml()


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 25)),  # each example runs ten commands
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    summary_edits=st.lists(st.tuples(st.sampled_from(SUMMARY_KEYS), JSON), max_size=3),
    row_edits=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(ROW_KEYS), JSON), max_size=2),
    env=st.one_of(
        st.none(), JSON, st.dictionaries(st.sampled_from(sorted(schema.ENV_FIELDS)), JSON)
    ),
    meta=st.one_of(
        st.none(), JSON, st.dictionaries(st.sampled_from(["tags", "note", "archived"]), JSON)
    ),
    whole=st.one_of(st.none(), JSON),
)
def test_views_never_crash_on_random_stored_values(
    fnn1_toml: str,
    summary_edits: list[tuple[str, object]],
    row_edits: list[tuple[int, str, object]],
    env: object,
    meta: object,
    whole: object,
) -> None:
    import contextlib
    import io
    import shutil
    import tempfile

    from mnist_tui.cli import main

    from .conftest import EXPERIMENTS

    with tempfile.TemporaryDirectory() as tmp:
        root, exps = Path(tmp) / "runs", Path(tmp) / "experiments"
        exps.mkdir()
        for name in ("logreg", "fnn1"):
            shutil.copy(EXPERIMENTS / f"{name}.toml", exps)
        write_run(root, "fnn1", fnn1_toml, run_id="0000abcd", seed=1, created=1.7e9 + 1)
        path = write_run(root, "fnn1", fnn1_toml, run_id="1234abcd", created=1.7e9)
        summary = json.loads((path / "summary.json").read_text())
        for key, value in summary_edits:
            part, _, sub = key.partition(".")
            if sub and isinstance(summary.get(part), dict):
                summary[part][sub] = value
            else:
                summary[key] = value
        text = json.dumps(whole if whole is not None else summary, allow_nan=True)
        (path / "summary.json").write_text(text)
        rows = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
        for i, key, value in row_edits:
            rows[i][key] = value
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if env is not None:
            (path / "env.json").write_text(json.dumps(env, allow_nan=True))
        if meta is not None:
            (path / "meta.json").write_text(json.dumps(meta, allow_nan=True))
        common = ["--runs-dir", str(root)]
        with_exps = [*common, "--experiments-dir", str(exps)]
        commands = [
            ["runs", *common],
            ["runs", "--json", "--all", "--archived", *common],
            ["runs", "--status", "damaged", *common],
            ["show", "1234abcd", *with_exps],
            ["show", "1234abcd", "--json", *with_exps],
            ["show", "fnn1", *with_exps],
            ["list", *with_exps],
            ["report", *with_exps],
            ["diff", "1234abcd", "0000abcd", *with_exps],
            ["plot", "1234abcd", "--samples", "0", *common],
        ]
        for args in commands:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(args)
                    code = 0
                except SystemExit as exc:
                    code = int(exc.code or 0)
            assert code == 0, (args, err.getvalue())
        listed = RunStore(root).read_run("fnn1", "1234abcd")
        assert listed is not None
        if listed.damaged is None:
            assert listed.status == "completed"
