"""mnist-tui: a terminal experiment console for MNIST and Fashion-MNIST studies.

Layers, lowest first; a layer imports only from layers above it in this list:

    errors             error types and "did you mean" (imports nothing of ours)
    status             a run's status, RunStatus (imports nothing of ours)
    fields             field constraints (Range, Length, Help) shared by models and config
    models             the model registry (builders import torch when called), and
                       user_models: a user's model files, described without running them
    config             experiment files: schema, loading, `extends`, overrides, validation
    data, train        datasets on the device; the training loop       (torch)
    runs               the run store, its index, the queue and worker   (no torch)
    studies            what people do with runs: run, repeat, cv, tune, report, diff
    views              formatting and tables shared by Rich and Textual (no torch)
    cli, tui           the two faces: parse/print, and the Textual console

Only `mnist_tui.tui` imports Textual, and `config`, `runs` and `views` never import torch
(tests/test_layers.py checks both), so read-only commands start fast. The order is also
an import-linter contract in pyproject.toml (`lint-imports`), with no import cycle
inside a package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnist_tui.fields import Help as Help
    from mnist_tui.fields import Length as Length
    from mnist_tui.fields import Range as Range
    from mnist_tui.models import register_model as register_model

__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    # `from mnist_tui import register_model, Range` in a user's model file; looked up lazily so
    # that importing the package stays cheap
    if name == "register_model":
        from mnist_tui.models import register_model

        return register_model
    if name in ("Help", "Length", "Range"):
        from mnist_tui import fields

        return getattr(fields, name)
    raise AttributeError(f"module 'mnist_tui' has no attribute {name!r}")
