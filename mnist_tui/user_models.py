"""A user's own models: found, described without running them, and loaded from a snapshot.

Where models come from, in this order (a name defined twice is an error naming both):

1. the shipped builders (`mnist_tui.models`);
2. `models/*.py` beside the experiment files: the shipped experiments directory, then the
   user's (`--experiments-dir`, `MNIST_TUI_EXPERIMENTS` or ./experiments), which layers
   over it as for experiments (a user file of a shipped file's name hides it);
3. installed packages that declare the entry-point group `mnist_tui.models`, whose value
   names a module (`resnets = "my_pkg.models"`).

A model file registers builders with `mnist_tui.register_model`. Its source is what a run
copies into its directory (`model.py`, with its SHA-256 in spec.toml), and what is imported
is always the bytes that were hashed: a run trains its snapshot, never the file as edited
since.

What reading commands need of a file (each model's name, one-line doc and typed
parameters) is cached by the file's content hash in ``$XDG_CACHE_HOME/mnist-tui/
user-models.json``, so `list` and `show` never execute user code once a file was seen;
only building, checking and training a model import its file.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
import sys
import tempfile
import traceback
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from mnist_tui import models
from mnist_tui.errors import SpecError, SpecProblem
from mnist_tui.fields import Help, Length, Range

ENTRY_POINT_GROUP = "mnist_tui.models"
SNAPSHOT = "model.py"  # the copy of a user's model file in a run directory
CACHE_VERSION = 1
MAX_ENTRIES = 500  # the oldest go first


@dataclass(frozen=True)
class ModelSource:
    """One user model file: how the user knows it, and the exact bytes that were hashed.

    `path` is where it was read (the user's file, or a run's model.py); `module` is the
    module an entry point named, so a snapshot's relative imports still resolve."""

    file: str
    sha256: str
    path: Path = field(compare=False)
    text: bytes = field(compare=False, repr=False)
    module: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"file": self.file, "sha256": self.sha256}
        if self.module:
            out["module"] = self.module
        return out


@dataclass(frozen=True)
class ModelInfo:
    """What validation needs of a model: its parameters (type hint, default) and doc."""

    name: str
    doc: str
    params: dict[str, tuple[Any, Any]]
    source: ModelSource | None = None  # None: shipped with mnist-tui

    @property
    def where(self) -> str:
        return self.source.file if self.source else "shipped (mnist_tui/models.py)"


@dataclass
class ModelCatalog:
    """Every model by name; files that failed to load and names defined twice are kept as
    problems, reported when an experiment asks for a model they may concern."""

    models: dict[str, ModelInfo]
    broken: list[SpecProblem] = field(default_factory=list)
    collisions: dict[str, list[SpecProblem]] = field(default_factory=dict)

    def params(self, name: str) -> dict[str, tuple[Any, Any]]:
        """All parameters a `[model]` table of this model accepts: the builder's plus common."""
        return {**self.models[name].params, **models.COMMON_PARAMS}


# ----------------------------------------------------------------------------- sources


def read_source(path: Path, shown: str, module: str | None = None) -> ModelSource:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SpecError([SpecProblem(shown, "", f"cannot read: {exc.strerror}")]) from None
    return ModelSource(shown, hashlib.sha256(text).hexdigest(), path, text, module)


def snapshot_source(run_dir: Path, recorded: Any, where: str) -> ModelSource:
    """The model file a run copied (`model.py`), checked against the hash in its spec.toml."""
    if not isinstance(recorded, Mapping) or not all(
        isinstance(recorded.get(k), str) for k in ("file", "sha256")
    ):
        raise SpecError(
            [SpecProblem(where, "model_source", "expected a table with file and sha256")]
        )
    module = recorded.get("module")
    source = read_source(
        run_dir / SNAPSHOT, str(run_dir / SNAPSHOT), module if isinstance(module, str) else None
    )
    if source.sha256 != recorded["sha256"]:
        raise SpecError(
            [
                SpecProblem(
                    str(run_dir / SNAPSHOT),
                    "",
                    f"does not match the model source this run recorded (sha256 "
                    f"{recorded['sha256'][:12]}…, the file has {source.sha256[:12]}…): it was "
                    "edited after the run was made; put the original back",
                )
            ]
        )
    return dataclasses.replace(source, file=recorded["file"])


