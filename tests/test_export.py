"""Export: the CSV read back row by row, TensorBoard event files read back with
TensorBoard's own reader."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from mnist_tui.studies import export

from .test_cli import cli
from .test_store import epoch_row, write_run


def _two_runs(root: Path) -> None:
    a = write_run(root, "fnn1", "", run_id="e0000001", seed=3, epochs=3, acc=0.9, group="g")
    b = write_run(root, "lenet5", "", run_id="e0000002", seed=4, epochs=2, acc=0.8)
    summary = json.loads((b / "summary.json").read_text())
    (b / "summary.json").write_text(json.dumps({**summary, "overrides": ["optim.lr=0.5"]}))
    (a / "meta.json").write_text('{"tags": ["best"]}')


def test_csv_has_one_row_per_epoch_with_the_run_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_runs(tmp_path / "runs")
    out = tmp_path / "epochs.csv"
    d = ["--runs-dir", str(tmp_path / "runs")]
    code, _, err = cli(capsys, "export", "e0000001", "e0000002", "--csv", str(out), *d)
    assert code == 0, err
    assert "wrote 5 epochs of 2 runs" in err
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["run"], r["epoch"]) for r in rows] == [
        ("e0000001", "1"),
        ("e0000001", "2"),
        ("e0000001", "3"),
        ("e0000002", "1"),
        ("e0000002", "2"),
    ]
    first, last = rows[0], rows[-1]
    assert (first["experiment"], first["seed"], first["group"], first["tags"]) == (
        "fnn1",
        "3",
        "g",
        "best",
    )
    assert (last["experiment"], last["seed"], last["overrides"]) == ("lenet5", "4", "optim.lr=0.5")
    assert float(rows[2]["test_acc"]) == pytest.approx(0.9)
    assert float(rows[0]["test_acc"]) == pytest.approx(0.88)
    assert rows[0]["val_acc"] == "" and float(rows[0]["lr"]) == 0.01
    assert "test_confusion" not in rows[0]  # per-class lists are not CSV cells
    assert list(rows[0])[:8] == [*export.RUN_COLUMNS, "epoch"]


def test_csv_to_stdout_and_by_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_runs(tmp_path)
    code, out, _ = cli(capsys, "export", "--group", "g", "--csv", "-", "--runs-dir", str(tmp_path))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["run"] for r in rows} == {"e0000001"} and len(rows) == 3


def test_tensorboard_event_files_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator

    _two_runs(tmp_path / "runs")
    logdir = tmp_path / "tb"
    code, _, err = cli(
        capsys,
        "export",
        "1",
        "2",
        "--tensorboard",
        str(logdir),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert code == 0, err
    assert "tensorboard --logdir" in err
    acc = event_accumulator.EventAccumulator(str(logdir / "fnn1" / "e0000001"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"loss/train", "loss/test", "accuracy/test", "accuracy/train", "lr"} <= set(tags)
    assert "accuracy/val" not in tags  # null without a validation split: not written
    test_acc = acc.Scalars("accuracy/test")
    assert [e.step for e in test_acc] == [1, 2, 3]
    assert [round(e.value, 4) for e in test_acc] == [0.88, 0.89, 0.9]
    assert sorted(acc.Tags()["tensors"]) == ["_hparams_/session_start_info", "run/info"]
    other = event_accumulator.EventAccumulator(str(logdir / "lenet5" / "e0000002"))
    other.Reload()
    assert [e.step for e in other.Scalars("loss/test")] == [1, 2]


def test_tensorboard_missing_says_how_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_runs(tmp_path)
    for name in list(sys.modules):
        if name.startswith("tensorboard"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    code, _, err = cli(
        capsys, "export", "1", "--tensorboard", str(tmp_path / "tb"), "--runs-dir", str(tmp_path)
    )
    assert code == 2 and "Traceback" not in err
    assert "pip install 'mnist-tui[tensorboard]'" in " ".join(err.split())


def test_export_needs_a_destination_and_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_runs(tmp_path)
    code, _, err = cli(capsys, "export", "1", "--runs-dir", str(tmp_path))
    assert code == 2 and "--runs-csv FILE and/or --tensorboard DIR" in err
    code, _, err = cli(capsys, "export", "--csv", "x.csv", "--runs-dir", str(tmp_path))
    assert code == 2 and "name at least one run" in err


def test_tensorboard_hparams_name_the_variant_and_the_keys_that_vary(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import metadata

    from .test_variants import make_store

    store = make_store(tmp_path / "runs")
    runs = [r.full() for r in store.runs() if r.group in ("fnn1-own", "fnn1-optim.lr")]
    for r in runs:  # event files need epochs: one each
        (r.path / "metrics.jsonl").write_text(json.dumps(epoch_row(1)) + "\n")
    export.write_tensorboard(tmp_path / "tb", runs)
    seen = {}
    for r in runs:
        acc = event_accumulator.EventAccumulator(str(tmp_path / "tb" / "fnn1" / r.id))
        acc.Reload()
        meta = acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG)
        info = metadata.parse_session_start_info_plugin_data(meta.plugin_data.content)
        hp = {
            k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
            for k, v in info.hparams.items()
        }
        seen[r.id] = hp
        assert info.group_name == hp["variant"]
    lrs = {hp["optim.lr"] for hp in seen.values()}
    assert lrs == {0.1, 0.05}  # the one key that varies, and no others
    assert set(next(iter(seen.values()))) == {"experiment", "variant", "optim.lr", "train.seed"}


def test_runs_csv_has_one_row_per_run_with_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_variants import FINAL_ACC, make_store

    make_store(tmp_path / "runs")
    code, out, err = cli(
        capsys,
        "export",
        "--group",
        "fnn1-optim.lr",
        "--runs-csv",
        "-",
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3
    assert sorted(float(r["final_test_acc"]) for r in rows) == sorted(
        FINAL_ACC[("fnn1", ("optim.lr=0.05",))]
    )
    assert {r["optim.lr"] for r in rows} == {"0.05"} and {r["model.hidden"] for r in rows} == {
        "[16,32]"
    }
    assert sorted(r["train.seed"] for r in rows) == ["0", "1", "2"]
    assert {"best_test_acc", "data.dataset", "train.epochs", "experiment"} <= set(rows[0])
