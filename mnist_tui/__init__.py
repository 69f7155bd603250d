"""mnist-tui: a terminal experiment console for MNIST and Fashion-MNIST studies.

Layers, lowest first; a layer imports only from layers above it in this list:

    errors             error types and "did you mean" (imports nothing of ours)
    models             the model registry (builders import torch when called)
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

__version__ = "0.2.0"
