"""Definitions seen through today's code: a run's spec.toml hash after validation.

Shared by `list`/`report` (studies.catalog) and `variants` (studies.variants), so a
definition written by an older version counts as the same in both.
"""

from __future__ import annotations

from pathlib import Path

from mnist_tui.config.loading import load_spec_file
from mnist_tui.errors import SpecError
from mnist_tui.runs.index import index_for
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.schema import SPEC, definition_hash

_VALIDATED: dict[str, str | None] = {}


def _code_version() -> str:
    """Changes with the code that resolves a spec (its files' sizes and times)."""
    from mnist_tui import __version__, config

    parts = [__version__]
    for f in sorted(Path(config.__file__).parent.glob("*.py")):
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return definition_hash({"train": {"code": parts}})


def validated_hash(run: RunInfo, raw: str) -> str | None:
    """The hash of a run's definition once validated (defaults filled in), which tells a
    spec.toml written before a key existed from another definition; None when it does
    not validate. Remembered per raw hash here and in the index, for this code."""
    return validated_hash_at(run.path, raw)


def validated_hash_at(run_dir: Path, raw: str) -> str | None:
    """`validated_hash` of the run stored in `run_dir` (STORE/EXPERIMENT/ID)."""
    if raw in _VALIDATED:
        return _VALIDATED[raw]
    index = index_for(run_dir.parent.parent)
    key = f"validated-definition:{_code_version()}:{raw}"
    cached = index.get_value(key)
    if cached is None:
        try:
            cached = definition_hash(load_spec_file(run_dir / SPEC).to_dict())
        except SpecError:
            cached = ""
        index.set_value(key, cached)
    _VALIDATED[raw] = cached or None
    return _VALIDATED[raw]
