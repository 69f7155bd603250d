"""Why a run's result looks the way it does, when the cause is known: a run that ends at
chance level says so, and names the cause where the definition shows it (read-only: no
torch, no user code)."""

from __future__ import annotations

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.runs.record import RunInfo
from mnist_tui.status import RunStatus

CHANCE_FACTOR = 1.5  # at most 1.5x the accuracy of guessing counts as chance level


def chance_note(spec: ExperimentSpec | None, run: RunInfo) -> str:
    """ "" unless the run ended with its test accuracy at chance level; then what is
    known of why (Keras batch-norm momentum after few steps), or that it is not known."""
    acc = run.final("test_acc")
    classes = len(run.summary.get("classes") or []) or 10
    if (
        not isinstance(acc, float)
        or run.status != RunStatus.COMPLETED
        or acc > CHANCE_FACTOR / classes
    ):
        return ""
    said = f"test accuracy {100 * acc:.2f}% is chance level ({100 / classes:.0f}% guesses)"
    params = spec.model.params if spec is not None else {}
    if params.get("defaults") == "keras" and params.get("batch_norm"):
        epochs, steps = run.epochs_done, run.summary.get("steps") or 0
        after = f"after {epochs * steps:,} steps " if epochs and steps else ""
        return (
            f"{said}: Keras batch-norm momentum (0.99) moves the running statistics that "
            f"evaluation uses slowly, and {after}they have not caught up. Train longer "
            "(more epochs or images), or use PyTorch's momentum: -S model.defaults=pytorch"
        )
    if spec is None:
        return said
    return f"{said}; no known cause in its definition: look at its loss curve and learning rate"
