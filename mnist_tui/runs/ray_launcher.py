"""The Ray backend, driver side: the same worker loop, each claimed run a Ray task Ray places.

`mnist-tui worker --backend ray [--address ADDR]` serves a run store exactly as the local
worker does (one lock, the same atomic claims, the same queue order, pause and cancel),
but a claimed run becomes a Ray task that asks for the run's `[train] gpus` and `cpus`
(fractions allowed), and Ray, not the worker, picks the node. The task runs what a local
slot runs: `python -m mnist_tui train-run RUN_DIR` as its child process, after writing
the starting line to the run's log.txt; the node's name and id reach env.json and the
summary through MNIST_TUI_NODE / MNIST_TUI_NODE_ID.

What the driver adds to the local loop:
- a probe at start: one task on every node reads a token the driver wrote into the store
  and writes one back; a node that cannot means the store is not shared, and the worker
  refuses with what each node found;
- it submits only what the cluster can start now (the resources of runs in flight against
  the cluster's totals), so queued runs stay queued (and movable, pausable) until a place
  is free;
- cancel: train-run stops by itself on the run's `.cancel` flag (any node sees it); a
  task still going CANCEL_GRACE seconds later is cancelled by force;
- a task that dies with its Ray worker process or its node leaves the run interrupted,
  with the reason, and resumable.

What runs on the nodes is in runs/ray_tasks.py. Ray is an optional extra
(`pip install -e ".[ray]"`); only these two modules import it, and only when a Ray worker
starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shlex
import socket
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_tui.errors import MnistTuiError, StoreError
from mnist_tui.runs import claim as claims
from mnist_tui.runs import ray_connect, scheduler
from mnist_tui.runs.launcher import (
    WAIT,
    Backend,
    Finished,
    LaunchFailed,
    Log,
    Mark,
    Refused,
    Wait,
    WorkerOptions,
)
from mnist_tui.runs.ray_connect import first_line
from mnist_tui.runs.ray_tasks import remote_alive, train_task
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus

CANCEL_GRACE = float(os.environ.get("MNIST_TUI_RAY_CANCEL_GRACE", "10"))
CAPACITY_EVERY = 5.0  # seconds between looks at the cluster's resources (nodes come and go)
STOP_WAIT = 30.0
# how the runs of this store are told apart from other tasks on a shared cluster
TASK_PREFIX = "mnist-tui"
NODE_ENV = ("MNIST_TUI_SLOT", "MNIST_TUI_NODE", "MNIST_TUI_NODE_ID")
INSTALL = 'pip install -e ".[ray]"'


class RayMissing(MnistTuiError):
    exit_code = 2


def import_ray() -> Any:
    """Ray, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RayMissing(
            f"--backend ray needs Ray, which is not installed: {INSTALL} "
            "(or pip install 'ray>=2.9')"
        ) from None
    return ray


@dataclass(frozen=True)
class Need:
    """What one run asks of the cluster."""

    cpus: float
    gpus: float

    def __str__(self) -> str:
        return f"{self.cpus:g} CPU" + (f", {self.gpus:g} GPU" if self.gpus else "")

    @property
    def threads(self) -> int:
        return max(1, math.ceil(self.cpus))


