"""Finding and reading experiment files: TOML, `extends`, overrides."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mnist_tui.config.override_conflicts import Setting, check_overrides, leaves
from mnist_tui.config.schema import brief, show
from mnist_tui.config.spec import NOT_INHERITED, ExperimentSpec, flatten
from mnist_tui.config.validate import validate_raw
from mnist_tui.errors import Problems, SpecError, SpecProblem, did_you_mean
from mnist_tui.user_models import model_catalog, snapshot_catalog, snapshot_source

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
NAME_RULE = "use letters, digits, '_', '.', '-' (at most 128, starting with a letter or digit)"


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


def name_problem(name: str) -> str | None:
    """Why `name` cannot name its runs' directory, or None.

    Only training needs that: an experiment file of any name (Hangul, accents, 200
    characters) is listed, shown, diffed and extended; `check_runnable` refuses to train
    it, naming this rule."""
    if EXPERIMENT_NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 60 else name[:60] + "…"
    return f"'{shown}' cannot name a run directory: {NAME_RULE}"


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


def natural_key(name: str) -> list[Any]:
    """Sort task2 before task10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


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


MAX_DEPTH = 32  # tables and lists inside one another; experiment files need about 6
MAX_DOTS_PER_LINE = 2 * MAX_DEPTH  # key dots on one line; a real file's longest key has 3


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
    return parse_toml(text, where)


# What can hide a dot: strings (multi-line first), comments, numbers; then newlines, dots.
_TOKENS = re.compile(
    "|".join(
        [
            r'"""(?:[^"\\]|\\.|"(?!""))*"""',
            r"'''.*?'''",
            r'"(?:[^"\\\n]|\\.)*"',
            r"'[^'\n]*'",
            r"#[^\n]*",
            r"\d[\d_]*\.\d",  # a decimal point (floats, seconds of a time) is no key's dot
            r"\n",
            r"\.",
        ]
    ),
    re.DOTALL,
)


def _dots_per_line(text: str) -> tuple[int, int]:
    """The most dots outside strings, comments and numbers on one line, and that line.

    A dotted key of n parts costs tomllib time and memory in n squared (20,000 parts:
    gigabytes), so a line with more key dots than that is refused before parsing;
    what one line can cost is then bounded, and parsing stays linear in the file."""
    most, most_line, line, count = 0, 0, 1, 0
    for m in _TOKENS.finditer(text):
        token = m.group()
        if token == ".":
            count += 1
            if count > most:
                most, most_line = count, line
        elif token == "\n":
            line, count = line + 1, 0
        else:
            line += token.count("\n")
    return most, most_line


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether tables/lists nest deeper than `limit` (without recursion)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return False


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """TOML text to a table, or a SpecError naming `where`; nothing in it can make this
    recurse without bound or take more than linear time."""
    deep = f"tables and lists nested more than {MAX_DEPTH} levels deep (experiments need about 6)"
    if text.count(".") > MAX_DOTS_PER_LINE:
        most, line = _dots_per_line(text)
        if most > MAX_DOTS_PER_LINE:
            raise SpecError(
                [SpecProblem(where, "", f"line {line}: more than {MAX_DOTS_PER_LINE} dots in keys")]
            )
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([SpecProblem(where, "", f"not valid TOML: {exc}")]) from None
    except RecursionError:
        raise SpecError([SpecProblem(where, "", deep)]) from None
    if _too_deep(doc):
        raise SpecError([SpecProblem(where, "", deep)])
    return doc


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
            if k in base:  # what this replaces was set elsewhere: forget where
                origins.pop(key, None)
                if isinstance(base[k], dict):
                    for old in flatten(base[k], key + "."):
                        origins.pop(old, None)
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
        _merge(merged, layer, origins, _display(file))
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


# Keys an override cannot change: they are settled before overrides apply.
NOT_OVERRIDABLE = {
    "extends": "the parent is read before overrides apply; write a file that extends "
    "it, or run the parent with your changes as -S",
    "name": "an experiment is named by its file; copy the file to make another",
}


def override_source(text: str) -> str:
    """How messages name an override: `-S optim.lr=0.1` (a pasted novel cut short)."""
    return f"-S {text}" if len(text) <= 120 else f"-S {text[:100]}… ({len(text):,} characters)"


def override_leaves(text: str) -> list[Setting]:
    """The keys one `-S KEY=VALUE` sets (a table sets each of its keys); SpecError if it
    is not an override."""
    parts, value = _override_path(text)
    return leaves(parts, value, override_source(text))


