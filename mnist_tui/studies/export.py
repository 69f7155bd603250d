"""Runs out of the store: a CSV of every epoch, or TensorBoard event files.

CSV: one row per epoch of each run, with the run's id, experiment, seed, group, tags and
overrides beside the epoch's figures, so a spreadsheet or pandas groups them directly.

TensorBoard: one directory per run (`<dir>/<experiment>/<id>`), scalars per epoch
(loss/train, accuracy/test, lr, ...) written with TensorBoard's own event writer, so
`tensorboard --logdir DIR` overlays the runs; and each run's HParams record (experiment,
variant, the configuration keys that vary among the runs), so the HParams dashboard
compares variants. TensorBoard is an optional extra.

Runs CSV (`--runs-csv`): one row per run, every resolved configuration key, final and
best figures.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
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
    hparams = hparam_values(runs)
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
        writer.add_event(
            event_pb2.Event(wall_time=start, step=0, summary=_hparams_summary(hparams[run.id]))
        )
        writer.close()
        written.append(target)
    return written


def hparam_values(runs: list[RunInfo]) -> dict[str, dict[str, Any]]:
    """Per run: its experiment, variant and the configuration keys that differ among the
    runs exported (all fifty would bury the few that vary), for TensorBoard's HParams."""
    import json

    from mnist_tui.studies.where import run_config

    configs = {r.id: run_config(r) for r in runs}
    keys = sorted({k for c in configs.values() for k in c})
    varying = [
        k
        for k in keys
        if k != "train.seed" and len({json.dumps(c.get(k)) for c in configs.values()}) > 1
    ]
    out = {}
    for r in runs:
        c = configs[r.id]
        values: dict[str, Any] = {
            "experiment": r.experiment,
            "variant": f"{r.experiment}@{(r.definition_hash() or '')[:6]}",
        }
        for k in varying:
            v = c.get(k)
            values[k] = json.dumps(v, separators=(",", ":")) if isinstance(v, list | dict) else v
        if r.seed is not None:
            values["train.seed"] = r.seed
        out[r.id] = values
    return out


def _hparams_summary(values: dict[str, Any]) -> Any:
    """The HParams plugin's session-start record (its protos only: no TensorFlow)."""
    from google.protobuf import struct_pb2
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(group_name=str(values.get("variant", "")))
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool):
            info.hparams[k].CopyFrom(struct_pb2.Value(bool_value=v))
        elif isinstance(v, int | float):
            info.hparams[k].CopyFrom(struct_pb2.Value(number_value=float(v)))
        else:
            info.hparams[k].CopyFrom(struct_pb2.Value(string_value=str(v)))
    data = plugin_data_pb2.HParamsPluginData(session_start_info=info)
    return summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(
                tag=metadata.SESSION_START_INFO_TAG,
                metadata=metadata.create_summary_metadata(data),
                tensor=metadata.NULL_TENSOR,
            )
        ]
    )


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


# ----------------------------------------------------------------------------- one row per run

RESULT_PARTS = ("final", "best")
RUN_FIGURES = ("test_acc", "test_loss", "val_acc", "val_loss", "train_acc", "train_loss")
RUN_SCALARS = ("epochs", "epochs_done", "best_epoch", "train_seconds", "wall_seconds")


def run_rows(runs: Iterable[RunInfo]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): one row per run with its variant, every resolved configuration key
    (dotted, from its spec.toml: a tune trial's or a fold's own values, not only the -S
    overrides) and its final and best figures."""
    import json

    from mnist_tui.studies.where import run_config

    rows: list[dict[str, Any]] = []
    keys: set[str] = set()
    figures: set[str] = set()
    for run in runs:
        s: Mapping[str, Any] = run.summary  # read by keys chosen at run time
        row: dict[str, Any] = {**_run_cells(run), "fold": s.get("fold"), "trial": s.get("trial")}
        row["definition"] = (run.definition_hash() or "")[:6]
        config = run_config(run)
        for k, v in config.items():
            row[k] = json.dumps(v, separators=(",", ":")) if isinstance(v, list | dict) else v
        keys |= config.keys()
        for part in RESULT_PARTS:
            for k, v in (s.get(part) or {}).items():
                if _scalar(v):
                    row[f"{part}_{k}"] = v
                    figures.add(f"{part}_{k}")
        for k in RUN_SCALARS:
            if _scalar(s.get(k)):
                row[k] = s[k]
        rows.append(row)
    ordered = [f"{p}_{k}" for p in RESULT_PARTS for k in RUN_FIGURES if f"{p}_{k}" in figures]
    ordered += sorted(figures - set(ordered))
    columns = [*RUN_COLUMNS, "fold", "trial", "definition", *ordered, *RUN_SCALARS, *sorted(keys)]
    return columns, rows


def write_runs_csv(path: Path, runs: list[RunInfo]) -> int:
    columns, rows = run_rows(runs)
    try:
        with Path(path).open("w", encoding="utf-8", newline="") as fh:
            write_csv_to(fh, columns, rows)
    except OSError as exc:
        raise MnistTuiError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)
