"""The Ray backend, driven as a user drives it: a local Ray cluster started here, CLI processes.

One cluster (2 CPUs, on 127.0.0.1) serves the module; it is stopped by killing its own
session's processes, so nothing else on the machine named "ray" is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_tui.errors import StoreError
from mnist_tui.runs import claim as claims
from mnist_tui.runs import scheduler
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.store import RunStore
from mnist_tui.runs.worker import stop_worker, worker_info

from .conftest import EXPERIMENTS

pytest.importorskip("ray")

TINY = ["-S", "data.subset=1000", "-S", "data.test_subset=500", "--epochs", "1"]
# long enough (about 10 s of training on one thread) to be caught running
LONG = ["-S", "data.subset=10000", "-S", "data.test_subset=500", "--epochs", "3"]
# the run cancelled mid-training: far longer than the test waits, since it ends at the
# cancel (a 3-epoch logreg can finish before the cancel arrives on a quiet machine)
LONGER = ["-S", "data.subset=10000", "-S", "data.test_subset=500", "--epochs", "1000"]
START_TIMEOUT = 120.0
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray on 127.0.0.1 only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session(pid: int) -> list[int]:
    """Processes whose session is `pid`'s (what `ray start --block` started)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 3 and int(fields[3]) == pid:  # state, ppid, pgrp, session
            out.append(int(proc.name))
    return out


