"""What may name an experiment: its file's stem and its runs' directory (one rule for both).

A leaf: the run store (runs/record.py) checks directory names with the same rule without
importing the rest of the config layer.
"""

from __future__ import annotations

import re

EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
NAME_RULE = "use letters, digits, '_', '.', '-' (at most 128, starting with a letter or digit)"


def name_problem(name: str) -> str | None:
    """Why `name` cannot name its runs' directory, or None.

    Only training needs that: an experiment file of any name (Hangul, accents, 200
    characters) is listed, shown, diffed and extended; `check_runnable` refuses to train
    it, naming this rule."""
    if EXPERIMENT_NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 60 else name[:60] + "…"
    return f"'{shown}' cannot name a run directory: {NAME_RULE}"
