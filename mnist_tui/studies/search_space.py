"""The experiment's `[search]` space as Optuna sees it: suggesting a value, decoding a stored
one, and writing a value as an override (`-S key=<TOML>`)."""

from __future__ import annotations

from typing import Any

import tomli_w

from mnist_tui.config.spec import SearchParam


def _labels(p: SearchParam) -> dict[Any, Any]:
    """Optuna stores scalar choices; list choices (model.hidden) go by their TOML text."""
    return {(toml_value(c) if isinstance(c, list) else c): c for c in p.choices}


def decode(p: SearchParam, raw: Any) -> Any:
    return _labels(p).get(raw, raw) if p.choices else raw


def suggest(trial: Any, p: SearchParam) -> Any:
    if p.choices:
        return decode(p, trial.suggest_categorical(p.key, list(_labels(p))))
    if p.integer:
        return trial.suggest_int(p.key, int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
    return trial.suggest_float(p.key, float(p.low), float(p.high), log=p.log)  # type: ignore[arg-type]


def toml_value(v: Any) -> str:
    return tomli_w.dumps({"v": v}).split("=", 1)[1].strip()
