"""The model check: a trial build on torch's meta device, remembered on disk.

Validation builds every model once on the meta device (shapes and counts, no memory), so
a typo such as ``hidden = [65536, 65536]`` is an error, not an out-of-memory crash. That
build needs torch, whose import alone costs more than a read-only command should take;
so its outcome (the parameter count, or the error) is kept in
``$XDG_CACHE_HOME/mnist-tui/model-checks.json`` (default ``~/.cache``), keyed by a hash of
the model definition, the input shape and the source of `mnist_tui.models` (and of the
user's model file, for a user's model). A cache that is missing, corrupt or unwritable
only costs the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_tui import __version__, models
from mnist_tui.errors import SpecError
from mnist_tui.user_models import ModelSource, entry_for

CACHE_VERSION = 1
MAX_ENTRIES = 2000  # the oldest go first; a user has a few dozen definitions


@dataclass(frozen=True)
class ModelCheck:
    """What the trial build found: a parameter count, or the key and text of an error."""

    parameters: int = 0
    error_key: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is None:
            return {"parameters": self.parameters}
        return {"error_key": self.error_key, "error": self.error}

    @staticmethod
    def from_json(d: Any) -> ModelCheck | None:
        if not isinstance(d, dict):
            return None
        n, key, error = d.get("parameters"), d.get("error_key"), d.get("error")
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0 and error is None:
            return ModelCheck(n)
        if isinstance(key, str) and isinstance(error, str):
            return ModelCheck(0, key, error)
        return None


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mnist-tui" / "model-checks.json"


_code: str | None = None
_memory: dict[Path, dict[str, Any]] = {}


def _code_fingerprint() -> str:
    """The models' source: a changed builder must not reuse an old count."""
    global _code
    if _code is None:
        try:
            _code = hashlib.sha256(Path(models.__file__).read_bytes()).hexdigest()
        except OSError:  # pragma: no cover - a package without its sources
            _code = __version__
    return _code


def cache_key(
    name: str,
    params: dict[str, Any],
    in_shape: tuple[int, int, int],
    num_classes: int = 10,
    source: ModelSource | None = None,
) -> str:
    code = [_code_fingerprint(), source.sha256] if source is not None else _code_fingerprint()
    blob = json.dumps(
        [CACHE_VERSION, code, name, params, list(in_shape), num_classes],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable or corrupt: start afresh
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return entries


def _write(path: Path, entries: dict[str, Any]) -> None:
    """Atomically; a failure (read-only home, full disk) is not the user's problem here."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model-checks.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": CACHE_VERSION, "entries": entries}, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass


def check_model(
    name: str,
    params: dict[str, Any],
    in_shape: tuple[int, int, int],
    num_classes: int = 10,
    source: ModelSource | None = None,
) -> ModelCheck:
    """The trial build's outcome, from the cache when this definition was built before."""
    path = cache_path()
    key = cache_key(name, params, in_shape, num_classes, source)
    if path not in _memory:
        _memory[path] = _read(path)
    hit = ModelCheck.from_json(_memory[path].get(key))
    if hit is not None:
        return hit
    try:
        result = trial_build(name, params, in_shape, num_classes, source)
    except SpecError as exc:  # the user's file no longer imports here: not cached
        return ModelCheck(0, "model.name", "; ".join(p.render() for p in exc.problems))
    entries = _read(path)  # another process may have added some meanwhile
    entries.pop(key, None)
    entries[key] = result.to_json()
    while len(entries) > MAX_ENTRIES:
        del entries[next(iter(entries))]
    _write(path, entries)
    _memory[path] = entries
    return result


def trial_build(
    name: str,
    params: dict[str, Any],
    in_shape: tuple[int, int, int],
    num_classes: int = 10,
    source: ModelSource | None = None,
) -> ModelCheck:
    """Build the model on the meta device and run one forward pass: count, or error.

    A user's builder may raise anything; its message comes back with the line of its file
    it came from."""
    import torch

    entry = entry_for(source, name) if source is not None else None
    try:
        with torch.device("meta"):
            model = models.build_model(name, params, in_shape, num_classes, entry=entry)
            models.output_check(model, in_shape, num_classes)
        return ModelCheck(models.count_parameters(model))
    except models.ModelConfigError as exc:
        key = exc.key if "." in exc.key or exc.key == "model" else f"model.{exc.key}"
        return ModelCheck(0, key, str(exc))
    except (RuntimeError, ValueError) as exc:
        if source is None:
            return ModelCheck(0, "model", f"the model cannot be built with these settings: {exc}")
        return ModelCheck(0, "model", _user_error(exc, source, name))
    except Exception as exc:
        if source is None:
            raise
        return ModelCheck(0, "model", _user_error(exc, source, name))


def _user_error(exc: BaseException, source: ModelSource, name: str) -> str:
    """`resnet (models/resnet.py:12) raised ValueError: ...`: where in the user's file."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(source.path)]
    where = f"{source.file}:{frames[-1].lineno}" if frames else source.file
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"model {name} ({where}) raised {type(exc).__name__}: {text}".rstrip(": ")
