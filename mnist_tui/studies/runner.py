"""Run an experiment end to end: device, data, trainer, run store. Used by every face."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Unpack

import torch

from mnist_tui.config.loading import check_runnable
from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.data import device as data_device
from mnist_tui.errors import MnistTuiError, StoreError, TrainingError
from mnist_tui.runs.claim import claim, holder_of, release
from mnist_tui.runs.io import process_start_time, write_json_atomic
from mnist_tui.runs.provenance import environment
from mnist_tui.runs.record import CANCEL_FLAG, RunInfo
from mnist_tui.runs.steps import keep_epochs
from mnist_tui.runs.store import RunHandle, RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.recorder import RunRecorder
from mnist_tui.studies.run_options import RunOptionFields, RunOptions, options_of
from mnist_tui.train.setup import device_name, resolve_device
from mnist_tui.train.sysmon import SystemMonitor
from mnist_tui.train.trainer import EventSink, Trainer


def run_experiment(
    spec: ExperimentSpec,
    store: RunStore,
    options: RunOptions | None = None,
    *,
    handle: RunHandle | None = None,
    group: str | None = None,
    extra_summary: dict[str, Any] | None = None,
    resume_state: dict[str, Any] | None = None,
    on_event: EventSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    mark_setup_errors: bool = True,
    **fields: Unpack[RunOptionFields],
) -> RunInfo:
    """Train `spec` once, recording everything in `store`; returns the finished run.

    `options` say how it trains (RunOptions' fields may also be given as keywords, on top
    of them); the rest is this call's: the run directory that already exists (`handle`:
    a queued or resumed run), the group and extra summary fields of a new one, the
    checkpoint it continues from, where its events go and when it stops.

    A run directory that already exists is failed with the real reason when anything goes
    wrong before training, such as a missing dataset (unless `mark_setup_errors` is off).
    Interrupting with Ctrl-C marks the run killed before re-raising.
    """
    how = options_of(options, fields)
    if handle is None:
        check_runnable(spec)  # before the dataset: a name no run directory can have
    try:
        dev = resolve_device(how.device)
        if dev.type == "cpu" and how.threads:
            torch.set_num_threads(how.threads)  # the worker's share of the cores
        dataset = data_device.prepare(spec.data, spec.augment, dev, how.data_dir, how.download)
    except MnistTuiError as exc:
        if handle is not None and mark_setup_errors:
            _mark(handle, RunStatus.FAILED, str(exc))
        raise
    except OSError as exc:  # an unreadable dataset file, a full cache disk: name the file
        from mnist_tui.runs.env_errors import EnvironmentFailure, describe

        reason = describe(exc, doing="read")
        if handle is not None and mark_setup_errors:
            _mark(handle, RunStatus.FAILED, reason)
        raise EnvironmentFailure(reason) from None
    except MemoryError:
        reason = _out_of_memory("loading the dataset")
        if handle is not None and mark_setup_errors:
            _mark(handle, RunStatus.FAILED, reason)
        raise TrainingError(reason) from None
    if handle is None:
        handle = store.create(
            spec.name,
            spec.to_toml(),
            files=spec.run_files(),
            seed=spec.train.seed,
            group=group,
            extra={"epochs": spec.train.epochs, **(extra_summary or {})},
        )
    label = how.device_label or device_name(dev)
    handle.update(
        status=RunStatus.RUNNING,
        device=label,
        pid=os.getpid(),
        pid_start=process_start_time(os.getpid()),
        started=time.time(),
        threads=torch.get_num_threads() if dev.type == "cpu" else None,
    )
    env = environment(label, spec.train.seed)
    env.update(threads=torch.get_num_threads(), **how.env_extra)
    # which data exactly: a user's files can change under the same path
    env["data"] = {
        "dataset": spec.data.dataset,
        "hash": dataset.digest,
        "classes": len(dataset.classes),
        "shape": list(dataset.test_x.shape[1:]),
        "train": len(dataset.train_y),
        "test": len(dataset.test_y),
    }
    write_json_atomic(handle.path / "env.json", env)

    monitor = SystemMonitor(dev)
    recorder = RunRecorder(handle, monitor, on_event)

    cancel_flag = handle.path / CANCEL_FLAG

    def stop() -> bool:
        # `queue rm` signals only a verified trainer; a run in a terminal is asked
        # through its cancel flag, as a worker's child is
        return (should_stop is not None and should_stop()) or cancel_flag.exists()

    try:
        trainer = Trainer(
            spec,
            dataset,
            dev,
            run_id=handle.id,
            on_event=recorder,
            should_stop=stop,
            checkpoint=handle.save_checkpoint,
            engine=how.engine,
            step_reports=how.step_reports,
        )
        recorder.trainer = trainer
        if resume_state is not None:
            trainer.load_state_dict(resume_state)
    except BaseException as exc:
        # the run says running already: whatever stops it here must say why, not leave it so
        raise _setup_failed(handle, exc, dev) from None
    if resume_state is not None:
        # the checkpoint's history is the truth: it may hold an epoch the metrics file lost
        handle.rewrite_metrics([m.to_json() for m in trainer.state.history])
        handle.update(resumed_from_epoch=trainer.state.epoch, reason="")
    # class names from the start: a running run's per-class view names its classes
    handle.update(
        parameters=trainer.parameters, epochs=spec.train.epochs, classes=list(dataset.classes)
    )
    # a resumed run retrains the epoch it was stopped in: its reports continue from there
    keep_epochs(handle.path, trainer.state.epoch)
    monitor.start()
    try:
        trainer.run()
    except KeyboardInterrupt:
        _mark(handle, RunStatus.KILLED, "interrupted from the keyboard")
        raise
    except MemoryError:
        reason = _out_of_memory("training")
        _mark(handle, RunStatus.FAILED, reason)
        raise TrainingError(reason) from None
    except RuntimeError as exc:
        if not _is_host_oom(exc):
            _mark(handle, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        reason = _out_of_memory("training")
        _mark(handle, RunStatus.FAILED, reason)
        raise TrainingError(reason) from None
    except Exception as exc:
        _mark(
            handle,
            RunStatus.FAILED,
            str(exc) if isinstance(exc, MnistTuiError) else f"{type(exc).__name__}: {exc}",
        )
        raise
    finally:
        monitor.stop()
        recorder.close()
    return handle.info()


def _setup_failed(handle: RunHandle, exc: BaseException, dev: torch.device) -> BaseException:
    """Mark a run that failed while its model was built (out of memory above all) and
    return what to raise: a clear TrainingError for memory, the error itself otherwise."""
    if isinstance(exc, KeyboardInterrupt):
        _mark(handle, RunStatus.KILLED, "interrupted from the keyboard")
        return exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text.lower() or _is_host_oom(exc))
    ):
        where = "host" if isinstance(exc, MemoryError) or _is_host_oom(exc) else str(dev)
        reason = (
            f"out of {where} memory while building the model"
            + (f" ({text[:200]})" if text else "")
            + "; lower the model's width or batch size, or free memory"
        )
        _mark(handle, RunStatus.FAILED, reason)
        return TrainingError(reason)
    reason = str(exc) if isinstance(exc, MnistTuiError) else f"{type(exc).__name__}: {text}"
    _mark(handle, RunStatus.FAILED, f"while building the model: {reason}")
    return exc


def _is_host_oom(exc: RuntimeError) -> bool:
    text = str(exc)
    return "can't allocate memory" in text or "not enough memory" in text


def _out_of_memory(when: str) -> str:
    return (
        f"out of host memory while {when}: this model and batch size need more memory than "
        "the machine has free; lower train.batch_size or the model's width, or free memory"
    )


def _mark(handle: RunHandle, status: str, reason: str) -> None:
    """Record why a run stopped; on a full disk this may fail too, and the first error wins."""
    with contextlib.suppress(StoreError):
        handle.update(status=status, reason=reason)


CHECKPOINT_KEYS = ("model", "optimizer", "generator", "torch_rng", "epoch", "best_epoch", "history")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint as plain data; a damaged file is a StoreError that says what still works."""
    try:
        # weights_only: a checkpoint is data, never code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise StoreError(
            f"the checkpoint {path} is damaged ({_checkpoint_damage(path, exc)}); the run's "
            "metrics and summary are intact, but it cannot continue from this file: start it "
            "again with mnist-tui run, or resume from its best epoch by copying best.pt over "
            "last.pt"
        ) from None
    if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
        raise StoreError(
            f"the checkpoint {path} is not a mnist-tui training checkpoint "
            f"(missing {', '.join(missing)}); the run is unchanged"
        )
    return state


