"""Screens pushed over the main view: experiment, run, diff, queue dialog, help, quit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from mnist_tui.config.spec import ExperimentSpec, flatten
from mnist_tui.runs.store import RunInfo
from mnist_tui.studies.catalog import Subject
from mnist_tui.studies.diff import MISSING, diff_definitions, result_deltas
from mnist_tui.views import fmt
from mnist_tui.views import pictures as plots
from mnist_tui.views.render import status_text

if TYPE_CHECKING:
    from mnist_tui.tui.app import MnistTuiApp


class QueueDialog(ModalScreen[list[str] | None]):
    """Ask for overrides before queueing; returns the list (maybe empty) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Queue {', '.join(self.names)}")
            yield Label("Overrides, space separated (e.g. train.epochs=3 optim.lr=0.01):")
            yield Input(placeholder="key=value ...", id="overrides")
            yield Static("", id="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Queue", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        overrides = text.split() if text else []
        error = self.app.check_overrides(self.names, overrides)  # type: ignore[attr-defined]
        if error:
            self.query_one("#dialog-error", Static).update(Text(error, style="red"))
            return
        self.dismiss(overrides)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QuitDialog(ModalScreen[str]):
    """Runs are in flight: keep them going in the background, kill them, or stay."""

    BINDINGS = [
        Binding("k", "choose('keep')", "Keep running"),
        Binding("x", "choose('kill')", "Kill runs"),
        Binding("escape", "choose('stay')", "Stay"),
    ]

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.n} run(s) are training or queued.")
            yield Label("k: quit and keep them running (re-attached when you reopen)")
            yield Label("x: quit and kill them    esc: stay")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Keep running", variant="primary", id="keep")
                yield Button("Kill runs", variant="error", id="kill")
                yield Button("Stay", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_choose(self, what: str) -> None:
        self.dismiss(what)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(self.text, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)


class ExperimentScreen(Screen[None]):
    """An experiment's resolved definition (inherited keys marked) and its runs."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "queue", "Queue"),
    ]

    def __init__(self, spec: ExperimentSpec, runs: list[RunInfo]) -> None:
        super().__init__()
        self.spec = spec
        self.runs = runs

    def compose(self) -> ComposeResult:
        s = self.spec
        lineage = f"  extends {' → '.join(s.lineage)}" if s.lineage else ""
        ref = s.reference
        reported = (
            f"reported ({ref.at}): test acc {fmt.pct(ref.test_accuracy)}, loss "
            f"{fmt.num(ref.test_loss)}"
            + (f", hardest {ref.hardest_class}" if ref.hardest_class else "")
        )
        yield Static(
            Text.assemble((s.name, "bold"), f"  {s.description}{lineage}\n{reported}"),
            id="exp-header",
        )
        table: DataTable[Any] = DataTable(id="spec-table", cursor_type="row")
        yield table
        runs: DataTable[Any] = DataTable(id="exp-runs", cursor_type="row")
        yield runs
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#spec-table", DataTable)
        table.add_columns("key", "value", "")
        for key, value in flatten(self.spec.definition()).items():
            inherited = key in self.spec.inherited
            style = "dim" if inherited else "bold"
            table.add_row(
                Text(key, style=style),
                Text(fmt.value(value), style=style),
                Text("inherited" if inherited else "set here", style="dim"),
            )
        runs = self.query_one("#exp-runs", DataTable)
        runs.add_columns("run", "status", "seed", "epochs", "test acc", "best", "duration")
        for r in self.runs:
            runs.add_row(
                r.id,
                r.status,
                str(r.seed),
                str(r.summary.get("epochs_done", 0)),
                fmt.pct(r.final("test_acc")),
                fmt.pct(r.best("test_acc")),
                fmt.seconds(r.duration()),
                key=r.id,
            )
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "exp-runs" and event.row_key.value:
            self.app.open_run(str(event.row_key.value))  # type: ignore[attr-defined]

    def action_queue(self) -> None:
        self.app.queue_experiments([self.spec.name])  # type: ignore[attr-defined]


class SamplesScreen(Screen[None]):
    """Test images drawn in half blocks with predicted and true labels (mistakes in red)."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "toggle_mistakes", "Mistakes only"),
        Binding("n", "next_sample", "Other images"),
    ]

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run
        self.mistakes = False
        self.seed = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="samples-header")
        with VerticalScroll():
            yield Static("", id="samples")
        yield Footer()

    def on_mount(self) -> None:
        self.draw()

    def draw(self) -> None:
        from mnist_tui.errors import MnistTuiError
        from mnist_tui.studies.predictions import predict_samples

        app: MnistTuiApp = self.app  # type: ignore[assignment]
        per_row = max(1, (self.size.width or 120) // 31)
        try:
            picked = predict_samples(
                self.run,
                count=per_row * 2,
                mistakes_only=self.mistakes,
                seed=self.seed,
                data_dir=app.runner.data_dir,
            )
        except MnistTuiError as exc:
            self.query_one("#samples", Static).update(Text(str(exc), style="red"))
            return
        self.query_one("#samples-header", Static).update(
            f"{self.run.experiment}/{self.run.id}: best checkpoint, test accuracy "
            f"{fmt.pct(picked.accuracy)}" + ("  (mistakes only)" if self.mistakes else "")
        )
        self.query_one("#samples", Static).update(
            plots.sample_grid(
                picked.images, picked.predicted, picked.true, picked.classes, per_row=per_row
            )
        )

    def action_toggle_mistakes(self) -> None:
        self.mistakes = not self.mistakes
        self.draw()

    def action_next_sample(self) -> None:
        self.seed += 1
        self.draw()


class SearchScreen(Screen[None]):
    """Hyper-parameter searches in this run store: trials, history, importances."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("", id="search-body")
        yield Footer()

    def on_mount(self) -> None:
        from rich.console import Group
        from rich.table import Table

        from mnist_tui.studies.tune import read_studies

        app: MnistTuiApp = self.app  # type: ignore[assignment]
        studies = read_studies(app.store)
        if not studies:
            self.query_one("#search-body", Static).update(
                "No searches in this run store yet: mnist-tui tune EXPERIMENT --trials N"
            )
            return
        parts: list[Any] = []
        width = max((self.size.width or 100) - 4, 40)
        for st in studies:
            t = Table(
                title=f"study {st.name} ({st.direction}), best {fmt.num(st.best_value)}",
                title_justify="left",
            )
            for col in ("trial", "state", "value", "run", "params"):
                t.add_column(col)
            for tr in st.trials:
                t.add_row(
                    str(tr["number"]),
                    tr["state"],
                    fmt.num(tr["value"]),
                    tr["run"] or "",
                    "  ".join(f"{k}={fmt.value(v)}" for k, v in tr["params"].items()),
                )
            parts.append(t)
            history = [
                {"epoch": tr["number"] + 1, "v": tr["value"]}
                for tr in st.trials
                if tr["value"] is not None
            ]
            parts.append(
                Text.from_ansi(
                    plots.curves(
                        [("value", history, "v")],
                        title="search history",
                        width=width,
                        height=10,
                        xlabel="trial",
                    )
                )
            )
            if st.importances:
                parts.append(
                    Text(
                        "parameter importances\n"
                        + "\n".join(
                            f"{k:<24} {v:5.3f} {'█' * round(v * 30)}"
                            for k, v in st.importances.items()
                        )
                    )
                )
        self.query_one("#search-body", Static).update(Group(*parts))


class RunScreen(Screen[None]):
    """A run, live or finished: curves, learning rate, per-class bars, confusion, log."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "cancel", "Cancel run"),
        Binding("p", "samples", "Pictures"),
    ]

    def action_samples(self) -> None:
        self.app.push_screen(SamplesScreen(self.run))

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run
        self.seen: tuple[int, str] = (-1, "")

    def compose(self) -> ComposeResult:
        yield Static("", id="run-header")
        with Horizontal(id="plots"):
            yield Static("", id="loss-plot", classes="plot")
            yield Static("", id="acc-plot", classes="plot")
        with Horizontal(id="run-side"):
            yield Static("", id="class-bars", classes="side-box")
            yield Static("", id="confusion", classes="side-box")
        yield Static("", id="run-log")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_run()
        self.set_interval(1.0, self.refresh_run)

    def on_resize(self) -> None:
        self.seen = (-1, "")
        self.refresh_run()

    def refresh_run(self) -> None:
        app: MnistTuiApp = self.app  # type: ignore[assignment]
        fresh = app.store.read_run(self.run.experiment, self.run.id)
        if fresh is not None:
            self.run = fresh
        rows = self.run.metrics()
        status = self.run.status
        s = self.run.summary
        done, total = s.get("epochs_done", len(rows)), s.get("epochs", "?")
        eta = ""
        if status == "running" and rows and isinstance(total, int):
            per = sum(r["seconds"] for r in rows) / len(rows)
            eta = f"  ETA {fmt.seconds(per * (total - len(rows)))}"
        lr = f"  lr {rows[-1]['lr']:.3g}" if rows else ""
        if status == "running" and s.get("steps") and s.get("epoch_in_progress", 0) > len(rows):
            lr += f"  epoch {s['epoch_in_progress']} step {s.get('step')}/{s['steps']}"
        last = rows[-1] if rows else {}
        best_row = next((r for r in rows if r["epoch"] == s.get("best_epoch")), None)
        best_acc = best_row["test_acc"] if best_row else self.run.best("test_acc")
        header = Text.assemble(
            (f"{self.run.experiment}/{self.run.id}", "bold"),
            "  ",
            status_text(status),
            f"  epoch {done}/{total}{eta}{lr}  seed {s.get('seed')}  {s.get('device', '')}",
            f"\ntest acc {fmt.pct(last.get('test_acc'))}  best {fmt.pct(best_acc)}"
            f" (epoch {s.get('best_epoch', '—')})  train loss {fmt.num(last.get('train_loss'))}",
            (f"\n{s.get('reason')}" if s.get("reason") else "", "red"),
        )
        self.query_one("#run-header", Static).update(header)
        key = (len(rows), status)
        if key == self.seen:
            return  # nothing new: no redraw, no flicker
        self.seen = key
        self.draw(rows)

    def draw(self, rows: list[dict[str, Any]]) -> None:
        loss_w = self.query_one("#loss-plot", Static)
        w, h = max(loss_w.size.width, 30), max(loss_w.size.height, 8)
        label = self.run.experiment
        loss = plots.curves(
            [("train", rows, "train_loss"), ("val", rows, "val_loss"), ("test", rows, "test_loss")],
            title=f"{label}: loss",
            width=w,
            height=h,
        )
        acc = plots.curves(
            [("train", rows, "train_acc"), ("val", rows, "val_acc"), ("test", rows, "test_acc")],
            title="accuracy %",
            width=w,
            height=h,
            percent=True,
        )
        loss_w.update(Text.from_ansi(loss))
        self.query_one("#acc-plot", Static).update(Text.from_ansi(acc))
        s = self.run.summary
        classes = s.get("classes") or []
        per_class = s.get("per_class_acc") or (rows[-1].get("test_per_class") if rows else [])
        if not classes and per_class:
            classes = [str(i) for i in range(len(per_class))]
        self.query_one("#class-bars", Static).update(
            "per-class test accuracy\n" + plots.class_bars(classes, per_class or [], 20)
        )
        self.query_one("#confusion", Static).update(
            "confusion (rows true)\n"
            + plots.confusion_text(
                classes, s.get("confusion") or (rows[-1].get("test_confusion") if rows else [])
            )
        )
        log_path = self.run.path / "log.txt"
        tail = ""
        if log_path.is_file():
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-6:])
        self.query_one("#run-log", Static).update(Text(tail))

    def action_cancel(self) -> None:
        self.app.cancel_run(self.run.id)  # type: ignore[attr-defined]


