"""The console's screens, one module per area; none imports the app (they post messages)."""

from mnist_tui.tui.screens.dialogs import ConfirmStop, QueueDialog, QuitDialog
from mnist_tui.tui.screens.diff import DiffScreen, OverlayScreen
from mnist_tui.tui.screens.experiment import ExperimentScreen
from mnist_tui.tui.screens.help import HelpScreen
from mnist_tui.tui.screens.main import MainScreen
from mnist_tui.tui.screens.run import RunScreen
from mnist_tui.tui.screens.samples import SamplesScreen
from mnist_tui.tui.screens.searches import SearchScreen

__all__ = [
    "ConfirmStop",
    "DiffScreen",
    "ExperimentScreen",
    "HelpScreen",
    "MainScreen",
    "OverlayScreen",
    "QueueDialog",
    "QuitDialog",
    "RunScreen",
    "SamplesScreen",
    "SearchScreen",
]
