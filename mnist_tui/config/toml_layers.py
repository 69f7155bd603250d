"""Reading TOML defensively and merging layers (a parent file, a child, overrides) key by key,
remembering which layer set each key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

from mnist_tui.config.spec import flatten
from mnist_tui.errors import SpecError, SpecProblem

MAX_DEPTH = 32  # tables and lists inside one another; experiment files need about 6
MAX_DOTS_PER_LINE = 2 * MAX_DEPTH  # key dots on one line; a real file's longest key has 3


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


def merge(
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
            merge(base[k], v, origins, source, key + ".")
        else:
            if k in base:  # what this replaces was set elsewhere: forget where
                origins.pop(key, None)
                if isinstance(base[k], dict):
                    for old in flatten(base[k], key + "."):
                        origins.pop(old, None)
            base[k] = dict(v) if isinstance(v, Mapping) else v
            for sub in flatten({k: v}, prefix) if isinstance(v, Mapping) else [key]:
                origins[sub] = source
