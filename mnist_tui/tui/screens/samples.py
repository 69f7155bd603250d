"""Test images drawn in half blocks with predicted and true labels (mistakes in red).

Predicting loads the run's checkpoint with torch: a worker thread does it, so the
console keeps answering keys while torch imports and the test set is classified.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from mnist_tui.errors import MnistTuiError
from mnist_tui.runs.record import RunInfo
from mnist_tui.tui.messages import SamplesReady
from mnist_tui.tui.screens.base import ConsoleScreen
from mnist_tui.views import fmt, pictures


class SamplesScreen(ConsoleScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="samples.back"),
        Binding("m", "toggle_mistakes", "Mistakes only", id="samples.mistakes"),
        Binding("n", "next_sample", "Other images", id="samples.next"),
    ]

    def __init__(self, run: RunInfo, data_dir: Path | None) -> None:
        super().__init__()
        self.run = run
        self.data_dir = data_dir
        self.mistakes = False
        self.seed = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="samples-header")
        with VerticalScroll():
            yield Static("", id="samples")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.query_one("#samples-header", Static).update(
            f"{self.run.experiment}/{self.run.id}: predicting test images with the best checkpoint…"
        )
        per_row = max(1, (self.size.width or self.app.size.width) // 31)
        self.predict(per_row * 2, self.mistakes, self.seed)

    @work(thread=True, exclusive=True, group="predict", exit_on_error=False)
    def predict(self, count: int, mistakes: bool, seed: int) -> None:
        from mnist_tui.studies.predictions import predict_samples

        try:
            picked = predict_samples(
                self.run, count=count, mistakes_only=mistakes, seed=seed, data_dir=self.data_dir
            )
        except MnistTuiError as exc:
            self.post_message(SamplesReady(None, mistakes, seed, str(exc)))
            return
        self.post_message(SamplesReady(picked, mistakes, seed))

    @on(SamplesReady)
    def ready(self, event: SamplesReady) -> None:
        event.stop()
        if (event.mistakes, event.seed) != (self.mistakes, self.seed):
            return  # the user asked for other images meanwhile
        header = self.query_one("#samples-header", Static)
        if event.samples is None:
            header.update(Text(event.error, style="red"))
            self.query_one("#samples", Static).update("")
            return
        picked = event.samples
        header.update(
            f"{self.run.experiment}/{self.run.id}: best checkpoint, test accuracy "
            f"{fmt.pct(picked.accuracy)}" + ("  (mistakes only)" if self.mistakes else "")
        )
        per_row = pictures.images_per_row(picked.images, self.size.width or 120)
        self.query_one("#samples", Static).update(
            pictures.sample_grid(
                picked.images, picked.predicted, picked.true, picked.classes, per_row=per_row
            )
        )

    def action_toggle_mistakes(self) -> None:
        self.mistakes = not self.mistakes
        self.draw()

    def action_next_sample(self) -> None:
        self.seed += 1
        self.draw()