def _override_path(text: str) -> tuple[list[str], Any]:
    """`optim.lr=0.01` -> (["optim", "lr"], 0.01). Keys and values are TOML (quoted keys
    included); a value that is not TOML is a string, so `optim.name=sgd` works."""
    source = override_source(text)
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise SpecError([SpecProblem(source, "", "expected KEY=VALUE, e.g. -S optim.lr=0.01")])
    if key.count(".") > MAX_DEPTH:
        raise SpecError([SpecProblem(source, "", f"a key nested more than {MAX_DEPTH} deep")])
    try:
        doc: Any = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        raise SpecError(
            [SpecProblem(source, "", f"{brief(key)} is not a key such as optim.lr")]
        ) from None
    parts: list[str] = []
    while isinstance(doc, dict):
        part, doc = next(iter(doc.items()))
        parts.append(part)
    try:
        parsed = parse_toml(f"v = {value}", source)
    except SpecError as exc:
        if "nested" in str(exc) or "dots in keys" in str(exc):
            raise
        return parts, value
    if list(parsed) != ["v"]:  # `1\n[train]\nepochs = 5` smuggles in more keys
        raise SpecError([SpecProblem(source, "", "expected one value, not more lines of TOML")])
    return parts, parsed["v"]


def parse_override(text: str) -> tuple[str, Any]:
    """`optim.lr=0.01` -> ("optim.lr", 0.01); values are TOML, bare words are strings."""
    parts, value = _override_path(text)
    return ".".join(parts), value


def _sets_model_name(parts: list[str], value: Any) -> bool:
    return parts == ["model", "name"] or (
        parts == ["model"] and isinstance(value, dict) and "name" in value
    )


def apply_overrides(raw: dict[str, Any], origins: dict[str, str], overrides: list[str]) -> None:
    """Apply `-S KEY=VALUE` overrides as one more layer over the files.

    They merge the way a child file does: a table merges key by key, and another model
    name drops the model parameters the files set (an override's own model keys stay,
    in whatever order they were given)."""
    problems = Problems()
    parsed = []
    for text in overrides:
        try:
            parts, value = _override_path(text)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if parts[0] in NOT_OVERRIDABLE:
            problems.at(parts[0], override_source(text)).add(
                f"cannot be overridden: {NOT_OVERRIDABLE[parts[0]]}"
            )
            continue
        parsed.append((text, parts, value))
    problems.raise_if_any()
    # before merging: a later override would hide an earlier one it contradicts
    check_overrides([s for t, p, v in parsed for s in leaves(p, v, override_source(t))])
    parsed.sort(key=lambda t: not _sets_model_name(t[1], t[2]))  # stable: a new model first
    for text, parts, value in parsed:
        layer: Any = value
        for part in reversed(parts):
            layer = {part: layer}
        _merge(raw, layer, origins, override_source(text))


# a dotted TOML key: bare or quoted parts (`search.params."optim.lr".low`)
_OVERRIDE_KEY = re.compile(r"""(?:[\w-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[\w-]+|"[^"]*"|'[^']*'))*""")
_OVERRIDE_START = re.compile(_OVERRIDE_KEY.pattern + r"\s*=")


def split_overrides(line: str) -> list[str]:
    """A line of overrides as typed in one text box, split into `KEY=VALUE` items.

    Values may hold spaces: `model.hidden=[8, 8] optim.lr=0.1` is two items, and so is
    `description=two words train.epochs=3`; a new item starts only at `key=`, outside
    brackets and quotes."""
    chunks: list[str] = []
    current, depth, quote = "", 0, ""
    for ch in line:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote, current = ch, current + ch
        elif ch in "[{":
            depth, current = depth + 1, current + ch
        elif ch in "]}":
            depth, current = max(depth - 1, 0), current + ch
        elif ch.isspace() and depth == 0:
            if current:
                chunks.append(current)
            current = ""
        else:
            current += ch
    if current:
        chunks.append(current)
    items: list[str] = []
    for i, chunk in enumerate(chunks):
        followed_by_equals = i + 1 < len(chunks) and chunks[i + 1].startswith("=")
        starts_item = _OVERRIDE_START.match(chunk) is not None or (
            followed_by_equals and _OVERRIDE_KEY.fullmatch(chunk) is not None
        )
        if items and (chunk.startswith("=") or (items[-1].endswith("=") and not starts_item)):
            items[-1] += chunk  # `key = value` typed with spaces
        elif items and not starts_item:
            items[-1] += " " + chunk  # more of the value: `description=two words`
        else:
            items.append(chunk)
    return items