def _checkpoint_damage(path: Path, exc: Exception) -> str:
    """What is wrong with a checkpoint, in our words: torch's own message would suggest
    loading it with weights_only=False, which can run arbitrary code."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as os_exc:
        return f"cannot read it: {os_exc.strerror}"
    if size == 0:
        return "the file is empty"
    if "weights_only" in str(exc) or "Unsupported global" in str(exc):
        return "it holds Python objects, not only tensors and plain data; it is not loaded"
    if head == b"PK\x03\x04":
        return f"a truncated or corrupt archive of {size:,} bytes"
    return f"not a PyTorch checkpoint ({size:,} bytes)"


def check_resumable(info: RunInfo) -> tuple[ExperimentSpec, dict[str, Any] | None]:
    """Everything `resume` needs, validated before anything is written.

    Returns the run's spec and its checkpoint (None: it never finished an epoch, so it
    starts from the beginning). Raises StoreError and leaves the run exactly as it was.
    """
    from mnist_tui.config.loading import load_spec_file
    from mnist_tui.errors import SpecError

    status = info.status
    if status in (RunStatus.RUNNING, RunStatus.QUEUED):
        hint = " (the worker starts it)" if status == RunStatus.QUEUED else ""
        holder = holder_of(info.path) if status == RunStatus.RUNNING else None
        if holder is not None:  # name who trains it, as a lost claim race does
            hint = f", held by {holder.describe()}"
        raise StoreError(f"run {info.id} is {status}{hint}; only a stopped run can be resumed")
    if status == RunStatus.COMPLETED:
        raise StoreError(f"run {info.id} already completed all its epochs")
    try:
        spec = load_spec_file(info.spec_path())
    except SpecError as exc:
        raise StoreError(f"run {info.id}: its spec.toml no longer loads: {exc}") from None
    ckpt = info.path / "last.pt"
    if not ckpt.is_file():
        if not info.epochs_done:
            return spec, None  # cancelled or failed before its first epoch: simply start it
        raise StoreError(
            f"run {info.id} has no checkpoint ({ckpt}) although it finished epochs; "
            "start it again with mnist-tui run"
        )
    state = load_checkpoint(ckpt)
    trained = state.get("spec")
    if isinstance(trained, str):
        import tomllib

        try:
            then = tomllib.loads(trained)
        except tomllib.TOMLDecodeError:
            then = {}
        now = spec.to_dict()
        for section in ("model", "optim", "data", "augment"):
            if section in then and then[section] != now.get(section):
                keys = sorted(
                    k
                    for k in {*then[section], *now.get(section, {})}
                    if then[section].get(k) != now.get(section, {}).get(k)
                )
                shown = ", ".join(
                    f"{section}.{k}: checkpoint {then[section].get(k)!r}, spec.toml "
                    f"{now.get(section, {}).get(k)!r}"
                    for k in keys[:3]
                )
                raise StoreError(
                    f"run {info.id}: spec.toml no longer matches the checkpoint {ckpt} "
                    f"({shown}); "
                    "a resumed run must train what it started with: put spec.toml back, or "
                    "start a new run"
                )
    with torch.device("meta"):
        model = spec.build_model()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    weights = state["model"]
    got = {k: tuple(v.shape) for k, v in weights.items()} if isinstance(weights, dict) else {}
    if expected != got:
        diff = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
        raise StoreError(
            f"run {info.id}: the weights in {ckpt} do not fit the model in spec.toml "
            f"({', '.join(diff[:3])}); the run is unchanged"
        )
    return spec, state


def resume_run(
    info: RunInfo,
    store: RunStore,
    options: RunOptions | None = None,
    *,
    on_event: EventSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    **fields: Unpack[RunOptionFields],
) -> RunInfo:
    """Continue a stopped run from its last checkpoint (model, optimizer, schedule, RNG),
    trained as `options` (and RunOptions' fields as keywords) say.

    Validated first, then claimed: of two `resume`s started together exactly one trains,
    the other fails naming the holder. Neither touches the run before it holds it.
    """
    how = options_of(options, fields)
    spec, state = check_resumable(info)
    resolve_device(how.device)  # a device this machine lacks: refused before the run is touched
    holder = claim(info.path, "resume", " ".join(sys.argv))
    ended = RunStatus.FAILED
    try:
        fresh = store.read_run(info.experiment, info.id)
        if fresh is None or fresh.status in (
            RunStatus.RUNNING,
            RunStatus.QUEUED,
            RunStatus.COMPLETED,
        ):
            now = fresh.status if fresh else "gone"
            raise StoreError(f"run {info.id} is {now} now; it was not resumed")
        fresh.path.joinpath(".cancel").unlink(missing_ok=True)
        done = run_experiment(
            spec,
            store,
            how,
            handle=store.handle(fresh),
            resume_state=state,
            on_event=on_event,
            should_stop=should_stop,
            mark_setup_errors=False,  # a resume that cannot start leaves the run as it was
        )
        ended = done.status
        return done
    finally:
        release(info.path, holder, ended=f"resume {ended}")
