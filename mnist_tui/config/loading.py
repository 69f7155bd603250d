"""Finding and reading experiment files: TOML, `extends`, overrides."""

from __future__ import annotations

import copy
import dataclasses
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mnist_tui.config.names import name_problem
from mnist_tui.config.overrides import apply_overrides
from mnist_tui.config.schema import brief, show
from mnist_tui.config.spec import NOT_INHERITED, ExperimentSpec, flatten
from mnist_tui.config.toml_layers import merge, parse_toml
from mnist_tui.config.validate import validate_raw
from mnist_tui.errors import SpecError, SpecProblem, did_you_mean, natural_key
from mnist_tui.user_models import model_catalog, snapshot_catalog, snapshot_source

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def shipped_experiments_dir() -> Path | None:
    """The experiments that come with the package.

    Inside it (mnist_tui/experiments/) when installed from a wheel, where setup.py's
    build step puts them; the checkout's experiments/ in a source tree (an editable
    install), which stays their single source."""
    inside = PACKAGE_DIR / "experiments"
    if inside.is_dir():
        return inside
    checkout = PACKAGE_DIR.parent / "experiments"
    if checkout.is_dir() and (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return checkout
    return None


def default_experiments_dir() -> Path:
    """The user's experiments: `MNIST_TUI_EXPERIMENTS`, else ./experiments.

    It need not exist; the shipped experiments are always there beneath it."""
    env = os.environ.get("MNIST_TUI_EXPERIMENTS")
    return Path(env) if env else Path.cwd() / "experiments"


@dataclass(frozen=True)
class ExperimentSource:
    """Where the experiment of one name comes from.

    `origin` is "shipped" (comes with the package) or "user" (the experiments
    directory); a user file with a shipped name hides the shipped one, and `shadows`
    is then the hidden file. `problem` says why the entry cannot be loaded (a name no
    run directory can have, a broken symlink, a directory) - a listing shows it as an
    error row."""

    name: str
    path: Path
    origin: Literal["shipped", "user"]
    shadows: Path | None = None
    problem: str | None = None

    @property
    def shadowed(self) -> bool:
        """Whether this file hides a shipped experiment of the same name."""
        return self.shadows is not None


def check_runnable(spec: ExperimentSpec) -> None:
    """Refuse, before any work, to train an experiment whose name no run directory can
    have (its runs could not be stored or found again)."""
    problem = name_problem(spec.name)
    if problem is None:
        return
    raise SpecError(
        [
            SpecProblem(
                f"{spec.name}.toml",
                "",
                f"{problem}. It can be listed, shown and diffed, but not trained: copy it "
                "to a file with such a name (e.g. extends = the old name) to train it",
            )
        ]
    )


def _entry_problem(path: Path) -> str | None:
    """Why a directory entry named *.toml is not a readable file, or None."""
    try:
        st = path.stat()  # follows symlinks
    except OSError as exc:
        if path.is_symlink():
            if exc.errno == errno.ELOOP:
                return "a symlink loop; skipped"
            return f"a broken symlink (to {os.readlink(path)}); skipped"
        return f"cannot read: {exc.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not an experiment file; skipped"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file; skipped"
    return None


def _scan(directory: Path, origin: Literal["shipped", "user"]) -> list[ExperimentSource]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:  # missing or unreadable: it holds no experiments
        return []
    out = []
    for entry in entries:
        if not entry.name.endswith(".toml") or entry.name.startswith("."):
            continue
        path = directory / entry.name
        name = entry.name.removesuffix(".toml")
        problem = _entry_problem(path)  # any name is shown; only `run` wants name_problem
        out.append(ExperimentSource(name, path, origin, problem=problem))
    return out


def _same_dir(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def experiment_layers(experiments_dir: Path | None = None) -> list[Path]:
    """The directories searched for names, lowest first: the shipped set, then the user's."""
    user = experiments_dir if experiments_dir is not None else default_experiments_dir()
    shipped = shipped_experiments_dir()
    if shipped is None or _same_dir(shipped, user):
        return [user] if shipped is None else [shipped]
    return [shipped, user]


def experiment_sources(experiments_dir: Path | None = None) -> dict[str, ExperimentSource]:
    """Every experiment by name, the user's directory over the shipped set, sorted.

    In a checkout (the working directory the repository) both are experiments/, and
    every experiment is "shipped"."""
    layers = experiment_layers(experiments_dir)
    shipped = shipped_experiments_dir()
    found: dict[str, ExperimentSource] = {}
    for directory in layers:
        origin: Literal["shipped", "user"] = (
            "shipped" if shipped is not None and directory == shipped else "user"
        )
        for src in _scan(directory, origin):
            below = found.get(src.name)
            if below is not None:
                src = dataclasses.replace(src, shadows=below.path)
            found[src.name] = src
    return {n: found[n] for n in sorted(found, key=natural_key)}


def experiment_names(experiments_dir: Path | None = None) -> list[str]:
    """Every experiment name (broken entries included: loading one says what is wrong)."""
    return list(experiment_sources(experiments_dir))


def _display(path: Path) -> str:
    """The path as the user would write it: relative to here when below it, symlinks kept."""
    absolute = os.path.abspath(path)
    try:
        return str(Path(absolute).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _where(layers: list[Path]) -> str:
    shipped = shipped_experiments_dir()
    words = [
        "the shipped experiments" if d == shipped and len(layers) > 1 else _display(d)
        for d in reversed(layers)
    ]
    return " or ".join(words)


def find_experiment(
    ref: str,
    experiments_dir: Path | None = None,
    relative_to: Path | None = None,
    *,
    shipped_only: bool = False,
) -> Path:
    """Resolve an experiment name or TOML path to a file, or raise SpecError.

    A name is looked up in the user's directory, then the shipped set (`shipped_only`:
    the shipped set alone, for a shipped file's own `extends`)."""
    looks_like_path = ref.endswith(".toml") or "/" in ref or os.sep in ref
    if looks_like_path:
        path = Path(ref)
        if not path.is_absolute() and relative_to is not None and not os.path.lexists(path):
            path = relative_to / path
        if not os.path.lexists(path):
            raise SpecError([SpecProblem(ref, "", "no such experiment file")])
        problem = _entry_problem(path)
        if problem:
            raise SpecError([SpecProblem(_display(path), "", problem.removesuffix("; skipped"))])
        return path
    shipped = shipped_experiments_dir()
    if shipped_only:
        layers = [shipped] if shipped is not None else []
    else:
        layers = experiment_layers(experiments_dir)
    for directory in reversed(layers):  # the user's first: it shadows the shipped set
        path = directory / f"{ref}.toml"
        if os.path.lexists(path):
            problem = _entry_problem(path)
            if problem:
                raise SpecError(
                    [SpecProblem(_display(path), "", problem.removesuffix("; skipped"))]
                )
            return path
    names = [s.name for d in layers for s in _scan(d, "user")]
    hint = did_you_mean(ref, names)
    raise SpecError(
        [SpecProblem("", "", f"no experiment named '{ref}' in {_where(layers)}.{hint}")]
    )


# parsed files by their bytes: `extends` chains read a parent once per child (27 shipped
# experiments parse 102 files), and a console re-lists them; a copy is handed out, so a
# caller's merge never changes what is kept. Keyed by content, never stale.
_PARSED: dict[tuple[str, bytes], dict[str, Any]] = {}
_PARSED_MAX = 512


def _read_toml(path: Path) -> dict[str, Any]:
    where = _display(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError([SpecProblem(where, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a BOM, as Windows editors write
    except UnicodeDecodeError:
        raise SpecError([SpecProblem(where, "", "not a UTF-8 text file")]) from None
    kept = _PARSED.get((where, data))
    if kept is None:
        kept = parse_toml(text, where)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[(where, data)] = kept
    return copy.deepcopy(kept)


def load_experiment(
    ref: str,
    experiments_dir: Path | None = None,
    overrides: Iterable[str] = (),
) -> ExperimentSpec:
    """Load, merge (`extends`), override and validate one experiment."""
    experiments_dir = experiments_dir or default_experiments_dir()
    path = find_experiment(ref, experiments_dir)
    shipped = shipped_experiments_dir()
    chain: list[tuple[Path, dict[str, Any]]] = []
    seen: list[str] = []
    current: Path | None = path
    while current is not None:
        resolved = os.path.realpath(current)
        if resolved in seen:
            names = " -> ".join(Path(p).stem for p in [*seen, resolved])
            raise SpecError([SpecProblem(_display(path), "extends", f"cycle in extends: {names}")])
        seen.append(resolved)
        raw = _read_toml(current)
        stem = current.name.removesuffix(".toml")
        if "name" in raw and raw["name"] != stem:
            raise SpecError(
                [
                    SpecProblem(
                        _display(current),
                        "name",
                        f"{brief(raw['name'])} is not this file's name: an experiment is "
                        f"named by its file ('{stem}'); remove the key",
                    )
                ]
            )
        _anchor_dataset(raw, current)
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
            # a shipped file's parents are shipped ones: shadowing one file changes no other
            own_layer = shipped is not None and _same_dir(current.parent, shipped)
            try:
                current = find_experiment(
                    parent, experiments_dir, relative_to=current.parent, shipped_only=own_layer
                )
            except SpecError as exc:
                raise SpecError(
                    [
                        SpecProblem(
                            _display(current),
                            "extends",
                            (f"{p.source}: " if p.source else "") + p.message.rstrip("."),
                        )
                        for p in exc.problems
                    ]
                ) from None

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for i, (file, raw) in enumerate(reversed(chain)):
        own = i == len(chain) - 1
        layer = {k: v for k, v in raw.items() if own or k not in NOT_INHERITED}
        merge(merged, layer, origins, _display(file))
    merged.pop("extends", None)
    if chain[0][1].get("extends") is not None:
        merged["extends"] = chain[0][1]["extends"]
    merged["name"] = path.name.removesuffix(".toml")
    source = _display(path)
    own_keys = set(flatten(chain[0][1]))
    inherited = frozenset(k for k, src in origins.items() if src != source and k not in own_keys)
    apply_overrides(merged, origins, list(overrides))
    lineage = tuple(p.name.removesuffix(".toml") for p, _ in chain[1:])
    catalog = model_catalog(experiment_layers(experiments_dir))
    return validate_raw(merged, origins, source, lineage, inherited, catalog=catalog)


def _anchor_dataset(raw: dict[str, Any], file: Path) -> None:
    """A user dataset's path is relative to the file that names it: make it absolute, so
    a parent's data stays the parent's, and a queued run keeps pointing at it."""
    from mnist_tui.data.sources import resolve_path

    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("dataset"), str):
        data["dataset"] = resolve_path(data["dataset"], file.resolve().parent)


def load_spec_file(path: Path) -> ExperimentSpec:
    """Load a resolved spec written by `ExperimentSpec.to_toml` (a run's spec.toml)."""
    raw = _read_toml(path)
    raw.setdefault("name", path.parent.name)
    catalog = None
    if "model_source" in raw:  # a user's model: the run's own copy of its file
        recorded = raw.pop("model_source")
        catalog = snapshot_catalog(snapshot_source(path.parent, recorded, _display(path)))
    origins = {k: _display(path) for k in flatten(raw)}
    return validate_raw(raw, origins, _display(path), (), frozenset(), catalog=catalog)