class DiffScreen(Screen[None]):
    """Two experiments or runs: changed keys (toggle all), figure deltas, curves overlaid."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "toggle_all", "All keys"),
    ]

    def __init__(self, a: Subject, b: Subject) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.show_all = False

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(
                ("diff ", "bold"),
                f"{self.a.label} ({self.a.kind}) → {self.b.label} ({self.b.kind})",
            ),
            id="diff-header",
        )
        with VerticalScroll():
            yield DataTable(id="diff-keys", cursor_type="row")
            yield DataTable(id="diff-figures", cursor_type="row")
            yield Static("", id="diff-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.fill()

    def fill(self) -> None:
        keys = self.query_one("#diff-keys", DataTable)
        keys.clear(columns=True)
        keys.add_columns("key", self.a.label, self.b.label)
        changes = diff_definitions(
            self.a.spec.definition(), self.b.spec.definition(), include_same=self.show_all
        )
        for c in changes:
            style = "bold" if c.changed else "dim"
            keys.add_row(
                Text(c.key, style=style),
                Text("(absent)" if c.a is MISSING else fmt.value(c.a), style=style),
                Text("(absent)" if c.b is MISSING else fmt.value(c.b), style=style),
            )
        if not changes:
            keys.add_row("definitions are identical", "", "")
        figs = self.query_one("#diff-figures", DataTable)
        figs.clear(columns=True)
        figs.add_columns("figure", self.a.label, self.b.label, "Δ")
        for d in result_deltas(self.a.results(), self.b.results()):
            is_acc = "acc" in d.label
            show = fmt.pct if is_acc else fmt.num
            delta = "—" if d.delta is None else (fmt.pp(d.delta) if is_acc else f"{d.delta:+.4f}")
            figs.add_row(d.label, show(d.a), show(d.b), delta)
        for s in (self.a, self.b):
            if s.run is not None:
                figs.add_row(
                    f"best epoch ({s.label})", str(s.run.summary.get("best_epoch", "—")), "", ""
                )
        series = []
        for s in (self.a, self.b):
            if s.run is not None:
                rows = s.run.metrics()
                series.append((f"{s.label} test acc", rows, "test_acc"))
        plot = self.query_one("#diff-plot", Static)
        if series:
            text = plots.curves(
                series,
                title="test accuracy %",
                width=max(self.size.width - 4, 40),
                height=14,
                percent=True,
            )
            plot.update(Text.from_ansi(text))
        else:
            plot.update("")

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.fill()
