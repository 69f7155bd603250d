"""Finding and reading experiment files: TOML, `extends`, overrides."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mnist_tui.config.schema import show
from mnist_tui.config.spec import NOT_INHERITED, ExperimentSpec, flatten
from mnist_tui.config.validate import validate_raw
from mnist_tui.errors import SpecError, SpecProblem, did_you_mean


def default_experiments_dir() -> Path:
    """`MNIST_TUI_EXPERIMENTS`, else ./experiments, else the one shipped beside the package."""
    env = os.environ.get("MNIST_TUI_EXPERIMENTS")
    if env:
        return Path(env)
    local = Path.cwd() / "experiments"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "experiments"


def experiment_names(experiments_dir: Path) -> list[str]:
    if not experiments_dir.is_dir():
        return []
    return sorted((p.stem for p in experiments_dir.glob("*.toml")), key=natural_key)


def natural_key(name: str) -> list[Any]:
    """Sort task2 before task10."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def find_experiment(ref: str, experiments_dir: Path, relative_to: Path | None = None) -> Path:
    """Resolve an experiment name or TOML path to a file, or raise SpecError."""
    looks_like_path = ref.endswith(".toml") or "/" in ref or os.sep in ref
    if looks_like_path:
        path = Path(ref)
        if not path.is_absolute() and relative_to is not None and not path.exists():
            path = relative_to / path
        if path.is_file():
            return path
        raise SpecError([SpecProblem(ref, "", "no such experiment file")])
    names = experiment_names(experiments_dir)
    if ref in names:
        return experiments_dir / f"{ref}.toml"
    hint = did_you_mean(ref, names)
    raise SpecError(
        [
            SpecProblem(
                "",
                "",
                f"no experiment named '{ref}' in {_display(experiments_dir)}.{hint}",
            )
        ]
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([SpecProblem(_display(path), "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise SpecError([SpecProblem(_display(path), "", "not a UTF-8 text file")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([SpecProblem(_display(path), "", f"not valid TOML: {exc}")]) from None


def _merge(
    base: dict[str, Any],
    top: Mapping[str, Any],
    origins: dict[str, str],
    source: str,
    prefix: str = "",
) -> None:
    """Deep-merge `top` into `base` in place, recording which file set each key."""
    for k, v in top.items():
        key = f"{prefix}{k}"
        replaces_model = (
            key == "model"
            and isinstance(v, Mapping)
            and isinstance(base.get(k), dict)
            and "name" in v
            and v["name"] != base[k].get("name")
        )
        if replaces_model:
            # another architecture: the parent's model parameters do not carry over
            for old in [o for o in origins if o.startswith("model.")]:
                del origins[old]
            base[k] = {}
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v, origins, source, key + ".")
        else:
            base[k] = dict(v) if isinstance(v, Mapping) else v
            for sub in flatten({k: v}, prefix) if isinstance(v, Mapping) else [key]:
                origins[sub] = source


def load_experiment(
    ref: str,
    experiments_dir: Path | None = None,
    overrides: Iterable[str] = (),
) -> ExperimentSpec:
    """Load, merge (`extends`), override and validate one experiment."""
    experiments_dir = experiments_dir or default_experiments_dir()
    path = find_experiment(ref, experiments_dir)
    chain: list[tuple[Path, dict[str, Any]]] = []
    seen: list[Path] = []
    current: Path | None = path
    while current is not None:
        resolved = current.resolve()
        if resolved in seen:
            names = " -> ".join(p.stem for p in [*seen, resolved])
            raise SpecError([SpecProblem(_display(path), "extends", f"cycle in extends: {names}")])
        seen.append(resolved)
        raw = _read_toml(current)
        chain.append((current, raw))
        parent = raw.get("extends")
        if parent is None:
            current = None
        elif not isinstance(parent, str) or not parent:
            raise SpecError(
                [
                    SpecProblem(
                        _display(current),
                        "extends",
                        f"expected the name of another experiment, got {show(parent)}",
                    )
                ]
            )
        else:
            try:
                current = find_experiment(parent, experiments_dir, relative_to=current.parent)
            except SpecError as exc:
                raise SpecError(
                    [
                        SpecProblem(_display(current), "extends", p.message.rstrip("."))
                        for p in exc.problems
                    ]
                ) from None

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for i, (file, raw) in enumerate(reversed(chain)):
        own = i == len(chain) - 1
        layer = {k: v for k, v in raw.items() if own or k not in NOT_INHERITED}
        _merge(merged, layer, origins, _display(file))
    merged["extends"] = chain[0][1].get("extends")
    merged["name"] = path.stem
    source = _display(path)
    own_keys = set(flatten(chain[0][1]))
    inherited = frozenset(k for k, src in origins.items() if src != source and k not in own_keys)
    apply_overrides(merged, origins, list(overrides))
    lineage = tuple(p.stem for p, _ in chain[1:])
    return validate_raw(merged, origins, source, lineage, inherited)


def load_spec_file(path: Path) -> ExperimentSpec:
    """Load a resolved spec written by `ExperimentSpec.to_toml` (a run's spec.toml)."""
    raw = _read_toml(path)
    raw.setdefault("name", path.parent.name)
    origins = {k: _display(path) for k in flatten(raw)}
    return validate_raw(raw, origins, _display(path), (), frozenset())


def parse_override(text: str) -> tuple[str, Any]:
    """`optim.lr=0.01` -> ("optim.lr", 0.01); values are TOML, bare words are strings."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(
            [SpecProblem(f"-S {text}", "", "expected KEY=VALUE, e.g. -S optim.lr=0.01")]
        )
    value = value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


def apply_overrides(raw: dict[str, Any], origins: dict[str, str], overrides: list[str]) -> None:
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        target = raw
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise SpecError([SpecProblem(f"-S {text}", key, f"'{part}' is not a table")])
            target = nxt
        target[parts[-1]] = value
        origins[key] = f"-S {text}"


# --------------------------------------------------------------------------- validation
