"""The typed run record: the summary's type and its checks agree, statuses stay strings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnist_tui.errors import MnistTuiError
from mnist_tui.runs import schema
from mnist_tui.runs.manage import check_statuses
from mnist_tui.runs.summary import RunSummary
from mnist_tui.status import ACTIVE, STATUSES, RunStatus
from mnist_tui.studies.run_options import RunOptions, options_of


def test_every_typed_summary_field_is_checked_on_reading() -> None:
    # a key in the type but not in the checks would be typed without ever being checked
    assert set(RunSummary.__annotations__) == set(schema.SUMMARY_FIELDS)


def test_a_field_that_fails_its_check_is_left_out_and_named() -> None:
    good, problems = schema.check_summary(
        {"status": "running", "created": 1.0, "trial": "x", "system": {"samples": 3}}
    )
    assert "trial" not in good and good["system"] == {"samples": 3}
    assert problems == ["summary.json: trial: expected a whole number >= 0, got 'x'"]


def test_statuses_stay_the_strings_json_and_sqlite_hold() -> None:
    assert [str(s) for s in STATUSES] == [
        "queued", "running", "completed", "failed", "killed", "interrupted"
    ]  # fmt: skip
    assert ACTIVE == ("queued", "running") and RunStatus.DAMAGED not in STATUSES
    assert json.dumps({RunStatus.QUEUED: RunStatus.KILLED}) == '{"queued": "killed"}'
    assert f"{RunStatus.COMPLETED}" == "completed"
    assert schema.effective_status("completed", None, None, None) is RunStatus.COMPLETED
    assert schema.effective_status(None, None, None, None) is RunStatus.INTERRUPTED
    assert schema.effective_status("queued", None, None, "bad") is RunStatus.DAMAGED


def test_status_filter_suggests_the_word_not_the_member() -> None:
    with pytest.raises(MnistTuiError, match="Did you mean 'killed'"):
        check_statuses(["kiled"])
    assert check_statuses(["damaged,queued"]) == ("damaged", "queued")


def test_run_options_take_keywords_on_top() -> None:
    base = RunOptions(device="cpu", threads=2)
    assert options_of(base, {}) is base
    merged = options_of(base, {"data_dir": Path("d"), "step_reports": 0})
    assert (merged.device, merged.threads, merged.data_dir, merged.step_reports) == (
        "cpu", 2, Path("d"), 0
    )  # fmt: skip
    assert options_of(None, {"device": "cpu"}) == RunOptions(device="cpu")
    with pytest.raises(MnistTuiError, match="--engine"):
        options_of(base, {"engine": "fast"})
