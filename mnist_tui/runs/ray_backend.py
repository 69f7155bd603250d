"""The Ray backend: the same worker, with each claimed run a Ray task that Ray places.

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

Ray is an optional extra (`pip install -e ".[ray]"`); only this module imports it, and
only when a Ray worker starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_tui.errors import MnistTuiError, StoreError
from mnist_tui.runs import claim as claims
from mnist_tui.runs import scheduler
from mnist_tui.runs.store import RunInfo, RunStore
from mnist_tui.runs.worker import (
    Worker,
    WorkerOptions,
    _die_with_parent,
    failure_reason,
)

CANCEL_GRACE = float(os.environ.get("MNIST_TUI_RAY_CANCEL_GRACE", "10"))
CONNECT_TIMEOUT = 120.0
PROBE_TIMEOUT = 60.0
PROBE_DIR = ".ray-probe"
CAPACITY_EVERY = 5.0  # seconds between looks at the cluster's resources (nodes come and go)
STOP_WAIT = 30.0
# how the runs of this store are told apart from other tasks on a shared cluster
TASK_PREFIX = "mnist-tui"
NODE_ENV = ("MNIST_TUI_SLOT", "MNIST_TUI_NODE", "MNIST_TUI_NODE_ID")
INSTALL = 'pip install -e ".[ray]"'


class RayMissing(MnistTuiError):
    exit_code = 2


class StoreNotShared(MnistTuiError):
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
    pin = info.summary.get("pin_device")
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


# ----------------------------------------------------------------------------- tasks
# These two functions run on the cluster's nodes, in Ray worker processes.


def train_task(
    run_dir: str, cmd: list[str], env: dict[str, str], holder: dict[str, Any], worker: str
) -> dict[str, Any]:
    """Train one run on this node: what Worker.start does, in a Ray task."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    host = socket.gethostname()
    path = Path(run_dir)
    cmd = [sys.executable, *cmd[1:]]  # this node's Python, which has Ray and mnist-tui
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    child_env = {
        **os.environ,
        **env,
        "PYTHONUNBUFFERED": "1",
        "MNIST_TUI_SLOT": f"ray:{host}",
        "MNIST_TUI_NODE": host,
        "MNIST_TUI_NODE_ID": node_id,
    }
    where = f"ray node {host} ({node_id[:8]}" + (f", GPU {','.join(gpu_ids)})" if gpu_ids else ")")
    with (path / "log.txt").open("ab") as log:
        # as Worker.start: the command is in the log before the child exists
        log.write(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} starting on {where} "
            f"(ray task pid {os.getpid()}, worker {worker}): {shlex.join(cmd)}\n".encode()
        )
        log.flush()
        child = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # a cancelled (killed) task takes its run with it
        )
    # the claim now names the process that trains, on this node
    mine = dataclasses.replace(claims.Holder(**holder), host=host)
    handed = claims.hand_over(path, mine, child.pid, "train", shlex.join(cmd))
    code = child.wait()
    return {
        "code": code,
        "node": host,
        "node_id": node_id,
        "pid": child.pid,
        "pid_start": handed.start_time,
    }