def run_need(info: RunInfo, cluster_gpus: float) -> Need:
    """The run's `[train] gpus` and `cpus` from its own spec.toml (read as TOML: no torch).

    Unset gpus is one GPU on a cluster that has any, else none; a run pinned to the CPU
    (`queue add --device cpu`) asks for none.
    """
    try:
        spec = tomllib.loads(info.spec_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StoreError(f"its spec.toml cannot be read: {exc}") from None
    train = spec.get("train")
    gpus, cpus = (train.get("gpus"), train.get("cpus")) if isinstance(train, dict) else (None, None)
    pin = info.pin_device
    if pin == "cpu":
        gpus = 0.0
    elif pin is not None:
        raise StoreError(
            f"pinned to GPU {pin}: on a Ray cluster Ray picks the GPU; queue it without "
            "--device, with [train] gpus saying how much of one it needs"
        )
    g = float(gpus) if isinstance(gpus, int | float) else (1.0 if cluster_gpus > 0 else 0.0)
    c = float(cpus) if isinstance(cpus, int | float) else 1.0
    if g > 1 and not g.is_integer():
        raise StoreError(f"train.gpus = {g:g}: Ray takes a fraction below 1 or a whole number")
    return Need(c, g)


# ----------------------------------------------------------------------------- the driver


@dataclass
class InFlight:
    """A run handed to Ray and not yet reaped."""

    info: RunInfo
    ref: Any  # the task's ObjectRef
    need: Need
    holder: claims.Holder  # the driver's claim (the task hands it to train-run)
    submitted: float
    cancel_seen: float | None = None
    forced: bool = False


class RayLauncher:
    """Ray tasks in place of local child processes; Ray picks each run's node."""

    def __init__(self, store: RunStore, options: WorkerOptions, log: Log) -> None:
        self.ray = import_ray()  # before anything else: a missing Ray is a one-line error
        self.store = store
        self.options = options
        self.log = log
        self.address = options.address
        self.inflight: dict[str, InFlight] = {}
        self.total = Need(0.0, 0.0)
        self.total_at = -math.inf
        self.remote: Any = None
        self.mark: Mark | None = None  # the worker's, from connect
        self.head_watch: Any = None
        self.me = f"pid {os.getpid()} on {socket.gethostname()}"

    @property
    def devices(self) -> tuple[str, ...]:
        return (f"ray:{self.address or 'local'}",)

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a Ray cluster here"
        return f"runs go to {where}, where Ray places each"

    # -- connecting --------------------------------------------------------------

    def connect(self, mark: Mark) -> None:
        ray = self.ray
        ray_connect.join(ray, self.address)
        self.remote = ray.remote(train_task)
        self.mark = mark
        from mnist_tui.runs.ray_watch import watch_head

        # a head that dies mid-run: its runs say why (Ray ends this process from C++)
        self.head_watch = watch_head(self, ray.get_runtime_context().gcs_address)
        self.refresh_total(force=True)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.log(
            f"connected to Ray {ray.__version__} at {self.address or 'a new local cluster'}: "
            f"{len(nodes)} node(s), {self.total.cpus:g} CPUs, {self.total.gpus:g} GPUs"
        )
        ray_connect.check_shared_store(ray, self.store.root.resolve(), self.address, nodes)

    def _mark(self, info: RunInfo, status: str, reason: str) -> None:
        """What ray_watch calls for each run in flight when the head is lost."""
        if self.mark is not None:
            self.mark(info, status, reason)

    def refresh_total(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.total_at < CAPACITY_EVERY:
            return
        res = self.ray.cluster_resources()
        self.total = Need(float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0)))
        self.total_at = time.monotonic()

    # -- the loop ----------------------------------------------------------------

    # -- the loop ----------------------------------------------------------------

    def busy(self) -> bool:
        return bool(self.inflight)

    def holds(self, run_id: str) -> bool:
        return run_id in self.inflight

    def signal_is_cancel(self) -> bool:
        # `queue rm` of a run still waiting for a place on the cluster finds the run held
        # by this worker and signals it: that is a cancel of the run, not a stop
        now = time.time()
        for f in self.inflight.values():
            flag = f.info.path / scheduler.CANCEL_FLAG
            with contextlib.suppress(OSError):
                if now - flag.stat().st_mtime < 5 and claims.holder_of(f.info.path) == f.holder:
                    return True
        return False

    def _used(self) -> Need:
        return Need(
            sum(f.need.cpus for f in self.inflight.values()),
            sum(f.need.gpus for f in self.inflight.values()),
        )

    def capacity(self) -> bool:
        self.refresh_total()
        # every run asks for some CPU: no need to read the queue this poll
        return not (self._used().cpus >= self.total.cpus and self.inflight)

    def place(self, info: RunInfo) -> Need | Wait | Refused:
        """Only what the cluster can start now is submitted: the rest stays queued."""
        try:
            need = run_need(info, self.total.gpus)
        except StoreError as exc:
            return Refused(str(exc))
        if need.cpus > self.total.cpus or need.gpus > self.total.gpus:
            return Refused(
                f"it asks for {need}; the Ray cluster has {self.total} in all "
                "(lower [train] gpus / cpus, or add nodes)"
            )
        used = self._used()
        if used.cpus + need.cpus > self.total.cpus or used.gpus + need.gpus > self.total.gpus:
            return WAIT  # the head of the queue waits for room; nothing overtakes it
        return need

    def task_command(self, info: RunInfo, need: Need) -> list[str]:
        cmd = [sys.executable, "-m", "mnist_tui", "train-run", str(info.path.resolve())]
        cmd += ["--device", "cuda" if need.gpus else "cpu"]
        if not need.gpus:
            cmd += ["--threads", str(need.threads)]
        if self.options.data_dir is not None:
            cmd += ["--data-dir", str(Path(self.options.data_dir).resolve())]
        return cmd

    def task_env(self, need: Need) -> dict[str, str]:
        """The driver's MNIST_TUI_* settings (data, cache), as a local slot would see them."""
        env = {
            k: v for k, v in os.environ.items() if k.startswith("MNIST_TUI_") and k not in NODE_ENV
        }
        if not need.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # Ray sets it for GPU tasks
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(need.threads)
        return env

    def launch(self, info: RunInfo, placement: Need, holder: claims.Holder) -> None:
        need = placement
        cmd = self.task_command(info, need)
        log_path = info.path / "log.txt"
        try:
            with log_path.open("ab") as log:
                log.write(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} submitted to Ray "
                    f"({self.address or 'local'}) by worker {self.me}, asking for {need}: "
                    f"{shlex.join(cmd)}\n".encode()
                )
        except OSError as exc:
            raise LaunchFailed(
                f"cannot write the log: {exc.strerror}", f"cannot write {log_path}: {exc.strerror}"
            ) from None
        try:
            ref = self.remote.options(
                num_cpus=need.cpus,
                num_gpus=need.gpus,
                max_retries=0,  # a retry would train the run twice; resume is the user's call
                name=f"{TASK_PREFIX} {info.experiment}/{info.id}",
            ).remote(
                str(info.path.resolve()),
                cmd,
                self.task_env(need),
                dataclasses.asdict(holder),
                self.me,
            )
        except Exception as exc:  # Ray rejects bad resource requests with ValueError
            raise LaunchFailed(
                f"not submitted: {first_line(exc)}",
                f"Ray did not take the task: {first_line(exc)}",
            ) from None
        self.inflight[info.id] = InFlight(info, ref, need, holder, time.time())
        self.log(f"submitted {info.experiment}/{info.id} to Ray ({need})")

    def poll_finished(self) -> list[Finished]:
        if not self.inflight:
            return []
        refs = [f.ref for f in self.inflight.values()]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        done = set(ready)
        return [self.finish(f) for f in list(self.inflight.values()) if f.ref in done]

    def cancel(self) -> None:
        for f in list(self.inflight.values()):
            self.check_cancel(f)

    def check_cancel(self, f: InFlight) -> None:
        """A cancelled run stops by itself; one that does not is cancelled by force."""
        if not (f.info.path / scheduler.CANCEL_FLAG).exists() or f.forced:
            return
        now = time.monotonic()
        if claims.holder_of(f.info.path) == f.holder:
            # still waiting for a place on the cluster: nothing trains yet, drop the task
            self.ray.cancel(f.ref, force=True)
            f.forced = True
            self.log(f"{f.info.experiment}/{f.info.id}: cancelled before Ray started it")
        elif f.cancel_seen is None:
            f.cancel_seen = now
            self.log(f"{f.info.experiment}/{f.info.id}: cancel asked; waiting for it to stop")
        elif now - f.cancel_seen >= CANCEL_GRACE:
            self.ray.cancel(f.ref, force=True)
            f.forced = True
            self.log(
                f"{f.info.experiment}/{f.info.id}: still going {CANCEL_GRACE:g} s after the "
                "cancel: its Ray task was cancelled by force"
            )

    def where(self, f: InFlight) -> tuple[str, bool | None]:
        """The node the run went to (as the run recorded it) and whether Ray says it lives."""
        fresh = self.store.read_run(f.info.experiment, f.info.id)
        s = fresh.summary if fresh else {}
        node, node_id = s.get("node"), s.get("node_id")
        if not isinstance(node_id, str):
            return "a node that never started it", None
        with contextlib.suppress(Exception):
            for n in self.ray.nodes():
                if n.get("NodeID") == node_id:
                    return f"node {node} ({node_id[:8]})", bool(n.get("Alive"))
        return f"node {node} ({node_id[:8]})", None

    def finish(self, f: InFlight) -> Finished:
        """How the task ended, from what Ray says of it (the worker marks the run)."""
        ray = self.ray
        exc_mod = ray.exceptions
        info = f.info
        del self.inflight[info.id]
        code: int | None = None
        open_status, reason = RunStatus.FAILED, ""
        try:
            result = ray.get(f.ref, timeout=30)
            code = int(result["code"])
            ended = f"exit code {code} on {result['node']}"
        except exc_mod.TaskCancelledError:
            open_status = RunStatus.KILLED
            if claims.holder_of(info.path) == f.holder:
                reason = "removed from the queue before Ray started it"
            else:
                reason = (
                    f"cancelled: it did not stop within {CANCEL_GRACE:g} s, so its Ray task "
                    "was cancelled by force"
                )
            ended = "ray task cancelled"
        except (
            exc_mod.WorkerCrashedError,
            exc_mod.NodeDiedError,
            exc_mod.LocalRayletDiedError,
            exc_mod.ObjectLostError,
            exc_mod.OwnerDiedError,
        ) as exc:
            node, alive = self.where(f)
            died = f"with its {node}" if alive is False else f"on {node}"
            if f.cancel_seen is not None:
                open_status, reason = RunStatus.KILLED, f"cancelled; its Ray task then died {died}"
            else:
                open_status = RunStatus.INTERRUPTED
                reason = (
                    f"its Ray task died {died} ({first_line(exc)}); continue it with: "
                    f"mnist-tui resume {info.id}"
                )
            ended = f"ray task died {died}"
        except exc_mod.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            reason = f"its Ray task failed: {type(cause).__name__}: {first_line(cause)}"
            ended = "ray task failed"
        except Exception as exc:  # anything else Ray raises: keep the run resumable
            open_status = RunStatus.INTERRUPTED
            reason = (
                f"its Ray task was lost ({type(exc).__name__}: {first_line(exc)}); "
                f"continue it with: mnist-tui resume {info.id}"
            )
            ended = "ray task lost"
        current = claims.holder_of(info.path)
        ours = current is None or current == f.holder or current.purpose == "train"
        release = (current or f.holder) if ours else None
        return Finished(info, ended, code, release, open_status, reason)

    def reconcile(self, mark: Mark) -> None:
        """Runs left running by a dead driver, or on a node that died, become interrupted."""
        here = socket.gethostname()
        try:
            nodes = {n["NodeID"]: n for n in self.ray.nodes()}
        except Exception:
            return
        check = self.ray.remote(remote_alive)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for info in self.store.runs():
            if info.stored_status != RunStatus.RUNNING:
                continue
            holder = claims.holder_of(info.path)
            node_id = info.summary.get("node_id")
            if holder is None or holder.host == here or not isinstance(node_id, str):
                continue
            node = nodes.get(node_id)
            gone = node is None or not node.get("Alive")
            if not gone:
                try:
                    ref = check.options(
                        num_cpus=0,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                    ).remote(holder.pid, holder.start_time)
                    gone = not self.ray.get(ref, timeout=30)
                except Exception:
                    continue  # cannot tell: leave it
            if gone:
                why = "its node is gone" if node is None or not node.get("Alive") else "it vanished"
                claims.release(info.path, holder, ended=f"holder vanished ({why})")
                mark(
                    info,
                    RunStatus.INTERRUPTED,
                    f"its process ({holder.describe()}) ended without finishing: {why}; "
                    f"continue it with: mnist-tui resume {info.id}",
                )

    def stop_all(self, reap: Callable[[], None]) -> None:
        """On SIGTERM or exit: ask each run to stop (it ends killed, resumable), then wait."""
        try:
            for f in self.inflight.values():
                with contextlib.suppress(OSError):
                    (f.info.path / scheduler.CANCEL_FLAG).write_text(
                        str(time.time()), encoding="utf-8"
                    )
            deadline = time.monotonic() + STOP_WAIT
            while self.inflight and time.monotonic() < deadline:
                reap()
                time.sleep(0.3)
            for f in self.inflight.values():
                with contextlib.suppress(Exception):
                    self.ray.cancel(f.ref, force=True)
                f.forced = True
            deadline = time.monotonic() + 10
            while self.inflight and time.monotonic() < deadline:
                reap()
                time.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                if self.ray.is_initialized():
                    self.ray.shutdown()


def _check() -> None:
    import_ray()  # a missing Ray is said where the option is given, not in a worker's log


BACKEND = Backend("ray", RayLauncher, _check, takes_address=True)
