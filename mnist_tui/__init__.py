"""mnist-tui: a terminal experiment console for MNIST and Fashion-MNIST studies.

The package is a headless core (spec, data, models, train, store, diff, ...) with two
thin faces on top: the command line (`cli`) and the Textual app (`tui`). Nothing
outside `mnist_tui.tui` imports Textual.
"""

__version__ = "0.1.0"
