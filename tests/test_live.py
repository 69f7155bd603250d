"""Watching a run live: step reports (steps.jsonl), system figures, the devices view with a
fake NVML, memory-aware admission, `logs --steps`, and the console's devices strip."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mnist_tui.cli import main
from mnist_tui.config.loading import load_experiment
from mnist_tui.runs import admission, nvml
from mnist_tui.runs.admission import DeviceRoom, Need, decide
from mnist_tui.runs.devices import device_status
from mnist_tui.runs.io import process_start_time
from mnist_tui.runs.steps import read_steps, step_row
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.runner import resume_run, run_experiment
from mnist_tui.train.trainer import MAX_STEP_REPORTS, report_interval
from mnist_tui.views import pictures
from mnist_tui.views.devices import devices_table, strip_lines
from mnist_tui.views.live import STEP_PREFIX, run_curves_live

from .conftest import EXPERIMENTS

GIB = 1 << 30
FNN = ["data.dataset=mnist", "train.batch_size=16"]


def _spec(*overrides: str) -> Any:
    return load_experiment("fnn1", EXPERIMENTS, [*FNN, *overrides])


# ----------------------------------------------------------------------------- steps


def test_step_reports_count_fractions_and_match_the_epoch(fake_data: Path, tmp_path: Path) -> None:
    spec = _spec("train.epochs=2")
    run = run_experiment(spec, RunStore(tmp_path), device="cpu", data_dir=fake_data, download=False)
    assert run.status == "completed"
    steps = read_steps(run.path)
    per_epoch = {e: [r for r in steps if r["epoch"] == e] for e in (1, 2)}
    n_steps = per_epoch[1][-1]["steps"]
    every = report_interval(n_steps, 2)
    assert len(per_epoch[1]) == len(per_epoch[2]) == math.ceil(n_steps / every)
    xs = [r["x"] for r in steps]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert 0 < xs[0] < 1 and per_epoch[1][-1]["x"] == 1.0 and xs[-1] == 2.0
    # the reports cover each epoch's images once: weighted, they are the epoch's figures
    for epoch, row in zip((1, 2), run.metrics(), strict=True):
        reports = per_epoch[epoch]
        images = sum(r["images"] for r in reports)
        # every training image once: no step counted twice, none left out
        assert images == pytest.approx(row["images_per_s"] * row["train_seconds"], abs=0.5)
        loss = sum(r["train_loss"] * r["images"] for r in reports) / images
        acc = sum(r["train_acc"] * r["images"] for r in reports) / images
        assert loss == pytest.approx(row["train_loss"], rel=1e-3)
        assert acc == pytest.approx(row["train_acc"], abs=1e-4)
        assert all(r["time"] > 1e9 for r in reports)


def test_step_reports_stay_bounded() -> None:
    # a 100-epoch run of 938 steps an epoch (MNIST at batch 64)
    every = report_interval(938, 100)
    per_epoch = math.ceil(938 / every)
    assert 45 <= per_epoch <= 50
    row = step_row(100, 938, 938, 0.0123456789, 0.987654321, 64, time.time())
    size = 100 * per_epoch * (len(json.dumps(row, sort_keys=True)) + 1)
    assert size < 1_000_000
    # longer runs get fewer reports an epoch, never more than the cap in all
    assert math.ceil(938 / report_interval(938, 1000)) * 1000 <= MAX_STEP_REPORTS * 1.1
    assert report_interval(938, 3, per_epoch=0) == 0  # off


def test_no_step_reports_when_off(fake_data: Path, tmp_path: Path) -> None:
    run = run_experiment(
        _spec("train.epochs=1"),
        RunStore(tmp_path),
        device="cpu",
        data_dir=fake_data,
        download=False,
        step_reports=0,
    )
    assert run.status == "completed" and read_steps(run.path) == []


def test_resume_continues_the_step_reports(fake_data: Path, tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    calls = iter(range(10_000))
    # should_stop is asked at each epoch's last step and after each epoch: the third ask
    # is epoch 2's last step, so epoch 2's reports are written but the epoch is not kept
    run = run_experiment(
        _spec("train.epochs=3"),
        store,
        device="cpu",
        data_dir=fake_data,
        download=False,
        should_stop=lambda: next(calls) >= 2,
    )
    assert run.status == "killed" and run.summary["epochs_done"] == 1
    before = read_steps(run.path)
    assert {r["epoch"] for r in before} == {1, 2}
    done = resume_run(store.resolve(run.id), store, device="cpu", data_dir=fake_data)
    assert done.status == "completed"
    after = read_steps(done.path)
    assert [r for r in after if r["epoch"] == 1] == [r for r in before if r["epoch"] == 1]
    counts = {e: sum(1 for r in after if r["epoch"] == e) for e in (1, 2, 3)}
    assert counts[1] == counts[2] == counts[3]  # epoch 2's partial reports were not doubled
    xs = [r["x"] for r in after]
    assert xs == sorted(xs) and len(set(xs)) == len(xs) and xs[-1] == 3.0


def test_system_figures_present_and_plausible(fake_data: Path, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    run = run_experiment(
        _spec("train.epochs=1"), RunStore(tmp_path), device="cpu", data_dir=fake_data
    )
    system = run.summary["system"]
    total_mb = psutil.virtual_memory().total / (1 << 20)
    rss_mb = psutil.Process().memory_info().rss / (1 << 20)
    # the peak is this process's (training ran in it): at least what it holds now
    assert rss_mb * 0.9 <= system["host_mem_peak_mb"] < total_mb
    assert 0 <= system["cpu_percent_mean"] <= 100 * (os.cpu_count() or 1) * 1.5
    assert system["samples"] >= 2
    assert "device_mem_peak_mb" not in system  # a CPU run has no device memory
    shown = main_out(["show", run.id, "--runs-dir", str(tmp_path)])
    assert "host memory peak" in shown


def main_out(args: list[str]) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        main(args)
    return buf.getvalue()


def test_step_curves_sit_under_the_epoch_curves() -> None:
    rows: list[dict[str, Any]] = []  # a first epoch under way: no epoch yet
    steps = [step_row(1, s, 100, 2.3 - s / 100, s / 120, 16, 0.0) for s in range(2, 52, 2)]
    loss, acc = run_curves_live(rows, steps, "fnn1")
    assert not loss.empty and loss.series[0].label == "train (steps)"
    assert loss.series[0].xs[0] == pytest.approx(0.02) and max(loss.series[0].xs) <= 0.5
    assert acc.series[0].ys[-1] == pytest.approx(100 * 50 / 120, rel=1e-3)  # percent
    # a first epoch's axis reads in fractions of an epoch, not a lone "0"
    assert pictures.epoch_ticks(0.02, 0.5, 40) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert pictures.epoch_ticks(1, 12, 40) == [5.0, 10.0]  # whole epochs, as before
    drawn = pictures.plot(loss, width=40, height=12)
    assert "0.20" in drawn and "no epochs yet" not in drawn


def test_logs_hides_step_lines_unless_asked(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    spec = _spec("train.epochs=1")
    handle = store.create(spec.name, spec.to_toml(), seed=0)
    handle.update(status="completed")
    (handle.path / "log.txt").write_text(
        "starting on cpu\n"
        f"{STEP_PREFIX}  0.50/1  (5/10)  train loss 1.0000  acc 50.00%\n"
        "epoch   1/1  train 0.5000 80.00%  test 0.5 80.00%\n"
        "fnn1/x completed\n"
    )
    plain = main_out(["logs", handle.id, "--runs-dir", str(tmp_path)])
    assert "epoch   1/1" in plain and "step" not in plain
    assert "0.50/1" in main_out(["logs", handle.id, "--steps", "--runs-dir", str(tmp_path)])


# ----------------------------------------------------------------------------- fake NVML


@dataclass
class FakeGpu:
    name: str
    total: int
    used: int
    util: int
    procs: dict[int, int]


def fake_pynvml(gpus: list[FakeGpu]) -> SimpleNamespace:
    """What `pynvml` answers, for two GPUs, without a driver."""

    def mem(h: int) -> SimpleNamespace:
        g = gpus[h]
        return SimpleNamespace(total=g.total, used=g.used, free=g.total - g.used)

    return SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=mem,
        nvmlDeviceGetName=lambda h: gpus[h].name,
        nvmlDeviceGetUUID=lambda h: f"GPU-{h:08d}",
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=gpus[h].util, memory=0),
        nvmlDeviceGetComputeRunningProcesses=lambda h: [
            SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in gpus[h].procs.items()
        ],
    )


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeGpu]]:
    gpus = [
        FakeGpu("NVIDIA H100 80GB HBM3", 80 * GIB, 10 * GIB, 35, {}),
        FakeGpu("NVIDIA L4", 24 * GIB, int(23.5 * GIB), 97, {}),  # no room
    ]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml.reset()
    yield gpus
    nvml.reset()


def _running_on(store: RunStore, device: str) -> str:
    spec = _spec("train.epochs=1")
    handle = store.create(spec.name, spec.to_toml(), seed=0)
    handle.update(
        status="running",
        device=device,
        pid=os.getpid(),
        pid_start=process_start_time(os.getpid()),
        started=time.time(),
    )
    return f"{spec.name}/{handle.id}"


def test_devices_view_with_a_fake_nvml(two_gpus: list[FakeGpu], tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    held = _running_on(store, "cuda:1")
    view = device_status(store)
    assert [r.label for r in view.rows] == ["cuda:0", "cuda:1", "cpu"]
    g0, g1, cpu = view.rows
    assert (g0.mem_used, g0.mem_total, g0.util) == (10 * GIB, 80 * GIB, 35.0)
    assert g1.holders == (held,) and g0.holders == ()
    assert g1.mem_fraction is not None and g1.mem_fraction > 0.97
    assert cpu.mem_total and cpu.mem_used and 0 < cpu.mem_used < cpu.mem_total
    table = devices_table(view)
    text = [[c.text for c in r.cells] for r in table.rows]
    assert text[0][4] == "10.0/80.0 GiB" and text[1][5] == "97%"
    assert text[1][3] == held
    assert all(len(line) <= 80 for line, _ in strip_lines(view, 80))


def test_devices_view_without_nvml_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml.reset()
    view = device_status(RunStore(tmp_path))
    assert [r.label for r in view.rows] == ["cpu"]
    assert any("no GPU row" in n and "NVML is not installed" in n for n in view.notes)


def test_devices_command_prints_the_table(two_gpus: list[FakeGpu], tmp_path: Path) -> None:
    out = main_out(["devices", "--runs-dir", str(tmp_path)])
    assert "cuda:0" in out and "cuda:1" in out and "NVIDIA L4" in out


# ----------------------------------------------------------------------------- admission


def test_decide_places_by_free_memory_never_by_utilisation() -> None:
    rooms = [DeviceRoom("0", 70 * GIB, 80 * GIB), DeviceRoom("1", GIB // 2, 24 * GIB)]
    assert decide(Need(2 * GIB, "x"), rooms).device == "0"
    # utilisation is no input at all: a GPU without room refuses whatever its load
    assert decide(Need(GIB, "x"), [DeviceRoom("1", GIB // 2, 24 * GIB)]).device is None
    wait = decide(Need(65 * GIB, "peak of 2 earlier runs"), rooms)
    assert wait.device is None
    assert "waits for GPU memory" in wait.reason and "cuda:0" in wait.reason
    assert "peak of 2 earlier runs" in wait.reason
    # runs that have started but not reached their peak count against the room
    assert decide(Need(2 * GIB, "x"), [DeviceRoom("0", 3 * GIB, 80 * GIB, 2 * GIB)]).device is None
    # a need larger than any GPU waits for ever otherwise: it tries alone on an empty one
    huge = decide(Need(100 * GIB, "x"), [DeviceRoom("0", 79 * GIB, 80 * GIB, runs=0)])
    assert huge.device == "0"
    assert decide(Need(100 * GIB, "x"), [DeviceRoom("0", 9 * GIB, 80 * GIB, runs=1)]).device is None


@dataclass
class FakeSlot:
    device: str
    run: Any = None
    child: Any = None


def test_place_with_a_fake_nvml(two_gpus: list[FakeGpu], tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    spec = _spec("train.epochs=1")
    queued = store.handle(store.create(spec.name, spec.to_toml(), seed=1).info())
    queued.update(status="queued")
    info = store.resolve(queued.id)
    slots = [FakeSlot("0"), FakeSlot("1")]
    assert admission.place(store, info, slots, slots) is slots[0]  # the one with room
    assert admission.waiting(store) == {}
    # a measured peak of the same definition larger than either GPU's free memory
    done = store.create(spec.name, spec.to_toml(), seed=2)
    done.update(status="completed", system={"device_mem_peak_mb": 65 * 1024})
    admission._needs.clear()
    need = admission.expected_need(store, info)
    assert need.source == "peak of 1 earlier run"
    assert need.bytes == 65 * GIB + admission.CONTEXT
    assert admission.place(store, info, slots, slots) is None
    why = admission.waiting(store)[info.id]
    assert "waits for GPU memory" in why and "cuda:0" in why
    # queue ls shows why
    out = main_out(["queue", "ls", "--runs-dir", str(tmp_path)])
    assert "waits for GPU memory" in out
    # room again: it starts, and no longer waits
    two_gpus[0].used = 0
    admission._needs.clear()
    assert admission.place(store, info, slots, slots) is slots[0]
    assert info.id not in admission.waiting(store)


def test_estimate_without_a_measurement(two_gpus: list[FakeGpu], tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    spec = _spec("train.epochs=1")
    h = store.create(spec.name, spec.to_toml(), seed=1)
    need = admission.expected_need(store, h.info())
    assert need.source.startswith("estimate:") and "batch 16" in need.source
    assert admission.CONTEXT < need.bytes < 4 * GIB


# ----------------------------------------------------------------------------- console


async def test_devices_strip_on_the_queue_tab_at_80x24(
    two_gpus: list[FakeGpu], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import Static

    from mnist_tui.tui import devices_strip
    from mnist_tui.tui.app import MnistTuiApp

    from .test_tui import loaded, make_app, wait_for

    reads: list[float] = []
    real = devices_strip.device_status

    def counted(store: RunStore) -> Any:
        reads.append(time.monotonic())
        return real(store)

    monkeypatch.setattr(devices_strip, "device_status", counted)
    monkeypatch.setattr(devices_strip, "REFRESH", 0.2)
    app: MnistTuiApp = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.pause(0.6)
        assert reads == []  # not shown: never read
        await pilot.press("3")
        strip = app.main.query_one("#devices-strip", Static)
        await wait_for(pilot, lambda: "cuda:1" in str(strip.render()), timeout=10)
        text = str(strip.render())
        lines = text.splitlines()
        assert [line.split()[0] for line in lines[:3]] == ["cuda:0", "cuda:1", "cpu"]
        assert all(len(line) <= 80 for line in lines)
        assert "10.0/80.0 GiB" in lines[0] and "97%" in lines[1]
        assert strip.region.area and strip.region.bottom <= 24
        n = len(reads)
        await pilot.pause(0.7)
        assert len(reads) > n  # refreshes while shown


def test_worker_holds_back_a_run_no_gpu_has_room_for(
    two_gpus: list[FakeGpu], tmp_path: Path
) -> None:
    from mnist_tui.runs import scheduler
    from mnist_tui.runs.local_launcher import LocalLauncher
    from mnist_tui.runs.worker import Worker, WorkerOptions

    store = RunStore(tmp_path)
    spec = _spec("train.epochs=1")
    done = store.create(spec.name, spec.to_toml(), seed=2)
    done.update(status="completed", system={"device_mem_peak_mb": 65 * 1024})
    queued = scheduler.enqueue(store, spec, scheduler.QueueRequest())
    admission._needs.clear()
    options = WorkerOptions(devices=("0", "1"), per_device=2)
    worker = Worker(store, options, LocalLauncher, log=lambda _: None)
    assert worker.fill_slots() == 0  # never started: no child, no CUDA out-of-memory
    assert store.resolve(queued.id).status == "queued"
    assert "waits for GPU memory" in admission.waiting(store)[queued.id]


def test_header_train_loss_follows_the_newest_step_report() -> None:
    from mnist_tui.views.live import latest_train_loss

    epoch1 = [{"epoch": 1, "train_loss": 0.9}]
    assert latest_train_loss([], []) is None
    assert latest_train_loss([], [step_row(1, 5, 10, 1.7, 0.4, 16, 0.0)]) == 1.7
    assert latest_train_loss(epoch1, [step_row(1, 10, 10, 0.8, 0.7, 16, 0.0)]) == 0.9
    assert latest_train_loss(epoch1, [step_row(2, 3, 10, 0.6, 0.8, 16, 0.0)]) == 0.6
