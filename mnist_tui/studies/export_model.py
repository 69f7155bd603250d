"""A run's trained model out of the store: TorchScript or a `torch.export` program.

    <out>.pt    TorchScript (torch.jit.load), or
    <out>.pt2   an ExportedProgram (torch.export.load(...).module())
    <out>.json  what the model expects: input shape, normalisation, classes, the run

The model is the run's own, with the weights of its best (or last) checkpoint, in
evaluation mode; it takes the images as the run's data pipeline hands them over
(normalised, padded: `input` in the JSON) and returns one logit per class.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from mnist_tui.config.loading import load_spec_file
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import MnistTuiError, StoreError
from mnist_tui.runs.record import RunInfo

FORMATS = {"torchscript": ".pt", "exported": ".pt2"}


def load_run_model(run: RunInfo, checkpoint: str = "best") -> tuple[ExperimentSpec, Any]:
    """The run's model with the checkpoint's weights, in evaluation mode, on the CPU."""
    ckpt = run.path / f"{checkpoint}.pt"
    if not ckpt.is_file():
        raise StoreError(f"run {run.id} has no {checkpoint} checkpoint ({ckpt})")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise StoreError(f"cannot read checkpoint {ckpt}: {exc}") from None
    spec = load_spec_file(run.spec_path())
    model = spec.build_model()
    model.load_state_dict(state["model"])
    model.eval()
    return spec, model


def export_model(
    run: RunInfo, out: Path, fmt: str = "torchscript", checkpoint: str = "best"
) -> tuple[Path, Path]:
    """Write the model and its description; returns (model file, JSON file)."""
    if fmt not in FORMATS:
        raise MnistTuiError(f"--format: expected torchscript or exported, got '{fmt}'")
    spec, model = load_run_model(run, checkpoint)
    out = Path(out)
    target = out if out.suffix == FORMATS[fmt] else out.with_name(out.name + FORMATS[fmt])
    # a batch of two: torch.export specialises a batch dimension of 1
    example = torch.zeros(2, *spec.input_shape())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, still what most loaders read
            warnings.simplefilter("ignore", FutureWarning)
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(model, example), str(target))  # type: ignore[no-untyped-call]
            else:
                batch = torch.export.Dim("batch", min=1, max=1 << 16)
                program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
                torch.export.save(program, str(target))
    except OSError as exc:
        raise MnistTuiError(f"cannot write {target}: {exc.strerror or exc}") from None
    except Exception as exc:  # tracing / export of a user model: say which and why
        raise MnistTuiError(f"cannot export run {run.id}'s model as {fmt}: {exc}") from None
    from mnist_tui.data.files import DATASETS

    info = DATASETS.get(spec.data.dataset)
    about = {
        "run": run.id,
        "experiment": run.experiment,
        "checkpoint": checkpoint,
        "format": fmt,
        "file": target.name,
        "input": {
            "shape": [None, *spec.input_shape()],
            "dtype": "float32",
            "normalize": spec.data.normalize,
            "mean": info.mean if info else None,
            "std": info.std if info else None,
            "pad": spec.data.pad,
        },
        "classes": list(info.classes) if info else None,
        "output": "logits, one per class",
        "test_acc": run.final("test_acc"),
    }
    meta = target.with_suffix(".json")
    try:
        meta.write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise MnistTuiError(f"cannot write {meta}: {exc.strerror or exc}") from None
    return target, meta


def load_exported(path: Path) -> Any:
    """A model written by `export_model`, ready to call."""
    path = Path(path)
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path))  # type: ignore[no-untyped-call]