@pytest.fixture(scope="module")
def cluster_env(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = tmp_path_factory.getbasetemp() / "scheduler-cache"  # decoded data, shared
    return {
        **os.environ,
        **LOOPBACK,
        "MNIST_TUI_DATA": str(real_data),
        "MNIST_TUI_CACHE": str(cache),
        "MNIST_TUI_EXPERIMENTS": str(EXPERIMENTS),
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "COLUMNS": "400",  # one-line errors stay on one line
    }


@pytest.fixture(scope="module")
def cluster(cluster_env: dict[str, str]) -> Iterator[str]:
    """`ray start --head` on 127.0.0.1 with 2 CPUs; yields its address."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed next to this Python")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's socket paths must fit
    log = Path(temp) / "start.log"
    with log.open("wb") as out:
        head = subprocess.Popen(
            [str(ray_bin), "start", "--head", "--port", str(port),
             "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--num-gpus", "0",
             "--include-dashboard", "false", "--disable-usage-stats",
             "--temp-dir", temp, "--block"],
            env=cluster_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while b"Ray runtime started" not in log.read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ray start failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield address
    finally:
        for pid in _session(head.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "store")
    yield s
    live = worker_info(s)
    if live is not None:
        try:
            stop_worker(s, timeout=60)
        except Exception:
            os.kill(live.pid, signal.SIGKILL)


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnist_tui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def fresh(store: RunStore, info: RunInfo) -> RunInfo:
    got = store.read_run(info.experiment, info.id)
    assert got is not None
    return got


def training(store: RunStore, info: RunInfo) -> bool:
    """Running, and the claim is held by the train-run process (not the driver)."""
    holder = claims.holder_of(info.path)
    return fresh(store, info).summary.get("status") == "running" and (
        holder is not None and holder.purpose == "train"
    )


def ended(store: RunStore, info: RunInfo) -> bool:
    s = fresh(store, info).summary.get("status")
    return s not in ("queued", "running") and not (info.path / claims.CLAIM).exists()


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])


@pytest.mark.realdata
def test_ray_worker_trains_queued_runs_cancels_one_and_loses_one_task(
    cluster: str, cluster_env: dict[str, str], store: RunStore
) -> None:
    env = cluster_env
    root = str(store.root)
    # the one cancelled, and the one whose task is lost: a CNN, slow enough per epoch to be
    # caught training, and resumed to its 3 epochs below
    for name, long in (("logreg", LONGER), ("lenet5", LONG)):
        out = cli(env, "queue", "add", name, *long, "--no-start-worker", "--runs-dir", root)
        assert out.returncode == 0, out.stderr
    out = cli(env, "queue", "add", "logreg", "fnn1", "logreg", *TINY, "--no-start-worker",
              "--runs-dir", root)  # fmt: skip
    assert out.returncode == 0, out.stderr
    cancelled, lost, *tiny = scheduler.queue_order(store)
    log = (store.root.parent / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "mnist_tui", "worker", "--backend", "ray", "--address", cluster,
         "--idle-exit", "3", "--runs-dir", root],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: training(store, lost) and training(store, cancelled), 150,
                 "the two long runs to train on the cluster")  # fmt: skip
        # the Ray worker process running the task dies (as with its node): the run is
        # left interrupted with the reason; the trainer dies with it
        task_pid = _ppid(claims.holder_of(lost.path).pid)  # type: ignore[union-attr]
        assert "ray" in Path(f"/proc/{task_pid}/cmdline").read_text().lower()
        os.kill(task_pid, signal.SIGKILL)
        # the queue, from the CLI, while runs train: each running run names its node
        ls = cli(env, "queue", "ls", "--json", "--runs-dir", root)
        rows = {r["run"]: r for r in json.loads(ls.stdout)["runs"]}
        assert rows[cancelled.id]["node"] == socket.gethostname(), rows
        assert rows[cancelled.id]["device"].startswith("cpu")
        # cancel mid-run: train-run sees the flag the node shares and ends as killed
        rm = cli(env, "queue", "rm", cancelled.id, "--runs-dir", root)
        assert rm.returncode == 0 and "asked to stop" in rm.stdout, rm.stdout + rm.stderr
        wait_for(lambda: all(ended(store, r) for r in (cancelled, lost, *tiny)), 240,
                 "every run to end")  # fmt: skip
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    wlog = (store.root.parent / "worker.log").read_text()
    assert "connected to Ray" in wlog, wlog
    gone = fresh(store, cancelled)
    assert gone.summary["status"] == "killed", (gone.summary, wlog)
    died = fresh(store, lost)
    assert died.summary["status"] == "interrupted", (died.summary, wlog)
    assert (
        "Ray task died" in died.summary["reason"] and f"resume {lost.id}" in died.summary["reason"]
    )
    for info in map(lambda r: fresh(store, r), tiny):
        assert info.status == "completed", (info.summary, wlog)
        assert len(info.metrics()) == 1 and info.final("test_acc") is not None
        env_json = json.loads((info.path / "env.json").read_text())
        assert env_json["node"] == socket.gethostname()
        assert len(env_json["node_id"]) == 56 and env_json["slot"].startswith("ray:")
        assert info.summary["node_id"] == env_json["node_id"]
        text = (info.path / "log.txt").read_text()
        assert text.count("submitted to Ray") == 1 and text.count(" starting on ray node ") == 1
        (attempt,) = claims.history(info.path)
        assert attempt["purpose"] == "train" and attempt["ended"].startswith("completed")
    # the lost run continues where it stopped
    out = cli(env, "resume", lost.id, "-q", "--runs-dir", root, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    done = fresh(store, lost)
    assert done.status == "completed" and [m["epoch"] for m in done.metrics()] == [1, 2, 3]


@pytest.mark.realdata
def test_ray_worker_refuses_a_store_the_cluster_cannot_see(
    cluster: str, cluster_env: dict[str, str], tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to give the worker a private mount")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not allowed here: {probe.stderr.decode().strip()}")
    store = tmp_path / "private-store"
    store.mkdir()
    # the worker's store is a tmpfs that exists only in the worker's own mount namespace:
    # the cluster's nodes see the empty directory underneath
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(store),
         sys.executable, "-m", "mnist_tui", "worker", "--backend", "ray", "--address", cluster,
         "--idle-exit", "1", "--runs-dir", str(store)],
        env=cluster_env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    message = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"the run store {store} is not shared with the Ray cluster at {cluster}" in message
    assert "without the token this worker just wrote" in message
    assert "Traceback" not in out.stderr
    assert list(store.iterdir()) == []  # nothing was written where the cluster looked


def test_backend_ray_without_ray_says_how_to_install(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    for args in (["worker", "--backend", "ray"], ["queue", "add", "logreg", "--backend", "ray"]):
        code = (
            "import sys; sys.modules['ray'] = None\n"
            "from mnist_tui.cli import main\n"
            f"sys.argv = ['mnist-tui', *{args!r}, '--runs-dir', {runs!r}]\n"
            "main()\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "COLUMNS": "400"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 2, out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and 'pip install -e ".[ray]"' in lines[0], out.stderr
    assert not (tmp_path / "runs").exists() or not RunStore(tmp_path / "runs").runs()


def test_a_runs_resources_come_from_its_spec(tmp_path: Path) -> None:
    from mnist_tui.config.loading import load_experiment
    from mnist_tui.runs.ray_launcher import Need, run_need

    store = RunStore(tmp_path / "runs")

    def queued(*overrides: str, device: str | None = None) -> RunInfo:
        spec = load_experiment("logreg", EXPERIMENTS, list(overrides))
        return scheduler.enqueue(store, spec, scheduler.QueueRequest(overrides, device=device))

    assert run_need(queued("train.gpus=0.25", "train.cpus=2"), 1.0) == Need(2.0, 0.25)
    assert run_need(queued(), 4.0) == Need(1.0, 1.0)  # unset: a whole GPU where there are any
    assert run_need(queued(), 0.0) == Need(1.0, 0.0)
    assert run_need(queued("train.gpus=1", device="cpu"), 4.0).gpus == 0.0
    with pytest.raises(StoreError, match="a fraction below 1 or a whole number"):
        run_need(queued("train.gpus=1.5"), 4.0)
    with pytest.raises(StoreError, match="Ray picks the GPU"):
        run_need(queued(device="1"), 4.0)
    assert Need(0.5, 0.0).threads == 1 and Need(2.5, 0.0).threads == 3
