"""A user's own model files: found beside the experiments, validated like shipped models,
snapshotted into each run (queued, resumed and Ray-trained runs build the snapshot), never
executed by reading commands once described, and located errors for bad code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment, load_spec_file
from mnist_tui.config.scaffold import new_experiment
from mnist_tui.errors import SpecError
from mnist_tui.runs import scheduler
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import resume_run, run_experiment

REPO = Path(__file__).resolve().parent.parent

TINY_MODEL = '''
"""A tiny user model."""
from typing import Annotated

from torch import nn

from mnist_tui import Range, register_model


@register_model
def tiny(
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    width: Annotated[int, Range(ge=1, le=512)] = WIDTH,
    act: bool = True,
) -> nn.Module:
    """Flatten, one hidden layer."""
    c, h, w = in_shape
    layers = [nn.Flatten(), nn.Linear(c * h * w, width)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers, nn.Linear(width, num_classes))
'''
TINY_SETTINGS = """
[model]
name = "tiny"

[data]
subset = 500
test_subset = 200

[train]
epochs = 2
batch_size = 64
"""


def tiny_params(width: int) -> int:
    return 784 * width + width + width * 10 + 10


def write_tiny(exps: Path, width: int = 8) -> Path:
    (exps / "models").mkdir(parents=True, exist_ok=True)
    path = exps / "models" / "tiny.py"
    path.write_text(TINY_MODEL.replace("WIDTH", str(width)), encoding="utf-8")
    (exps / "mine.toml").write_text(TINY_SETTINGS, encoding="utf-8")
    return path


@pytest.fixture
def exps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An experiments directory of the user's, and a cache of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    d = tmp_path / "exps"
    d.mkdir()
    monkeypatch.setenv("MNIST_TUI_EXPERIMENTS", str(d))
    return d


def cli(*args: str) -> tuple[int, str]:
    """Run the CLI in this process; its exit code and its output."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    from mnist_tui.cli import options

    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.MonkeyPatch.context() as mp,
    ):
        # the private fields: patching the `file`/`width` properties would restore them
        # as this test's streams and width, pinning them for every later test
        mp.setattr(options.console, "_file", out)
        mp.setattr(options.err, "_file", err)
        mp.setattr(options.console, "_width", 300)  # one message, one line
        mp.setattr(options.err, "_width", 300)
        mp.setenv("COLUMNS", "200")
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


# ----------------------------------------------------------------------------- layers


def _modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
        cwd=REPO,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_register_model_comes_from_the_package_without_torch() -> None:
    mods = _modules_after("from mnist_tui import Help, Length, Range, register_model")
    assert "torch" not in mods and "mnist_tui.models" in mods


def test_models_import_no_config_so_config_to_models_is_the_only_direction() -> None:
    mods = _modules_after("import mnist_tui.models")
    assert not [m for m in mods if m.startswith("mnist_tui.config")]


# ----------------------------------------------------------------------------- schema


def test_a_user_model_is_validated_like_a_shipped_one(exps: Path) -> None:
    write_tiny(exps)
    spec = load_experiment("mine", exps)
    assert spec.model.name == "tiny" and spec.model.params["width"] == 8
    assert spec.parameters == tiny_params(8)
    assert spec.model.source is not None and spec.model.source.file.endswith("tiny.py")
    assert load_experiment("mine", exps, ["model.width=32"]).parameters == tiny_params(32)
    with pytest.raises(SpecError, match=r"model.width: expected an integer >= 1 and <= 512"):
        load_experiment("mine", exps, ["model.width=0"])
    with pytest.raises(SpecError, match=r"Did you mean 'width'"):
        load_experiment("mine", exps, ["model.widht=3"])


