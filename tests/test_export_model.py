"""export-model: the written TorchScript and torch.export models predict what the run's
own model predicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mnist_tui.cli import main
from mnist_tui.config.loading import load_spec_file
from mnist_tui.data import device as data_device
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.export_model import load_exported, load_run_model


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_exported_model_predicts_as_the_run(
    fake_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    runs = str(tmp_path / "runs")
    code, err = cli(
        capsys,
        "run",
        "lenet5",
        "-S",
        "data.subset=200",
        "--epochs",
        "1",
        "-q",
        "--data-dir",
        str(fake_data),
        "--runs-dir",
        runs,
        "--no-download",
        "--device",
        "cpu",
    )
    assert code == 0, err
    (run,) = RunStore(Path(runs)).runs()
    out = tmp_path / "out" / "model"
    code, err = cli(
        capsys, "export-model", run.id, "--format", fmt, "-o", str(out), "--runs-dir", runs
    )
    assert code == 0, err
    suffix = ".pt" if fmt == "torchscript" else ".pt2"
    target = out.with_name("model" + suffix)
    about = json.loads(target.with_suffix(".json").read_text())
    assert about["run"] == run.id and about["format"] == fmt and about["input"]["shape"][0] is None
    spec = load_spec_file(run.spec_path())
    test_x = data_device.prepare(
        spec.data, spec.augment, torch.device("cpu"), fake_data, False
    ).test_x
    _, model = load_run_model(run)
    exported = load_exported(target)
    with torch.inference_mode():
        want = model(test_x)
        got = exported(test_x)
    assert torch.equal(got.argmax(1), want.argmax(1))
    assert torch.allclose(got, want, atol=1e-5)
    assert (want.argmax(1) != want.argmax(1)[0]).any()  # not a constant: the check means something


def test_export_model_bad_format_and_missing_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_variants import make_store

    store = make_store(tmp_path / "runs")
    run = store.runs()[0]
    d = ["--runs-dir", str(tmp_path / "runs")]
    code, err = cli(capsys, "export-model", run.id, "--format", "onnx", *d)
    assert code == 2 and "expected torchscript or exported" in err
    code, err = cli(capsys, "export-model", run.id, *d)
    assert code == 2 and "has no best checkpoint" in err and "Traceback" not in err