def probe_task(root: str, token: str) -> dict[str, Any]:
    """Whether this node sees the store as the driver does: read its token, write ours."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    out: dict[str, Any] = {"host": socket.gethostname(), "node_id": node_id}
    probe = Path(root) / PROBE_DIR
    try:
        seen = (probe / f"{token}.driver").read_text(encoding="utf-8")
        out["read"] = "ok" if seen == token else f"holds {seen[:20]!r}, not the token"
    except FileNotFoundError:
        out["read"] = "missing" if Path(root).is_dir() else "no store"
    except OSError as exc:
        out["read"] = f"unreadable ({exc.strerror})"
    try:
        (probe / f"{token}.{node_id}").write_text(f"{token} {node_id}", encoding="utf-8")
        out["write"] = "ok"
    except OSError as exc:
        out["write"] = exc.strerror or str(exc)
    return out


def remote_alive(pid: int, start_time: int | None) -> bool:
    """On a given node: whether this exact process still runs there."""
    from mnist_tui.runs.io import pid_alive

    return pid_alive(pid, start_time)


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


def _unreachable(address: str) -> str | None:
    """Why nothing answers at HOST:PORT (None: something does); Ray itself would retry
    for minutes inside C++ code that no signal interrupts."""
    if "://" in address or address == "auto":
        return None  # Ray client and auto-detection: Ray's own checks
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"'{address}' is not HOST:PORT"
    from mnist_tui.runs.ray_probe import probe

    return probe(host.strip("[]"), int(port))  # nothing listens, or not Ray: what answered


def _watchdog(seconds: float, message: str) -> threading.Timer:
    """Exit with `message` if still waiting after `seconds` (ray.init can wait forever,
    e.g. for a raylet registered under another address of this machine)."""

    def expire() -> None:
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        os._exit(2)  # the lock is an flock: it goes with the process

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _has_token() -> bool:
    """Whether this user has a Ray authentication token (Ray's own places for one)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


def _is_loopback(address: str | None) -> bool:
    host = (address or "").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


class RayWorker(Worker):
    """The worker loop with Ray tasks in place of local child processes."""

    def __init__(
        self,
        store: RunStore,
        options: WorkerOptions,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.ray = import_ray()  # before anything else: a missing Ray is a one-line error
        self.address = options.address
        where = options.address or "local"
        super().__init__(store, dataclasses.replace(options, devices=(f"ray:{where}",)), log)
        self.inflight: dict[str, InFlight] = {}
        self.total = Need(0.0, 0.0)
        self.total_at = -math.inf
        self.remote: Any = None
        self.me = f"pid {os.getpid()} on {socket.gethostname()}"

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a Ray cluster here"
        return f"runs go to {where}, where Ray places each"

    # -- connecting --------------------------------------------------------------

    def prepare(self) -> None:
        ray = self.ray
        if self.address is None or _is_loopback(self.address):
            # a cluster of this one machine: keep Ray on the loopback interface (without
            # this Ray swaps 127.0.0.1 for the machine's address and listens on it)
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if self.address is not None and "RAY_AUTH_MODE" not in os.environ and _has_token():
            # once a token exists, `ray start` turns token auth on, but a driver that
            # connects sends the token only in token mode (a cluster without auth
            # accepts it too)
            os.environ["RAY_AUTH_MODE"] = "token"
            with contextlib.suppress(Exception):  # Ray reads its config once, at import
                import importlib

                importlib.import_module("ray._raylet").Config.initialize("")
        if self.address is not None and (why := _unreachable(self.address)):
            raise MnistTuiError(
                f"no Ray cluster answers at {self.address} ({why}); start one with "
                "`ray start --head --port 6379` there (docs/scaling.md), or leave out "
                "--address to start one on this machine"
            )
        timer = _watchdog(
            CONNECT_TIMEOUT,
            f"connecting to the Ray cluster at {self.address or '(local)'} did not finish "
            f"within {CONNECT_TIMEOUT:g} s; a cluster started on 127.0.0.1 needs "
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 on both sides (docs/scaling.md)",
        )
        try:
            if self.address is None:
                ray.init(
                    address="local",
                    include_dashboard=False,
                    logging_level="ERROR",
                    log_to_driver=False,
                    _node_ip_address="127.0.0.1",
                )
            else:
                ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            hint = (
                ""
                if self.address is None
                else (
                    " (a cluster with token auth also needs its token: RAY_AUTH_TOKEN, or "
                    "~/.ray/auth_token)"
                )
            )
            raise MnistTuiError(f"cannot connect to {where}: {_first_line(exc)}{hint}") from None
        finally:
            timer.cancel()
        # ray.init takes SIGTERM for itself; `worker stop` must still stop us cleanly
        signal.signal(signal.SIGTERM, self._on_term)
        self.remote = ray.remote(train_task)
        from mnist_tui.runs.ray_watch import watch_head

        # a head that dies mid-run: its runs say why (Ray ends this process from C++)
        self.head_watch = watch_head(self, ray.get_runtime_context().gcs_address)
        self.refresh_total(force=True)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.log(
            f"connected to Ray {ray.__version__} at {self.address or 'a new local cluster'}: "
            f"{len(nodes)} node(s), {self.total.cpus:g} CPUs, {self.total.gpus:g} GPUs"
        )
        self.check_shared_store(nodes)

    def check_shared_store(self, nodes: list[dict[str, Any]]) -> None:
        """Refuse a store some node cannot see: every node must read and write it."""
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        root = self.store.root.resolve()
        probe = root / PROBE_DIR
        token = secrets.token_hex(8)
        probe.mkdir(parents=True, exist_ok=True)
        (probe / f"{token}.driver").write_text(token, encoding="utf-8")
        task = ray.remote(probe_task)
        refs = {
            n["NodeID"]: task.options(
                num_cpus=0,
                max_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote(str(root), token)
            for n in nodes
        }
        hosts = {
            n["NodeID"]: n.get("NodeManagerHostname") or n.get("NodeManagerAddress") for n in nodes
        }
        _, late = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT)
        problems = []
        try:
            for node_id, ref in refs.items():
                name = f"node {hosts[node_id]} ({node_id[:8]})"
                if ref in late:
                    ray.cancel(ref, force=True)
                    problems.append(f"{name} did not answer within {PROBE_TIMEOUT:g} s")
                    continue
                try:
                    found = ray.get(ref)
                except Exception as exc:
                    problems.append(f"{name}: the probe failed: {_first_line(exc)}")
                    continue
                read, wrote = found["read"], found["write"]
                seen_here = probe / f"{token}.{node_id}"
                try:
                    back = seen_here.read_text(encoding="utf-8") == f"{token} {node_id}"
                except OSError:
                    back = False
                if read == "ok" and wrote == "ok" and back:
                    continue
                what = {
                    "missing": f"{root} is there but without the token this worker just wrote",
                    "no store": f"there is no {root}",
                }.get(read, f"the token file {read}" if read != "ok" else "it read the token")
                if wrote != "ok":
                    what += f"; writing a file into {PROBE_DIR} there failed ({wrote})"
                elif not back:
                    what += "; what it wrote there does not appear here"
                problems.append(f"on {name} {what}")
        finally:
            for f in probe.glob(f"{token}.*"):
                with contextlib.suppress(OSError):
                    f.unlink()
            with contextlib.suppress(OSError):
                probe.rmdir()  # unless another worker's probe is in it
        if problems:
            raise StoreNotShared(
                f"the run store {root} is not shared with the Ray cluster at "
                f"{self.address or 'this machine'}: " + "; ".join(problems) + ". Every node "
                "must see the store at the same path (a shared file system mounted there); "
                "pass it with --runs-dir (docs/scaling.md)"
            )

    def refresh_total(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.total_at < CAPACITY_EVERY:
            return
        res = self.ray.cluster_resources()
        self.total = Need(float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0)))
        self.total_at = time.monotonic()

    # -- the loop ----------------------------------------------------------------

    def busy(self) -> bool:
        return bool(self.inflight)

    def _on_term(self, *_: Any) -> None:
        # `queue rm` of a run still waiting for a place on the cluster finds the run held
        # by this worker and signals it: that is a cancel of the run, not a stop
        now = time.time()
        for f in self.inflight.values():
            flag = f.info.path / scheduler.CANCEL_FLAG
            with contextlib.suppress(OSError):
                if now - flag.stat().st_mtime < 5 and claims.holder_of(f.info.path) == f.holder:
                    return
        self.stopping = True

    def fill_slots(self) -> int:
        self.refresh_total()
        used = Need(
            sum(f.need.cpus for f in self.inflight.values()),
            sum(f.need.gpus for f in self.inflight.values()),
        )
        if used.cpus >= self.total.cpus and self.inflight:
            return 0  # every run asks for some CPU: no need to read the queue this poll
        started = 0
        for info in scheduler.queue_order(self.store):
            if info.id in self.inflight:
                continue
            try:
                need = run_need(info, self.total.gpus)
            except StoreError as exc:
                self._mark(info, "failed", str(exc))
                continue
            if need.cpus > self.total.cpus or need.gpus > self.total.gpus:
                self._mark(
                    info,
                    "failed",
                    f"it asks for {need}; the Ray cluster has {self.total} in all "
                    "(lower [train] gpus / cpus, or add nodes)",
                )
                continue
            if used.cpus + need.cpus > self.total.cpus or used.gpus + need.gpus > self.total.gpus:
                break  # the head of the queue waits for room; nothing overtakes it
            if self.submit(info, need):
                started += 1
                used = Need(used.cpus + need.cpus, used.gpus + need.gpus)
        return started

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

    def submit(self, info: RunInfo, need: Need) -> bool:
        try:
            holder = claims.claim(info.path, "worker")
        except claims.ClaimedError:
            return False  # another worker or a console took it first
        fresh = self.store.read_run(info.experiment, info.id)
        if fresh is None or fresh.summary.get("status") != "queued":
            claims.release(info.path, holder, ended="no longer queued")
            return False
        cmd = self.task_command(fresh, need)
        log_path = fresh.path / "log.txt"
        try:
            with log_path.open("ab") as log:
                log.write(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} submitted to Ray "
                    f"({self.address or 'local'}) by worker {self.me}, asking for {need}: "
                    f"{shlex.join(cmd)}\n".encode()
                )
        except OSError as exc:
            claims.release(info.path, holder, ended=f"cannot write the log: {exc.strerror}")
            self._mark(fresh, "failed", f"cannot write {log_path}: {exc.strerror}")
            return False
        try:
            ref = self.remote.options(
                num_cpus=need.cpus,
                num_gpus=need.gpus,
                max_retries=0,  # a retry would train the run twice; resume is the user's call
                name=f"{TASK_PREFIX} {fresh.experiment}/{fresh.id}",
            ).remote(
                str(fresh.path.resolve()),
                cmd,
                self.task_env(need),
                dataclasses.asdict(holder),
                self.me,
            )
        except Exception as exc:  # Ray rejects bad resource requests with ValueError
            claims.release(info.path, holder, ended=f"not submitted: {_first_line(exc)}")
            self._mark(fresh, "failed", f"Ray did not take the task: {_first_line(exc)}")
            return False
        self.inflight[fresh.id] = InFlight(fresh, ref, need, holder, time.time())
        self.log(f"submitted {fresh.experiment}/{fresh.id} to Ray ({need})")
        return True

    def reap(self) -> None:
        if not self.inflight:
            return
        refs = [f.ref for f in self.inflight.values()]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        done = set(ready)
        for f in list(self.inflight.values()):
            if f.ref in done:
                self.finish(f)
            else:
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

    def finish(self, f: InFlight) -> None:
        ray = self.ray
        exc_mod = ray.exceptions
        info = f.info
        code: int | None = None
        open_status, reason = "failed", ""
        try:
            result = ray.get(f.ref, timeout=30)
            code = int(result["code"])
            ended = f"exit code {code} on {result['node']}"
        except exc_mod.TaskCancelledError:
            open_status = "killed"
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
                open_status, reason = "killed", f"cancelled; its Ray task then died {died}"
            else:
                open_status = "interrupted"
                reason = (
                    f"its Ray task died {died} ({_first_line(exc)}); continue it with: "
                    f"mnist-tui resume {info.id}"
                )
            ended = f"ray task died {died}"
        except exc_mod.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            reason = f"its Ray task failed: {type(cause).__name__}: {_first_line(cause)}"
            ended = "ray task failed"
        except Exception as exc:  # anything else Ray raises: keep the run resumable
            open_status = "interrupted"
            reason = (
                f"its Ray task was lost ({type(exc).__name__}: {_first_line(exc)}); "
                f"continue it with: mnist-tui resume {info.id}"
            )
            ended = "ray task lost"
        fresh = self.store.read_run(info.experiment, info.id)
        status = fresh.summary.get("status") if fresh else None
        if fresh is not None and status in ("running", "queued"):
            if code is not None:
                reason = failure_reason(info.path / "log.txt", code)
                open_status = "failed" if code != 0 else "interrupted"
            self._mark(fresh, open_status, reason)
            status = open_status
        current = claims.holder_of(info.path)
        if current is None or current == f.holder or current.purpose == "train":
            claims.release(info.path, current or f.holder, ended=f"{status} ({ended})")
        with contextlib.suppress(FileNotFoundError):
            (info.path / scheduler.CANCEL_FLAG).unlink()
        self.log(f"{info.experiment}/{info.id} ended {status} ({ended})")
        del self.inflight[info.id]

    def reconcile(self) -> None:
        """Runs left running by a dead driver, or on a node that died, become interrupted."""
        super().reconcile()  # runs whose trainer was on this host
        here = socket.gethostname()
        try:
            nodes = {n["NodeID"]: n for n in self.ray.nodes()}
        except Exception:
            return
        check = self.ray.remote(remote_alive)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for info in self.store.runs():
            if info.summary.get("status") != "running":
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
                self._mark(
                    info,
                    "interrupted",
                    f"its process ({holder.describe()}) ended without finishing: {why}; "
                    f"continue it with: mnist-tui resume {info.id}",
                )

    def stop_children(self) -> None:
        """On SIGTERM or exit: ask each run to stop (it ends killed, resumable), then wait."""
        try:
            for f in self.inflight.values():
                with contextlib.suppress(OSError):
                    (f.info.path / scheduler.CANCEL_FLAG).write_text(
                        str(time.time()), encoding="utf-8"
                    )
            deadline = time.monotonic() + STOP_WAIT
            while self.inflight and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.3)
            for f in self.inflight.values():
                with contextlib.suppress(Exception):
                    self.ray.cancel(f.ref, force=True)
                f.forced = True
            deadline = time.monotonic() + 10
            while self.inflight and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                if self.ray.is_initialized():
                    self.ray.shutdown()
