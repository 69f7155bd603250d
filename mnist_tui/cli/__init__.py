"""The command line: parses arguments, calls the core, prints. `main` is the entry point."""

from mnist_tui.cli.app import app, main

__all__ = ["app", "main"]
