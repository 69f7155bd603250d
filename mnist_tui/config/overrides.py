"""`-S KEY=VALUE` overrides: parsing them, applying them as one more layer, and a spec's copy
with overrides (`with_overrides`), so config/spec.py stays plain data.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from typing import Any

from mnist_tui.config.override_conflicts import Setting, check_overrides, disagree, leaves
from mnist_tui.config.schema import brief
from mnist_tui.config.spec import ExperimentSpec, flatten
from mnist_tui.config.toml_layers import MAX_DEPTH, merge, parse_toml
from mnist_tui.config.validate import validate_raw
from mnist_tui.errors import MnistTuiError, Problems, SpecError, SpecProblem

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


def check_shortcut(flag: str, key: str, value: Any, set_: Iterable[str]) -> None:
    """`--epochs N` against the `-S` overrides: one that sets the same key (or a key below
    it, or a table above it) to something else is an error naming both."""
    mine = Setting(tuple(key.split(".")), value, f"{flag} {value}")
    for text in set_:
        try:
            theirs = override_leaves(text)
        except MnistTuiError:
            continue  # not an override at all: loading the experiment says why
        for other in theirs:
            if disagree(mine, other):
                shown = min(key, ".".join(other.parts), key=len)
                raise MnistTuiError(
                    f"{mine.source} and {other.source} both set {shown}"
                    f" to different values; give only one of them"
                )


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
        merge(raw, layer, origins, override_source(text))


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


def with_overrides(spec: ExperimentSpec, overrides: Iterable[str]) -> ExperimentSpec:
    """A copy of `spec` with `-S key=value` overrides applied and validated."""
    overrides = list(overrides)
    if not overrides:
        return spec
    raw = spec.to_dict()
    raw.pop("model_source", None)  # the catalog knows where the model comes from
    origins = {k: spec.source for k in flatten(raw)}
    apply_overrides(raw, origins, overrides)
    return validate_raw(
        raw, origins, spec.source, spec.lineage, spec.inherited, catalog=spec.catalog
    )