def _display(path: Path) -> str:
    absolute = os.path.abspath(path)
    try:
        return str(Path(absolute).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def model_files(layers: Iterable[Path]) -> list[Path]:
    """`models/*.py` in each experiments directory, lowest layer first; a file hides a
    lower layer's file of the same name, as experiments do. `_*.py` are helpers."""
    found: dict[str, Path] = {}
    for layer in layers:
        try:
            names = sorted(os.listdir(layer / "models"))
        except OSError:
            continue
        for name in names:
            path = layer / "models" / name
            if name.endswith(".py") and not name.startswith(("_", ".")) and path.is_file():
                found.pop(name, None)
                found[name] = path
    return list(found.values())


def _module_file(module: str) -> Path | None:
    """The file of an installed module, found without importing it or its package."""
    import importlib.util

    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin else None
    locations = list(spec.submodule_search_locations or [])
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        nxt: list[str] = []
        for loc in locations:
            if last and (Path(loc) / f"{part}.py").is_file():
                return Path(loc) / f"{part}.py"
            if (Path(loc) / part / "__init__.py").is_file():
                if last:
                    return Path(loc) / part / "__init__.py"
                nxt.append(str(Path(loc) / part))
        locations = nxt
    return None


def _path_stamp() -> list[list[Any]]:
    """sys.path's directories and their modification times: installing or removing a
    package adds or removes a dist-info directory, which changes its directory's time."""
    out: list[list[Any]] = []
    for entry in sys.path:
        try:
            out.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            continue
    return out


@functools.cache
def entry_point_modules() -> tuple[tuple[str, str], ...]:
    """(entry point name, module) of every installed `mnist_tui.models` entry point.

    Scanning every installed distribution costs more than a reading command may spend,
    so the answer is kept on disk while sys.path's directories stay unchanged."""
    path = cache_path().with_name("entry-points.json")
    stamp = _path_stamp()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("version") == CACHE_VERSION and cached.get("stamp") == stamp:
            return tuple((str(n), str(m)) for n, m in cached["found"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    from importlib.metadata import entry_points

    found = tuple(
        sorted(
            (ep.name, ep.value.partition(":")[0].strip())
            for ep in entry_points(group=ENTRY_POINT_GROUP)
        )
    )
    record = {"version": CACHE_VERSION, "stamp": stamp, "found": [list(f) for f in found]}
    _write_json(path, record)
    return found


# ----------------------------------------------------------------------------- loading

_loaded: dict[str, dict[str, models.ModelEntry]] = {}


def _located(exc: BaseException, filename: str, shown: str) -> SpecProblem:
    """The error of importing a user file, at its line in that file when there is one."""
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return SpecProblem(f"{shown}:{exc.lineno}", "", f"SyntaxError: {exc.msg}")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    where = f"{shown}:{frames[-1].lineno}" if frames else shown
    text = str(exc) or type(exc).__name__
    return SpecProblem(where, "", f"{type(exc).__name__}: {text}")


def load_entries(source: ModelSource) -> dict[str, models.ModelEntry]:
    """Import a model file's exact hashed bytes (once per process) and return its models.

    The module gets a name of its own (`mnist_tui_user.m<hash>`), so two versions of
    one file, or a file and a run's snapshot, never replace one another."""
    if source.sha256 in _loaded:
        return _loaded[source.sha256]
    name = f"mnist_tui_user.m{source.sha256[:16]}"
    filename = str(source.path)
    module = types.ModuleType(name)
    module.__file__ = filename
    if source.module and "." in source.module:
        module.__package__ = source.module.rpartition(".")[0]
    collected: dict[str, models.ModelEntry] = {}
    models._collecting.append(collected)
    sys.modules[name] = module  # dataclasses and typing look their module up by name
    try:
        code = compile(source.text, filename, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise SpecError([_located(exc, filename, source.file)]) from None
    finally:
        models._collecting.pop()
    if not collected:
        raise SpecError(
            [
                SpecProblem(
                    source.file,
                    "",
                    "defines no model: decorate a builder with @register_model "
                    "(from mnist_tui import register_model)",
                )
            ]
        )
    entries = {k: dataclasses.replace(e, file=source.file) for k, e in collected.items()}
    _loaded[source.sha256] = entries
    return entries


def entry_for(source: ModelSource, name: str) -> models.ModelEntry:
    entries = load_entries(source)
    if name not in entries:
        raise SpecError([SpecProblem(source.file, "", f"no longer defines model '{name}'")])
    return entries[name]


# ----------------------------------------------------------------------------- schema

_EMPTY = inspect.Parameter.empty
# A parameter's type hint as JSON, so a cached description rebuilds the same schema.


def encode_hint(hint: Any) -> Any:
    """A type hint as JSON, or ValueError for one the schema cannot check."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        out: dict[str, Any] = {"t": "annotated", "base": encode_hint(base)}
        for m in meta:
            if isinstance(m, Range):
                out["range"] = dataclasses.asdict(m)
            elif isinstance(m, Length):
                out["length"] = dataclasses.asdict(m)
            elif isinstance(m, Help):
                out["help"] = m.text
        return out
    if hint in (int, float, str, bool):
        return hint.__name__
    if hint is type(None) or hint is None:
        return "none"
    if origin is Literal:
        values = list(get_args(hint))
        if all(isinstance(v, str | int | float | bool) for v in values):
            return {"t": "literal", "values": values}
    if origin in (list, tuple):
        args = get_args(hint)
        if len(args) == 1 or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
            return {"t": origin.__name__, "item": encode_hint(args[0])}
    if origin in (Union, types.UnionType):
        return {"t": "union", "of": [encode_hint(a) for a in get_args(hint)]}
    raise ValueError(f"{hint!r}")


def decode_hint(obj: Any) -> Any:
    if isinstance(obj, str):
        return {"int": int, "float": float, "str": str, "bool": bool, "none": type(None)}[obj]
    kind = obj["t"]
    if kind == "annotated":
        meta: list[Any] = []
        if "length" in obj:
            meta.append(Length(**obj["length"]))
        if "range" in obj:
            meta.append(Range(**obj["range"]))
        if "help" in obj:
            meta.append(Help(obj["help"]))
        base = decode_hint(obj["base"])
        return Annotated[base, *meta] if meta else base
    if kind == "literal":
        return Literal[tuple(obj["values"])]
    if kind == "list":
        return list[decode_hint(obj["item"])]  # type: ignore[misc]
    if kind == "tuple":
        return tuple[decode_hint(obj["item"]), ...]  # type: ignore[misc]
    if kind == "union":
        return functools.reduce(lambda a, b: a | b, [decode_hint(a) for a in obj["of"]])
    raise ValueError(kind)


def _describe(source: ModelSource) -> list[dict[str, Any]]:
    """Import the file and describe its models as JSON, or a SpecError saying what is wrong."""
    out = []
    for name, entry in load_entries(source).items():
        try:
            params = entry.params()
        except Exception as exc:  # a hint naming something undefined
            raise SpecError(
                [
                    SpecProblem(
                        source.file, "", f"model {name}: its type hints do not evaluate: {exc}"
                    )
                ]
            ) from None
        described = []
        for pname, (hint, default) in params.items():
            problem = None
            try:
                encoded = encode_hint(hint)
            except ValueError:
                problem = (
                    f"type hint {hint!r} is not one a [model] table can hold; use int, "
                    "float, str, bool, list[...], Literal[...], X | None or "
                    "Annotated[..., Range/Length/Help]"
                )
            if default is not _EMPTY and problem is None:
                try:
                    json.dumps(default)
                except (TypeError, ValueError):
                    problem = f"default {default!r} is not a value a TOML file can hold"
            if default is _EMPTY:
                problem = "needs a default value (every [model] key is optional)"
            if problem:
                raise SpecError(
                    [SpecProblem(source.file, "", f"model {name}, parameter {pname}: {problem}")]
                )
            described.append([pname, encoded, default])
        out.append({"name": name, "doc": entry.doc, "params": described})
    return out


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mnist-tui" / "user-models.json"


_cache: dict[Path, dict[str, Any]] = {}


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return entries


def _write_cache(path: Path, entries: dict[str, Any]) -> None:
    _write_json(path, {"version": CACHE_VERSION, "entries": entries})


def _write_json(path: Path, data: Any) -> None:
    """Atomically; a failure (read-only home, full disk) only costs the work next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass


def describe_file(source: ModelSource) -> list[ModelInfo]:
    """The models a file defines, from the cache by content hash, else by importing it."""
    path = cache_path()
    key = f"{source.sha256}:{source.module or ''}"
    if path not in _cache:
        _cache[path] = _read_cache(path)
    described = _cache[path].get(key)
    try:
        infos = _infos(described, source) if described is not None else None
    except (KeyError, TypeError, ValueError):
        infos = None  # a damaged entry: describe afresh
    if infos is not None:
        return infos
    described = _describe(source)
    entries = _read_cache(path)  # another process may have added some meanwhile
    entries.pop(key, None)
    entries[key] = described
    while len(entries) > MAX_ENTRIES:
        del entries[next(iter(entries))]
    _write_cache(path, entries)
    _cache[path] = entries
    return _infos(described, source)


def _infos(described: Any, source: ModelSource) -> list[ModelInfo]:
    return [
        ModelInfo(
            m["name"],
            m["doc"],
            {p: (decode_hint(h), d) for p, h, d in m["params"]},
            source,
        )
        for m in described
    ]


# ----------------------------------------------------------------------------- catalog


def _shipped() -> dict[str, ModelInfo]:
    return {n: ModelInfo(n, e.doc, e.params()) for n, e in models.MODELS.items()}


def _add(catalog: ModelCatalog, infos: list[ModelInfo]) -> None:
    for info in infos:
        before = catalog.models.get(info.name)
        if before is not None:
            catalog.collisions.setdefault(info.name, []).append(
                SpecProblem(
                    info.where,
                    "",
                    f"defines model '{info.name}', which {before.where} defines too; rename one "
                    "(a model name must be unique)",
                )
            )
            continue
        catalog.models[info.name] = info


_catalogs: dict[Any, ModelCatalog] = {}


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), 0, 0)
    return (str(path), st.st_mtime_ns, st.st_size)


def model_catalog(layers: Iterable[Path], *, entry_points: bool = True) -> ModelCatalog:
    """Shipped models, then `models/*.py` of each experiments directory, then entry points.

    Remembered per process while no file changes (a listing loads every experiment)."""
    files = model_files(layers)
    eps: list[tuple[str, Path, str]] = []
    if entry_points:
        for ep_name, module in entry_point_modules():
            found = _module_file(module)
            eps.append((ep_name, found or Path(), module))
    key = (tuple(_stamp(f) for f in files), tuple((n, _stamp(p), m) for n, p, m in eps))
    if key in _catalogs:
        return _catalogs[key]
    catalog = ModelCatalog(_shipped())
    for path in files:
        try:
            _add(catalog, describe_file(read_source(path, _display(path))))
        except SpecError as exc:
            catalog.broken.extend(exc.problems)
    for ep_name, found, module in eps:
        shown = f"{module} (entry point {ep_name})"
        if found == Path():
            catalog.broken.append(SpecProblem(shown, "", "module not found"))
            continue
        try:
            source = read_source(found, f"{_display(found)} (entry point {ep_name})", module)
            _add(catalog, describe_file(source))
        except SpecError as exc:
            catalog.broken.extend(exc.problems)
    _catalogs[key] = catalog
    return catalog


def snapshot_catalog(source: ModelSource) -> ModelCatalog:
    """A run's models: the shipped ones, and its snapshot's (which win: the run trained them)."""
    catalog = ModelCatalog(_shipped())
    for info in describe_file(source):
        catalog.models[info.name] = info
    return catalog


def shipped_catalog() -> ModelCatalog:
    return ModelCatalog(_shipped())
