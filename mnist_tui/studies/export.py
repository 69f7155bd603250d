"""Runs out of the store: a CSV of every epoch, or TensorBoard event files.

CSV: one row per epoch of each run, with the run's id, experiment, seed, group, tags and
overrides beside the epoch's figures, so a spreadsheet or pandas groups them directly.

TensorBoard: one directory per run (`<dir>/<experiment>/<id>`), scalars per epoch
(loss/train, accuracy/test, lr, ...) written with TensorBoard's own event writer, so
`tensorboard --logdir DIR` overlays the runs. TensorBoard is an optional extra.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.record import RunInfo

RUN_COLUMNS = ("run", "experiment", "status", "seed", "group", "tags", "overrides")
# per-epoch figures in this order; other scalar keys a newer trainer writes follow, sorted
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "seconds",
    "train_seconds",
    "images_per_s",
)
# TensorBoard tags: grouped by what they measure, so train/val/test share one chart
TB_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "test_loss": "loss/test",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "lr": "lr",
    "seconds": "time/epoch_seconds",
    "train_seconds": "time/train_seconds",
    "images_per_s": "time/images_per_s",
}
INSTALL_HINT = (
    "TensorBoard export needs the tensorboard package: "
    "pip install 'mnist-tui[tensorboard]' (or pip install tensorboard)"
)


def _scalar(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _run_cells(run: RunInfo) -> dict[str, Any]:
    s = run.summary
    return {
        "run": run.id,
        "experiment": run.experiment,
        "status": run.status,
        "seed": s.get("seed"),
        "group": s.get("group") or "",
        "tags": " ".join(run.tags),
        "overrides": " ".join(s.get("overrides") or []),
    }


def epoch_rows(runs: Iterable[RunInfo]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): one row per epoch of each run, run columns first."""
    rows: list[dict[str, Any]] = []
    extra: set[str] = set()
    for run in runs:
        cells = _run_cells(run)
        for m in run.metrics():
            scalars = {k: v for k, v in m.items() if _scalar(v)}
            extra |= scalars.keys() - set(METRIC_COLUMNS)
            rows.append({**cells, **scalars})
    return [*RUN_COLUMNS, *METRIC_COLUMNS, *sorted(extra - set(RUN_COLUMNS))], rows


def write_csv(path: Path, runs: list[RunInfo]) -> int:
    """Write the CSV (`-` for stdout is handled by the caller); returns the rows written."""
    columns, rows = epoch_rows(runs)
    try:
        with Path(path).open("w", encoding="utf-8", newline="") as fh:
            write_csv_to(fh, columns, rows)
    except OSError as exc:
        raise MnistTuiError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)


def write_csv_to(fh: Any, columns: list[str], rows: list[dict[str, Any]]) -> None:
    w = csv.DictWriter(fh, fieldnames=columns, restval="", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def _tensorboard() -> tuple[Any, Any, Any]:
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise MnistTuiError(INSTALL_HINT) from None
    return EventFileWriter, event_pb2, summary_pb2


def tensorboard_dir(root: Path, run: RunInfo) -> Path:
    return Path(root) / run.experiment / run.id


def write_tensorboard(root: Path, runs: list[RunInfo]) -> list[Path]:
    """Event files for each run; returns the run directories written."""
    writer_cls, event_pb2, summary_pb2 = _tensorboard()
    written = []
    for run in runs:
        rows = run.metrics()
        if not rows:
            continue
        target = tensorboard_dir(root, run)
        try:
            target.mkdir(parents=True, exist_ok=True)
            writer = writer_cls(str(target), filename_suffix=".mnist-tui")
        except OSError as exc:
            raise MnistTuiError(f"cannot write {target}: {exc.strerror or exc}") from None
        start = run.created or 0.0
        for row in rows:
            values = [
                summary_pb2.Summary.Value(tag=tag, simple_value=float(row[key]))
                for key, tag in TB_TAGS.items()
                if _scalar(row.get(key)) and math.isfinite(row[key])
            ]
            wall = start + sum(r.get("seconds", 0.0) for r in rows if r["epoch"] <= row["epoch"])
            writer.add_event(
                event_pb2.Event(
                    wall_time=wall,
                    step=int(row["epoch"]),
                    summary=summary_pb2.Summary(value=values),
                )
            )
        writer.add_event(
            event_pb2.Event(
                wall_time=start,
                step=0,
                summary=summary_pb2.Summary(
                    value=[
                        summary_pb2.Summary.Value(
                            tag="run/info",
                            metadata=summary_pb2.SummaryMetadata(
                                plugin_data=summary_pb2.SummaryMetadata.PluginData(
                                    plugin_name="text"
                                )
                            ),
                            tensor=_text_tensor(_describe(run)),
                        )
                    ]
                ),
            )
        )
        writer.close()
        written.append(target)
    return written


def _describe(run: RunInfo) -> str:
    cells = _run_cells(run)
    return "  \n".join(f"**{k}**: {v}" for k, v in cells.items() if v not in ("", None))


def _text_tensor(text: str) -> Any:
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        string_val=[text.encode("utf-8")],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]
        ),
    )
