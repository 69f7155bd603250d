"""The main screen: experiments, runs, queue and report tabs, a filter and marks.

The filter is text to look for, or a `--where` expression (`optim.lr > 0.01 and
test_acc >= 0.85`, the same grammar as `runs --where`, studies/where.py): an expression
is evaluated over the runs in a thread (each run's resolved configuration is read from
its spec.toml); the experiments and report tabs keep the experiments with a matching run.

It shows what the app's store thread reads (`apply`) and asks the app for everything
else with messages. Keys that do nothing on the current tab are hidden from the footer
and refused (`check_action`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from rich.markup import escape
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static, TabbedContent, TabPane

from mnist_tui.runs.record import RunInfo
from mnist_tui.studies.catalog import ExperimentRow
from mnist_tui.studies.where import WhereError, is_expression, matching, parse_where
from mnist_tui.tui.devices_strip import DevicesStrip
from mnist_tui.tui.grid import DataGrid, is_data_key
from mnist_tui.tui.messages import (
    AskQueue,
    CancelRun,
    MainReady,
    MoveRun,
    Notice,
    OpenDiff,
    OpenExperiment,
    OpenOverlay,
    OpenRun,
    OpenSearches,
    QuitRequested,
    ReportBuilt,
    StoreRead,
    TogglePause,
    WhereMatched,
)
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.views import report_tables, tables
from mnist_tui.views.tables import TableData

FILTER_DELAY = 0.15  # seconds after the last key before the tables are filtered

Tab = Literal["experiments", "runs", "queue", "report"]
TABS: tuple[Tab, ...] = ("experiments", "runs", "queue", "report")

# the tabs on which an action means something; elsewhere its key is hidden and refused
ACTION_TABS: dict[str, set[str]] = {
    "filter": {"experiments", "runs", "report"},
    "mark": {"experiments", "runs"},
    "clear_marks": {"experiments", "runs"},
    "queue": {"experiments"},
    "diff": {"experiments", "runs"},
    "overlay": {"runs"},
    "cancel": {"runs", "queue"},
    "copy_id": {"runs", "queue"},
    "sort": {"experiments", "runs", "report"},
    "move": {"queue"},
    "toggle_pause": {"queue"},
    "searches": {"experiments", "queue", "report"},  # the runs tab's footer is full
}


class MainScreen(ConsoleScreen):
    BINDINGS = [
        # a priority binding acts as the key arrives, before the keys typed after it are
        # handed to the focused table: `/fnn` typed ahead or pasted all reaches the filter
        Binding("slash", "filter", "Filter", id="main.filter", priority=True),
        Binding("escape", "clear_filter", "Clear filter", id="main.clear_filter"),
        # not in the footer (no room at 80 columns): the status line says "esc clears"
        Binding("escape", "clear_marks", "Clear marks", show=False, id="main.clear_marks"),
        Binding("space", "mark", "Mark ↓", id="main.mark", tooltip="mark the row, move down"),
        Binding("a", "queue", "Queue", id="main.queue"),
        Binding("d", "diff", "Diff", id="main.diff"),
        Binding("o", "overlay", "Overlay", id="main.overlay"),
        Binding("x", "cancel", "Cancel", id="main.cancel"),
        Binding("y", "copy_id", "Copy id", id="main.copy_id"),
        Binding("s", "sort", "Sort", id="main.sort"),
        Binding("K", "move('up')", "Up", id="main.move_up"),
        Binding("J", "move('down')", "Down", id="main.move_down"),
        Binding("p", "toggle_pause", "Pause/resume", id="main.toggle_pause"),
        Binding("S", "searches", "Searches", id="main.searches"),
        Binding("1", "tab('experiments')", "Experiments tab", show=False, id="main.tab1"),
        Binding("2", "tab('runs')", "Runs tab", show=False, id="main.tab2"),
        Binding("3", "tab('queue')", "Queue tab", show=False, id="main.tab3"),
        Binding("4", "tab('report')", "Report tab", show=False, id="main.tab4"),
        Binding("q", "quit", "Quit", id="main.quit"),
    ]

    def __init__(self, store_root: Path) -> None:
        super().__init__(id="main")
        self.store_root = store_root  # the run store the app reads (its report's runs)
        self.base: dict[str, TableData] = {}  # as read, before marks, filter and sort
        self.experiments: list[ExperimentRow] = []
        self.runs: list[RunInfo] = []
        # marks in the order they were made (a diff goes from the first to the second)
        self.marked: dict[str, dict[str, None]] = {"experiments": {}, "runs": {}}
        self.filter_text = ""
        # (header, reversed) of each tab's sort; None: the order as read
        self.sort: dict[str, tuple[str, bool] | None] = {
            "experiments": None,
            "runs": None,
            "report": None,
        }
        self.paused = False
        self.loaded = False  # the first read of the store arrived
        self.summary = "reading the run store…"
        self._report_stale = True
        self._filter_timer: Timer | None = None
        # an expression filter: what it matched (None until its thread answers), or why
        # it does not parse; `_where_seq` numbers the evaluations, the latest one counts
        self.where: WhereMatched | None = None
        self.where_error: WhereError | None = None
        self._where_seq = 0

    # -- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="filter: text, or optim.lr > 0.01 and test_acc >= 0.85 (esc clears)",
            id="filter",
        )
        with TabbedContent(initial="experiments", id="tabs"):
            for tab, title in zip(TABS, ("Experiments", "Runs", "Queue", "Report"), strict=True):
                with TabPane(f"{title} [{TABS.index(tab) + 1}]", id=tab):
                    yield DataGrid(id=f"{tab}-table")
                    if tab == "queue":  # what each device holds, every 2 s while shown
                        yield DevicesStrip(getattr(self.app, "store", None), id="devices-strip")
                    if tab == "report":  # what Δ, ᵇ and "inside" mean, under the table
                        yield Static("", id="report-notes")
        yield Static("reading the run store…", id="status-line")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.grid("experiments").focus()
        self.post_message(MainReady())

    def grid(self, tab: str) -> DataGrid:
        return self.query_one(f"#{tab}-table", DataGrid)

    @property
    def active_tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active or "experiments"

    @property
    def current_key(self) -> str | None:
        return self.grid(self.active_tab).current_key

    # -- data ------------------------------------------------------------------------

    def apply(self, read: StoreRead) -> None:
        """Show a store read; only the tables whose data changed are redrawn."""
        if read.experiments is not None and read.experiments_table is not None:
            self.experiments = read.experiments
            self.base["experiments"] = read.experiments_table
            self.redraw("experiments")
            self._report_stale = True
            if self.active_tab == "report":
                self.build_report(self.experiments)
        if read.runs is not None and read.runs_table is not None:
            self.runs = read.runs
            self.base["runs"] = read.runs_table
            self.redraw("runs")
            known = {r.id for r in read.runs}
            self.marked["runs"] = {k: None for k in self.marked["runs"] if k in known}
            if self.expression and self.where_error is None and self._filter_timer is None:
                self.evaluate_where()  # new runs, or figures that changed
        if read.queue_table is not None:
            self.base["queue"] = read.queue_table
            self.redraw("queue")
        self.summary = read.summary
        if read.paused != self.paused:
            self.paused = read.paused
            # the tab says it too, seen from every tab: what happens next changed
            label = "Queue [3] ⏸ paused" if read.paused else "Queue [3]"
            self.query_one("#tabs", TabbedContent).get_tab("queue").label = label
        self.show_status()
        self.loaded = True

    def redraw(self, tab: str) -> None:
        data = self.base.get(tab)
        if data is None:
            return
        if tab in self.marked:
            data = tables.with_marks(data, self.marked[tab])
        if self.filter_text and tab in ACTION_TABS["filter"]:
            data = self._filtered(tab, data)
        data = self._sorted(tab, data)
        self.grid(tab).show(data)
        if tab == "report":
            # one paragraph: at 80x24 every line taken from the table counts
            self.query_one("#report-notes", Static).update("  ".join(data.notes))
        if tab == self.active_tab:
            self.show_status()

    @property
    def expression(self) -> bool:
        return bool(self.filter_text) and is_expression(self.filter_text)

    def _filtered(self, tab: str, data: TableData) -> TableData:
        """Text: the rows that contain it. An expression: the runs it matched, and on the
        other tabs the experiments with such a run; none while it is evaluated, and none
        with the reason when it does not parse."""
        text = self.filter_text
        if not self.expression:
            data = tables.filtered(data, text)
            data.empty = f"nothing matches '{text}'"
            return data
        if self.where_error is not None:
            data = tables.only_keys(data, ())
            data.empty = f"filter: {where_problem(self.where_error)}"
            return data
        where = self.where
        if where is None or where.text != text:
            data = tables.only_keys(data, ())
            data.empty = "filtering…"
            return data
        data = tables.only_keys(data, where.runs if tab == "runs" else where.experiments)
        data.empty = (
            f"no run matches {text}"
            if tab == "runs"
            else f"no experiment has a run that matches {text}"
        )
        return data

    @work(thread=True, exclusive=True, group="where", exit_on_error=False)
    def _evaluate(self, seq: int, text: str, runs: list[RunInfo]) -> None:
        """An expression over every run (a spec.toml read per definition): a thread, so
        10,000 runs never hold up the keys."""
        ids, experiments = matching(runs, text)
        self.post_message(WhereMatched(seq, text, ids, experiments))

    def evaluate_where(self) -> None:
        self._where_seq += 1
        self._evaluate(self._where_seq, self.filter_text, self.runs)

    @on(WhereMatched)
    def where_matched(self, event: WhereMatched) -> None:
        event.stop()
        if event.seq != self._where_seq or event.text != self.filter_text:
            return  # the filter changed since: a newer evaluation is on its way
        self.where = event
        for tab in ACTION_TABS["filter"]:
            self.redraw(tab)
        self.show_status()

    def _sorted(self, tab: str, data: TableData) -> TableData:
        """The tab's sort applied, its column's header with the direction (▼ / ▲) and
        kept whatever the width (the column sorted by stays on screen)."""
        sort = self.sort.get(tab)
        if sort is None:
            return data
        header, reverse = sort
        try:
            i = data.column_index(header)
        except StopIteration:  # the column is gone (another table shape): unsorted
            return data
        data = tables.sorted_by(data, i, reverse=reverse)
        columns = list(data.columns)
        arrow = "▲" if reverse else "▼"
        columns[i] = replace(columns[i], header=f"{header} {arrow}", keep=True)
        return replace(data, columns=columns)

    def show_status(self) -> None:
        """The store summary, then what acts on the next key: marks (and how many the
        filter hides), the filter, columns left out for width, rows beyond the cap."""
        tab = self.active_tab
        grid = self.grid(tab)
        parts = [self.summary]
        marks = self.marked.get(tab, {})
        if marks:
            shown = set(grid.row_keys())
            hidden = sum(1 for k in marks if k not in shown)
            text = f"{len(marks)} marked"
            if hidden:
                text += f" ({hidden} hidden by the filter, not acted on)"
            parts.append(text + " · esc clears")
        if self.filter_text:
            parts.append(self._filter_status(tab))
        if grid.dropped:
            parts.append(f"not shown (narrow): {', '.join(grid.dropped)}")
        if grid.hidden_rows:
            parts.append(f"{grid.hidden_rows:,} more rows: / filters")
        self.query_one("#status-line", Static).update(" · ".join(parts))

    def _filter_status(self, tab: str) -> str:
        """`filter 'optim.lr > 0.01' (3 of 120 runs)`, or where it does not parse (as
        markup: what was typed is escaped, `[32,32]` is text, not a style)."""
        text = escape(self.filter_text)
        if tab not in ACTION_TABS["filter"]:
            return f"filter '{text}' (not on this tab)"
        if not self.expression:
            return f"filter '{text}'"
        if self.where_error is not None:
            return f"filter error: {escape(where_problem(self.where_error))}"
        if self.where is None or self.where.text != text:
            return f"filter '{text}' (filtering…)"
        return f"filter '{text}' ({len(self.where.runs):,} of {len(self.runs):,} runs)"

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_status)  # columns left out change with the width

    @work(thread=True, exclusive=True, group="report", exit_on_error=False)
    def build_report(self, experiments: list[ExperimentRow]) -> None:
        """Reported vs reproduced reads every run's definition: a thread, only when shown."""
        from mnist_tui.studies.completed import ListedRuns
        from mnist_tui.studies.report import report_rows

        listed = ListedRuns(self.store_root, (r for er in experiments for r in er.runs))
        rows = report_rows(experiments, listed)
        self.post_message(ReportBuilt(report_tables.report_table(rows)))

    @on(ReportBuilt)
    def report_built(self, event: ReportBuilt) -> None:
        event.stop()
        self._report_stale = False
        self.base["report"] = event.table
        self.redraw("report")

    @on(TabbedContent.TabActivated)
    def tab_activated(self) -> None:
        if self.active_tab == "report" and self._report_stale and self.loaded:
            self.build_report(self.experiments)
        self.refresh_bindings()
        self.show_status()

    def clear_marks(self, tab: str) -> None:
        self.marked[tab].clear()
        self.redraw(tab)

    # -- keys ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tabs = ACTION_TABS.get(action)
        if tabs is not None and self.active_tab not in tabs:
            return False
        filtering = bool(self.filter_text) or self.query_one("#filter", Input).has_class("visible")
        if action == "clear_filter":
            return filtering
        if action == "clear_marks":  # esc clears the filter first, then the marks
            return not filtering and bool(self.marked.get(self.active_tab))
        return True

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value or "")
        if not is_data_key(key):
            return  # the message of an empty table
        if event.data_table.id in ("experiments-table", "report-table"):
            self.post_message(OpenExperiment(key))
        else:
            self.post_message(OpenRun(key))

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        self.set_focus(self.grid(tab))
        self.refresh_bindings()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if self.focused is box:  # a `/` typed in the filter itself
            box.insert_text_at_cursor("/")
            return
        box.add_class("visible")
        # focus now, not after the keys already queued: `/fnn` typed ahead (or pasted
        # over a slow SSH link) must land in the box, not on the table behind it
        self.set_focus(box)
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("visible")
        self.filter_text = ""
        self.where = self.where_error = None
        for tab in ACTION_TABS["filter"]:
            self.redraw(tab)
        self.set_focus(self.grid(self.active_tab))
        self.refresh_bindings()
        self.show_status()

    def action_clear_marks(self) -> None:
        tab = self.active_tab
        if tab in self.marked:
            self.clear_marks(tab)
            self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        # typing fast redraws once: filtering 10,000 runs on every key would lag
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, self._apply_filter)

    def _apply_filter(self) -> None:
        self._filter_timer = None
        self.where_error = None
        if self.expression:
            # parsed here (it is quick): a typo is said at once, with its column
            try:
                parse_where(self.filter_text)
            except WhereError as exc:
                self.where_error = exc
            else:
                # the tables stay as they are until the thread answers: one redraw, not
                # an empty one first (at 10,000 runs each costs a few tenths of a second)
                self.evaluate_where()
                self.show_status()
                return
        for tab in ACTION_TABS["filter"]:
            self.redraw(tab)
        self.show_status()

    def on_paste(self, event: events.Paste) -> None:
        """`/text` pasted over a table filters by `text` (the table ignores pastes)."""
        if event.text.startswith("/") and self.check_action("filter", ()):
            event.stop()
            self.action_filter()
            self.query_one("#filter", Input).insert_text_at_cursor(event.text[1:].strip())

    @on(Input.Submitted, "#filter")
    def filter_submitted(self) -> None:
        self.set_focus(self.grid(self.active_tab))  # now: keys typed after enter reach it
        if self._filter_timer is not None:  # enter before the pause: filter now
            self._filter_timer.stop()
            self._apply_filter()
        if self.where_error is not None:  # the whole message, with its caret
            text = escape(self.where_error.render("filter"))
            self.post_message(Notice(text, "warning", subject="filter"))

    def action_mark(self) -> None:
        tab, key = self.active_tab, self.current_key
        if key is None or tab not in self.marked:
            return
        marks = self.marked[tab]
        if key in marks:
            del marks[key]
        else:
            marks[key] = None
        self.redraw(tab)
        self.grid(tab).action_cursor_down()
        self.refresh_bindings()

    def _visible_marks(self, tab: str) -> list[str]:
        """The marks an action acts on: those on rows shown now, not those the filter
        hides (the status line says how many it hides)."""
        if tab not in self.marked:
            return []
        shown = set(self.grid(tab).row_keys())
        return [k for k in self.marked[tab] if k in shown]

    def _marked_or_current(self, tab: str) -> list[str]:
        marks = self._visible_marks(tab)
        if not marks and self.current_key:
            marks = [self.current_key]
        return marks

    def _older_first(self, ids: list[str]) -> list[str]:
        order = {r.id: i for i, r in enumerate(self.runs)}  # newest first
        return sorted(ids, key=lambda k: -order.get(k, 0))

    def action_queue(self) -> None:
        names = self._marked_or_current("experiments")
        if names:
            self.post_message(AskQueue(names))

    def action_diff(self) -> None:
        """Two marked experiments, two marked runs, or one of each (the experiment's
        definition and reported figures against the run's)."""
        tab = self.active_tab
        marks = self._visible_marks(tab)
        if tab == "runs":
            marks = self._older_first(marks)
        experiments, runs = list(self.marked["experiments"]), list(self.marked["runs"])
        if len(marks) != 2 and len(experiments) == 1 and len(runs) == 1:
            marks = [experiments[0], runs[0]]
        if len(marks) != 2:
            what = "runs" if tab == "runs" else "experiments"
            have = (
                f"{len(marks)} {what} marked: diff compares exactly two (esc clears marks)"
                if len(marks) > 2
                else "mark two experiments, two runs, or an experiment and a run with space, "
                "then press d"
            )
            self.post_message(Notice(have, "warning", subject="diff"))
            return
        self.post_message(OpenDiff(marks[0], marks[1]))

    def action_overlay(self) -> None:
        ids = self._older_first(self._marked_or_current("runs"))
        if ids:
            self.post_message(OpenOverlay(ids))

    def action_cancel(self) -> None:
        if self.current_key is not None:
            self.post_message(CancelRun(self.current_key))

    def action_move(self, where: Literal["up", "down"]) -> None:
        if self.current_key is not None:
            self.post_message(MoveRun(self.current_key, where))

    def action_toggle_pause(self) -> None:
        self.post_message(TogglePause())

    def action_copy_id(self) -> None:
        key = self.current_key
        if key is not None:
            self.app.copy_to_clipboard(key)
            self.notify(f"copied {key}")

    def action_sort(self) -> None:
        """Next sort of the columns on screen: each one largest first, a second press
        reverses it, then the next column; after the last, the order as read."""
        tab = self.active_tab
        if self.base.get(tab) is None:
            return
        headers = [
            h.removesuffix(" ▼").removesuffix(" ▲")
            for h in self.grid(tab).shown_headers
            if h.strip() and h != "#"  # the mark column; # is the order as read
        ]
        if not headers:
            return
        current = self.sort.get(tab)
        if current is None or current[0] not in headers:
            new: tuple[str, bool] | None = (headers[0], False)
        elif not current[1]:
            new = (current[0], True)
        else:
            at = headers.index(current[0]) + 1
            new = (headers[at], False) if at < len(headers) else None
        self.sort[tab] = new
        if new is None:
            text = "in the order read (newest first)" if tab == "runs" else "unsorted"
        else:
            order = "smallest (Z-A) first" if new[1] else "largest (A-Z) first"
            text = f"sorted by {new[0]}, {order}: s again {'goes on' if new[1] else 'reverses'}"
        self.post_message(Notice(text, subject=f"sort {tab}"))
        self.redraw(tab)

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by it; a second click reverses."""
        tab = self.active_tab
        header = str(event.label.plain).removesuffix(" ▼").removesuffix(" ▲")
        if not header.strip() or header == "#":
            return
        current = self.sort.get(tab)
        reverse = current is not None and current[0] == header and not current[1]
        self.sort[tab] = (header, reverse)
        self.redraw(tab)

    def action_searches(self) -> None:
        self.post_message(OpenSearches())

    def action_quit(self) -> None:
        self.post_message(QuitRequested())


def where_problem(exc: WhereError) -> str:
    """A filter expression's error on one line: the column and what was expected."""
    return f"column {exc.column}: {exc.reason}"
