"""Two experiments or runs side by side, and any number of runs' curves in one plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.steps import read_steps
from mnist_tui.runs.store import RunStore
from mnist_tui.status import RunStatus
from mnist_tui.studies.catalog import compared, resolve_subject
from mnist_tui.studies.diff import diff_definitions, result_deltas
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.messages import DiffLoaded, OverlayLoaded, StoreChanged
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.views import curves, diff_tables, fmt, live, pictures, run_tables


class DiffScreen(ConsoleScreen):
    """Changed keys (all with `a`), figure deltas, test accuracy of both overlaid."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="diff.back"),
        Binding("a", "toggle_all", "All keys", id="diff.all"),
    ]

    def __init__(self, a: str, b: str, experiments_dir: Path, store: RunStore) -> None:
        super().__init__()
        self.refs = (a, b)
        self.experiments_dir = experiments_dir
        self.store = store
        self.show_all = False
        self.loaded: DiffLoaded | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("diff ", "bold"), " → ".join(self.refs)), id="diff-header")
        with VerticalScroll(id="diff-body"):
            yield DataGrid(id="diff-keys", classes="auto")
            yield DataGrid(id="diff-figures", classes="auto")
            yield Static("", id="diff-plot")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#diff-keys", DataGrid).focus()
        self.load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        try:
            a, b = (resolve_subject(r, self.experiments_dir, self.store) for r in self.refs)
        except MnistTuiError as exc:
            self.post_message(DiffLoaded(None, None, error=str(exc)))
            return
        changes = diff_definitions(*compared(a, b), include_same=True)
        deltas = result_deltas(a.results(), b.results())
        curves = [(s.label, s.run.metrics()) for s in (a, b) if s.run is not None]
        self.post_message(DiffLoaded(a, b, changes, deltas, curves))

    @on(DiffLoaded)
    def diff_loaded(self, event: DiffLoaded) -> None:
        event.stop()
        if event.a is None or event.b is None:
            self.query_one("#diff-header", Static).update(Text(event.error, style="red"))
            return
        self.loaded = event
        a, b = event.a, event.b
        self.query_one("#diff-header", Static).update(
            Text.assemble(("diff ", "bold"), f"{a.label} ({a.kind}) → {b.label} ({b.kind})")
        )
        self.fill()

    def fill(self) -> None:
        d = self.loaded
        if d is None or d.a is None or d.b is None:
            return
        changes = [c for c in d.changes if self.show_all or c.changed]
        keys, figures = diff_tables.diff_tables(d.a, d.b, changes, d.deltas)
        self.query_one("#diff-keys", DataGrid).show(keys)
        self.query_one("#diff-figures", DataGrid).show(figures)
        plot = self.query_one("#diff-plot", Static)
        curve = curves.overlay_curve(d.curves, "test_acc")
        width = max(self.size.width - 4, 40)
        plot.update(
            Text.from_ansi(pictures.plot(curve, width=width, height=14)) if d.curves else ""
        )

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.fill()


OVERLAY_METRICS = ("test_acc", "test_loss", "val_acc", "val_loss", "train_acc", "train_loss")


class OverlayScreen(ConsoleScreen):
    """One metric of any number of marked runs in one plot (`m` picks the metric); `g`
    draws each group of runs (repeats, folds) as its mean ± std band instead."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="overlay.back"),
        Binding("m", "next_metric", "Next metric", id="overlay.metric"),
        Binding("g", "toggle_groups", "Group mean ± std", id="overlay.groups"),
    ]

    def __init__(self, run_ids: list[str], store: RunStore) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.store = store
        self.metric = 0
        self.by_group = False
        self.runs: list[tuple[RunInfo, list[dict[str, Any]]]] = []
        self.steps: dict[str, list[dict[str, Any]]] = {}  # run id -> step reports
        self._active: set[str] = set()  # its runs still training at the last store read

    def compose(self) -> ComposeResult:
        yield Static(fmt.plural(len(self.run_ids), "run"), id="overlay-header")
        yield Static("", id="overlay-plot")
        yield DataGrid(id="overlay-runs")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.load()

    @on(StoreChanged)
    def store_changed(self, event: StoreChanged) -> None:
        """One of these runs moved on (an epoch, its end): its curves again."""
        event.stop()
        if event.read.runs is not None and any(
            (r.id in self.run_ids and r.status in (RunStatus.RUNNING, RunStatus.QUEUED))
            or r.id in self._active
            for r in event.read.runs
        ):
            self._active = {
                r.id
                for r in event.read.runs
                if r.id in self.run_ids and r.status == RunStatus.RUNNING
            }
            self.load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        found, missing = [], []
        steps: dict[str, list[dict[str, Any]]] = {}
        for run_id in self.run_ids:
            try:
                run = self.store.resolve(run_id)
            except MnistTuiError:
                missing.append(run_id)
                continue
            found.append((run, run.metrics()))
            steps[run.id] = read_steps(run.path)
        self.post_message(OverlayLoaded(found, missing, steps))

    @on(OverlayLoaded)
    def overlay_loaded(self, event: OverlayLoaded) -> None:
        event.stop()
        self.runs = event.runs
        self.steps = event.steps
        if event.missing:
            self.notify(f"not found: {', '.join(event.missing)}", severity="warning")
        self.query_one("#overlay-runs", DataGrid).show(
            run_tables.runs_table([r for r, _ in self.runs])
        )
        # the table just filled changes the plot's height: draw once the layout has it
        self.call_after_refresh(self.draw)

    def on_resize(self) -> None:
        if self.runs:
            self.call_after_refresh(self.draw)

    def draw(self) -> None:
        key = OVERLAY_METRICS[self.metric]
        if self.by_group:
            curve = curves.group_band_curve(run_groups(self.runs), key)
        else:
            curve = curves.overlay_curve(
                [(f"{r.experiment}/{r.id}", rows) for r, rows in self.runs], key
            )
            curve = live.overlay_with_steps(
                curve, [(r.id, self.steps.get(r.id, [])) for r, _ in self.runs], key
            )
        plot = self.query_one("#overlay-plot", Static)
        w, h = max(plot.size.width, 40), max(plot.size.height, 8)
        plot.update(Text.from_ansi(pictures.plot(curve, width=w, height=h)))
        self.query_one("#overlay-header", Static).update(
            Text.assemble((fmt.plural(len(self.runs), "run"), "bold"), f"  {key.replace('_', ' ')}")
        )

    def action_next_metric(self) -> None:
        self.metric = (self.metric + 1) % len(OVERLAY_METRICS)
        self.draw()

    def action_toggle_groups(self) -> None:
        self.by_group = not self.by_group
        self.draw()


def run_groups(
    runs: list[tuple[RunInfo, list[dict[str, Any]]]],
) -> list[tuple[str, list[list[dict[str, Any]]]]]:
    """Runs by their group (the seeds of one `--repeats`, the folds of one `cv`); runs
    without one by experiment and overrides other than the seed (seeds run one by one).
    In the order first seen; labelled by what they share."""
    groups: dict[str, list[list[dict[str, Any]]]] = {}
    for r, rows in runs:
        if r.group:
            key = f"{r.experiment} {r.group}"
        else:
            overrides = [str(o) for o in r.overrides if not str(o).startswith("train.seed=")]
            key = " ".join([r.experiment, *overrides])
        groups.setdefault(key, []).append(rows)
    return list(groups.items())
