"""Variants and their comparison: mark two or more, `c` compares them, `n` queues the
seeds a comparison says it needs.

The variants and the statistics come from the core (studies.variants, studies.compare);
scipy is imported when the first comparison is made, in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group
from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Static

from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.store import RunStore
from mnist_tui.studies.stats import Study
from mnist_tui.studies.variants import Variant, build_variants, show_value
from mnist_tui.tui.grid import DataGrid
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.views import tables
from mnist_tui.views.render import rich_table
from mnist_tui.views.variant_tables import pairs_table, sides_table, variants_table


@dataclass
class VariantsLoaded(Message):
    variants: list[Variant] = field(default_factory=list)
    error: str = ""


@dataclass
class Compared(Message):
    study: Study | None
    error: str = ""


class VariantsScreen(ConsoleScreen):
    """Every variant with runs; space marks, c compares the marked (Welch, Holm)."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="variants.back"),
        Binding("space", "mark", "Mark", id="variants.mark"),
        Binding("c", "compare", "Compare", id="variants.compare"),
        Binding("n", "more_seeds", "Queue seeds needed", id="variants.more_seeds"),
        Binding("r", "reload", "Reload", id="variants.reload"),
    ]

    def __init__(self, experiments_dir: Path, store: RunStore) -> None:
        super().__init__()
        self.experiments_dir = experiments_dir
        self.store = store
        self.variants: list[Variant] = []
        self.marked: dict[str, None] = {}
        self.study: Study | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("variants", style="bold"), id="variants-header")
        yield DataGrid(id="variants-table")
        with VerticalScroll(id="variants-compare"):
            yield Static("", id="variants-result")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#variants-table", DataGrid).focus()
        self.load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        try:
            found = build_variants(self.experiments_dir, self.store)
        except MnistTuiError as exc:
            self.post_message(VariantsLoaded(error=str(exc)))
            return
        self.post_message(VariantsLoaded(found))

    @on(VariantsLoaded)
    def variants_loaded(self, event: VariantsLoaded) -> None:
        event.stop()
        if event.error:
            self.query_one("#variants-header", Static).update(Text(event.error, style="red"))
            return
        self.variants = event.variants
        known = {v.id for v in self.variants}
        self.marked = {k: None for k in self.marked if k in known}
        self.redraw()

    def redraw(self) -> None:
        data = tables.with_marks(variants_table(self.variants), self.marked)
        self.query_one("#variants-table", DataGrid).show(data)
        hint = "space marks, c compares" if len(self.marked) < 2 else "c compares the marked"
        self.query_one("#variants-header", Static).update(
            Text.assemble(("variants", "bold"), f"  {len(self.marked)} marked · {hint}")
        )

    def action_mark(self) -> None:
        grid = self.query_one("#variants-table", DataGrid)
        key = grid.current_key
        if key is None:
            return
        if key in self.marked:
            del self.marked[key]
        else:
            self.marked[key] = None
        self.redraw()
        grid.action_cursor_down()

    def action_reload(self) -> None:
        self.load()

    def action_compare(self) -> None:
        refs = list(self.marked)
        if len(refs) < 2:
            self.notify("mark two or more variants with space, then press c", severity="warning")
            return
        self.query_one("#variants-result", Static).update(Text("comparing…", style="dim"))
        self.compare(refs)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def compare(self, refs: list[str]) -> None:
        from mnist_tui.studies.compare import compare_refs

        try:
            study = compare_refs(refs, self.experiments_dir, self.store, variants=self.variants)
        except MnistTuiError as exc:
            self.post_message(Compared(None, str(exc)))
            return
        self.post_message(Compared(study))

    @on(Compared)
    def compared(self, event: Compared) -> None:
        event.stop()
        out = self.query_one("#variants-result", Static)
        if event.study is None:
            out.update(Text(event.error, style="red"))
            return
        from mnist_tui.studies.stats import verdict

        self.study = event.study
        verdicts = [
            Text(f"• {verdict(c, event.study.metric)}", style="green" if c.significant else "")
            for c in event.study.pairs
        ]
        # the answer first: at 80x24 the tables below it may need scrolling
        out.update(
            Group(
                *verdicts,
                rich_table(sides_table(event.study)),
                rich_table(pairs_table(event.study)),
            )
        )

    def action_more_seeds(self) -> None:
        """Queue, for every unsettled pair, the runs each side lacks of the seeds needed."""
        if self.study is None:
            self.notify("compare first (c): it says how many seeds would settle it")
            return
        by_label = {v.label: v for v in self.variants}
        wanted: dict[str, int] = {}
        for c in self.study.pairs:
            if c.significant or c.seeds_needed is None or c.seeds_needed > 100:
                continue
            for label in (c.a, c.b):
                wanted[label] = max(wanted.get(label, 0), c.seeds_needed)
        queued = 0
        for label, n in wanted.items():
            v = by_label.get(label)
            if v is None:
                continue
            more = n - len(v.completed)
            if more <= 0:
                continue
            queued += self.queue_seeds(v, more)
        if not queued:
            self.notify("nothing to queue: every pair is settled, or needs more than 100 seeds")

    def queue_seeds(self, v: Variant, more: int) -> int:
        """`more` runs of the variant on seeds after its highest, as one group."""
        from mnist_tui.config.loading import load_experiment

        overrides = [f"{k}={show_value(x)}" for k, x in v.changes.items()]
        start = max((r.seed for r in v.runs if r.seed is not None), default=-1) + 1
        try:
            spec = load_experiment(
                v.experiment,
                self.experiments_dir,
                [*overrides, f"train.seed={start}", f"train.repeats={more}"],
            )
        except MnistTuiError as exc:
            self.notify(escape(str(exc)), severity="error")
            return 0
        self.app.queue_runs([spec], [*overrides, f"train.seed={start}"])  # type: ignore[attr-defined]
        return more