def test_an_nn_module_subclass_is_a_model_too(exps: Path) -> None:
    (exps / "models").mkdir()
    (exps / "models" / "boxed.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            from mnist_tui import register_model

            @register_model
            class Boxed(nn.Module):
                def __init__(self, in_shape, num_classes, *, hidden: int = 4) -> None:
                    super().__init__()
                    self.net = nn.Sequential(
                        nn.Flatten(), nn.Linear(784, hidden), nn.Linear(hidden, num_classes)
                    )

                def forward(self, x):
                    return self.net(x)
            """
        )
    )
    (exps / "b.toml").write_text('[model]\nname = "Boxed"\nhidden = 5\n')
    spec = load_experiment("b", exps)
    assert spec.parameters == 784 * 5 + 5 + 5 * 10 + 10
    assert type(spec.build_model()).__name__ == "Boxed"


def test_new_writes_an_experiment_and_a_model_that_validate(exps: Path) -> None:
    made = new_experiment("my-study", "lenet5", exps, model_file=True)
    assert made.model == "my_study" and made.model_file == exps / "models" / "my_study.py"
    spec = load_experiment("my-study", exps)
    assert spec.model.name == "my_study" and spec.lineage == ("lenet5",)
    assert spec.data.pad == 2 and spec.parameters > 0  # lenet5's 32x32 data, inherited
    code, out = cli("new", "my-study", "--from", "lenet5", "--experiments-dir", str(exps))
    assert code == 2 and "already exists" in out
    code, out = cli("new", "x", "--from", "lenet55", "--experiments-dir", str(exps))
    assert code == 2 and "did you mean 'lenet5'" in out.lower()


# ----------------------------------------------------------------------------- bad code

BAD = {
    "syntax": (
        "from mnist_tui import register_model\n\n@register_model\ndef bad(s, n, *, w: int = 1)\n",
        "bad.py:4: SyntaxError",
    ),
    "import": (
        "from mnist_tui import register_model\nimport not_a_module_of_anyone\n",
        "bad.py:2: ModuleNotFoundError: No module named 'not_a_module_of_anyone'",
    ),
    "raises": (
        "from mnist_tui import register_model\n\n@register_model\n"
        "def bad(s, n, *, w: int = 1):\n    raise ValueError('w must be even')\n",
        "b.toml: model: model bad (",
    ),
    "not a module": (
        "from mnist_tui import register_model\n\n@register_model\n"
        "def bad(s, n, *, w: int = 1):\n    return 42\n",
        "returned int, not a torch.nn.Module",
    ),
    "output shape": (
        "from torch import nn\nfrom mnist_tui import register_model\n\n@register_model\n"
        "def bad(s, n, *, w: int = 1):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 7))\n",
        "has shape [2, 7]; expected [batch, classes] = [2, 10]",
    ),
    "untyped default": (
        "from mnist_tui import register_model\n\n@register_model\n"
        "def bad(s, n, *, w: object = None):\n    return None\n",
        "model bad, parameter w: type hint",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_user_code_is_a_located_error_and_leaves_no_run(
    case: str, exps: Path, tmp_path: Path
) -> None:
    source, expected = BAD[case]
    (exps / "models").mkdir()
    (exps / "models" / "bad.py").write_text(source)
    (exps / "b.toml").write_text('[model]\nname = "bad"\n')
    runs = tmp_path / "runs"
    for command in (["run", "b", "--device", "cpu"], ["queue", "add", "b", "--no-start-worker"]):
        code, out = cli(*command, "--runs-dir", str(runs))
        assert code == 2, out
        assert expected in out, out
        assert "Traceback" not in out
        if case == "raises":
            assert "bad.py:5) raised ValueError: w must be even" in out
        assert not runs.exists() or not any(runs.rglob("spec.toml"))


def test_a_name_defined_twice_names_both_files(exps: Path) -> None:
    (exps / "models").mkdir()
    for name in ("a.py", "b.py"):
        (exps / "models" / name).write_text(
            "from mnist_tui import register_model\n\n@register_model\n"
            "def dup(s, n):\n    return None\n\n@register_model\n"
            "def lenet5(s, n):\n    return None\n"
        )
    (exps / "d.toml").write_text('[model]\nname = "dup"\n')
    (exps / "l.toml").write_text('[model]\nname = "lenet5"\n')
    with pytest.raises(SpecError) as dup:
        load_experiment("d", exps)
    assert "models/b.py" in str(dup.value) and "models/a.py" in str(dup.value)
    with pytest.raises(SpecError) as shipped:
        load_experiment("l", exps)
    assert "models/a.py" in str(shipped.value) and "mnist_tui/models.py" in str(shipped.value)


def test_an_entry_point_package_provides_models(exps: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "extra_models").mkdir(parents=True)
    (site / "extra_models" / "__init__.py").write_text("")
    (site / "extra_models" / "nets.py").write_text(
        TINY_MODEL.replace("WIDTH", "4").replace("def tiny", "def ep_tiny")
    )
    dist = site / "extra_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mnist_tui.models]\nnets = extra_models.nets\n")
    (exps / "e.toml").write_text('[model]\nname = "ep_tiny"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}
    probe = (
        "from mnist_tui.config.loading import load_experiment\n"
        f"s = load_experiment('e', __import__('pathlib').Path({str(exps)!r}))\n"
        "print(s.parameters, s.model.source.module)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(tiny_params(4)), "extra_models.nets"]


# ----------------------------------------------------------------------------- read-only


def test_list_and_show_with_five_model_files_import_no_user_code_when_warm(
    exps: Path, tmp_path: Path
) -> None:
    (exps / "models").mkdir()
    for i in range(5):
        (exps / "models" / f"m{i}.py").write_text(
            TINY_MODEL.replace("WIDTH", str(i + 1)).replace("def tiny", f"def tiny{i}")
        )
        (exps / f"e{i}.toml").write_text(f'[model]\nname = "tiny{i}"\n')
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MNIST_TUI_EXPERIMENTS": str(exps),
        "MNIST_TUI_RUNS": str(tmp_path / "runs"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "COLUMNS": "200",
    }
    run = "from mnist_tui.cli import main\ntry:\n    main({args})\nexcept SystemExit:\n    pass"
    cold = _modules_after(run.format(args=["list"]), env)
    assert any(m.startswith("mnist_tui_user.") for m in cold)  # described once, cold
    for args in (["list"], ["show", "e3"]):
        warm = _modules_after(run.format(args=args), env)
        assert not [m for m in warm if m.startswith("mnist_tui_user")], args
        assert "torch" not in warm, args


# ----------------------------------------------------------------------------- training


@pytest.mark.realdata
def test_a_user_model_trains_is_listed_shown_diffed_and_resumed(
    exps: Path, tmp_path: Path, real_data: Path
) -> None:
    model_file = write_tiny(exps, width=8)
    original = model_file.read_bytes()
    store = RunStore(tmp_path / "runs")
    spec = load_experiment("mine", exps)
    first = run_experiment(spec, store, device="cpu", data_dir=real_data, download=False)
    assert first.status == "completed" and len(first.metrics()) == 2
    assert (first.path / "model.py").read_bytes() == original
    assert first.summary["parameters"] == tiny_params(8)

    # a run stopped after its first epoch, then the file edited: resume trains the copy
    epochs = []
    stopped = run_experiment(
        spec,
        store,
        device="cpu",
        data_dir=real_data,
        download=False,
        on_event=lambda e: epochs.append(e) if type(e).__name__ == "EpochEnded" else None,
        should_stop=lambda: len(epochs) >= 1,
    )
    assert stopped.status == "killed"
    model_file.write_text(TINY_MODEL.replace("WIDTH", "16"), encoding="utf-8")
    resumed = resume_run(stopped, store, device="cpu", data_dir=real_data, download=False)
    assert resumed.status == "completed" and len(resumed.metrics()) == 2
    assert resumed.summary["parameters"] == tiny_params(8)
    assert (resumed.path / "model.py").read_bytes() == original

    # the pictures view loads the run's weights into its snapshot, not into today's file
    from mnist_tui.studies.predictions import predict_samples

    samples = predict_samples(first, count=4, data_dir=real_data, download=False)
    assert len(samples.predicted) == 4

    edited = run_experiment(
        load_experiment("mine", exps), store, device="cpu", data_dir=real_data, download=False
    )
    assert edited.summary["parameters"] == tiny_params(16)

    code, out = cli("list", "--runs-dir", str(store.root))
    assert code == 0 and "mine" in out and "tiny" in out
    code, out = cli("show", first.id, "--runs-dir", str(store.root))
    assert code == 0 and "from " in out and "copied in model.py" in out, out
    assert load_spec_file(first.spec_path()).model.source.sha256 == (  # type: ignore[union-attr]
        load_spec_file(resumed.spec_path()).model.source.sha256  # type: ignore[union-attr]
    )
    code, out = cli("diff", first.id, edited.id, "--runs-dir", str(store.root))
    assert code == 0 and "model source differs" in out and "--all shows" in out
    assert "model_source.sha256" in out
    code, out = cli("diff", first.id, edited.id, "--all", "--runs-dir", str(store.root))
    assert "-    width: Annotated[int, Range(ge=1, le=512)] = 8," in out
    assert "+    width: Annotated[int, Range(ge=1, le=512)] = 16," in out
    code, out = cli("diff", first.id, resumed.id, "--runs-dir", str(store.root))
    assert "model source differs" not in out

    # a snapshot edited in place is refused, not trained
    (first.path / "model.py").write_text("# changed\n")
    with pytest.raises(SpecError, match="does not match the model source this run recorded"):
        load_spec_file(first.spec_path())


def _worker_env(exps: Path, tmp_path: Path, real_data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MNIST_TUI_DATA": str(real_data),
        "MNIST_TUI_EXPERIMENTS": str(exps),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "400",
    }


@pytest.mark.realdata
def test_a_queued_user_model_trains_its_snapshot_through_the_worker(
    exps: Path, tmp_path: Path, real_data: Path
) -> None:
    model_file = write_tiny(exps, width=8)
    original = model_file.read_bytes()
    store = RunStore(tmp_path / "store")
    env = _worker_env(exps, tmp_path, real_data)
    mnist = [sys.executable, "-m", "mnist_tui"]
    root = ["--runs-dir", str(store.root)]
    out = subprocess.run(
        [*mnist, "queue", "add", "mine", "--no-start-worker", *root],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # edited while it waits: another width, and a builder that would not even build
    model_file.write_text(TINY_MODEL.replace("WIDTH", "16") + "\nraise SystemExit(3)\n")
    out = subprocess.run(
        [*mnist, "worker", "--idle-exit", "1", *root],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    (done,) = store.runs()
    assert done.status == "completed", done.summary
    assert (done.path / "model.py").read_bytes() == original
    assert done.summary["parameters"] == tiny_params(8)


@pytest.mark.realdata
def test_a_queued_user_model_trains_its_snapshot_on_ray(
    exps: Path, tmp_path: Path, real_data: Path
) -> None:
    from .test_ray import LOOPBACK

    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed next to this Python")
    model_file = write_tiny(exps, width=8)
    original = model_file.read_bytes()
    store = RunStore(tmp_path / "store")
    env = {**_worker_env(exps, tmp_path, real_data), **LOOPBACK, "RAY_USAGE_STATS_ENABLED": "0"}
    mnist = [sys.executable, "-m", "mnist_tui"]
    root = ["--runs-dir", str(store.root)]
    out = subprocess.run(
        [*mnist, "queue", "add", "mine", "--no-start-worker", *root],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    model_file.write_text(TINY_MODEL.replace("WIDTH", "16"))
    # no --address: the worker starts a local Ray cluster of its own and stops it
    out = subprocess.run(
        [*mnist, "worker", "--backend", "ray", "--idle-exit", "2", *root],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    (done,) = scheduler.queue_order(store) or store.runs()
    assert done.status == "completed", done.summary
    assert (done.path / "model.py").read_bytes() == original
    assert done.summary["parameters"] == tiny_params(8)
    shutil.rmtree(tmp_path / "store", ignore_errors=True)
