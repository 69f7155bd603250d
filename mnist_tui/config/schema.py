"""Typed field validation shared by experiment sections and model builders.

A field is declared once, as a type hint with optional constraints::

    lr: Annotated[float, Range(gt=0)] = 0.001

`check_value` turns a raw TOML value into the declared type or explains, in words a
user understands, what was expected; `check_table` checks a whole table against a set of
such fields (a section's dataclass, a model builder's keyword parameters, `[search]`)
and reports every problem to one `Problems` collector.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from mnist_tui.errors import Problems, did_you_mean

# re-exported: the constraints live in a leaf module that the model builders import too
from mnist_tui.fields import Help as Help
from mnist_tui.fields import Length as Length
from mnist_tui.fields import Range as Range

# A field of a table: its type hint (with Range/Length/Help) and its default.
Field = tuple[Any, Any]


class Invalid(ValueError):
    """Raised by `check_value` with a message that says what was expected."""


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def brief(value: Any, limit: int = 80) -> str:
    """`show`, cut to `limit` characters: a message quotes a value, it does not reprint it."""
    if isinstance(value, str) and len(value) > limit:
        return show(value[:limit]) + f"… ({len(value):,} characters)"
    if isinstance(value, list | dict) and len(value) > 16:
        return f"{_type_word(value)} of {len(value):,} items"
    text = show(value)
    return text if len(text) <= limit else text[:limit] + "…"


def show(value: Any) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def split_annotation(hint: Any) -> tuple[Any, list[Any]]:
    """Separate ``Annotated[T, *meta]`` into ``(T, meta)``."""
    if get_origin(hint) is Annotated:
        base, *meta = get_args(hint)
        return base, list(meta)
    return hint, []


def describe_type(hint: Any) -> str:
    """A human description of a type hint ("a number > 0", "one of ...")."""
    base, meta = split_annotation(hint)
    constraint = next((m for m in meta if isinstance(m, Range)), None)
    length = next((m for m in meta if isinstance(m, Length)), None)
    origin = get_origin(base)
    if base is Any:
        return "a value"
    if origin is Literal:
        return "one of " + ", ".join(show(c) for c in get_args(base))
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(base) if a is not type(None)]
        return " or ".join(describe_type(Annotated[a, *meta] if meta else a) for a in inner)
    if origin in (list, tuple):
        item = get_args(base)[0]
        word = describe_type(item)
        text = f"a list of {word.removeprefix('a ').removeprefix('an ')}s"
        if length is not None:
            text += f" ({length.describe()})"
        if constraint is not None:
            text += f", each {constraint.describe()}"
        return text
    word = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        base, getattr(base, "__name__", str(base))
    )
    if constraint is not None:
        word += " " + constraint.describe()
    return word


def check_value(value: Any, hint: Any) -> Any:
    """Return `value` converted to `hint`, or raise `Invalid` saying what was expected."""
    base, meta = split_annotation(hint)
    constraint = next((m for m in meta if isinstance(m, Range)), None)
    length = next((m for m in meta if isinstance(m, Length)), None)
    origin = get_origin(base)

    def fail() -> typing.NoReturn:
        raise Invalid(f"expected {describe_type(hint)}, got {brief(value)} ({_type_word(value)})")

    if base is Any:
        return value
    if origin is Literal:
        choices = get_args(base)
        if value in choices and type(value) is type(choices[0]):
            return value
        hint_text = did_you_mean(str(value), [str(c) for c in choices])
        raise Invalid(
            f"expected one of {', '.join(show(c) for c in choices)}, got {brief(value)}.{hint_text}"
        )
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(base):
            return None  # TOML has no null, but a resolved spec may pass one in
        inner = [a for a in get_args(base) if a is not type(None)]
        # an alternative of the value's own type first: 2.0 stays a float in `int | float`
        inner.sort(key=lambda a: split_annotation(a)[0] is not type(value))
        for alt in inner:
            try:
                return check_value(value, Annotated[alt, *meta] if meta else alt)
            except Invalid:
                continue
        fail()
    if origin in (list, tuple):
        if not isinstance(value, list):
            fail()
        item_type = get_args(base)[0]
        if length is not None and (
            len(value) < length.min or (length.max is not None and len(value) > length.max)
        ):
            raise Invalid(f"expected {describe_type(hint)}, got {len(value)} items: {brief(value)}")
        item_hint = Annotated[item_type, constraint] if constraint else item_type
        out = []
        for i, item in enumerate(value):
            try:
                out.append(check_value(item, item_hint))
            except Invalid as exc:
                raise Invalid(f"item {i}: {exc}") from None
        return tuple(out) if origin is tuple else out
    if base is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                fail()
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail()
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise Invalid(f"expected a finite number, got {brief(value)}")
    elif base is str:
        if not isinstance(value, str):
            fail()
    else:  # pragma: no cover - schema authoring error
        raise TypeError(f"unsupported schema type {base!r}")
    if constraint is not None and not constraint.ok(value):
        raise Invalid(f"expected {describe_type(hint)}, got {brief(value)}")
    return value


@functools.cache
def fields_of(cls: type) -> dict[str, Field]:
    """A dataclass's fields as name -> (type hint, default), in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, Field] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = (hints[f.name], f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = (hints[f.name], f.default_factory())
        else:
            out[f.name] = (hints[f.name], None)
    return out


def check_table(
    raw: Any,
    fields: Mapping[str, Field],
    section: str,
    problems: Problems,
    *,
    tables: Collection[str] = (),
    where: str = "here",
) -> dict[str, Any]:
    """Check one table against `fields`, fill in defaults, report problems to `problems`.

    `section` is the table's dotted key ("" at the top level). Keys named in `tables` are
    allowed but left to the caller (sub-tables with their own schema)."""
    dotted = f"{section}." if section else ""
    if not isinstance(raw, Mapping):
        problems.at(section).add(f"expected a table, got {brief(raw)}")
        raw = {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in tables:
            continue
        if key not in fields:
            problems.at(dotted + key).unknown(key, [*fields, *tables], where)
            continue
        try:
            out[key] = check_value(value, fields[key][0])
        except Invalid as exc:
            problems.at(dotted + key).add(str(exc))
    for key, (_, default) in fields.items():
        if key not in out:
            out[key] = list(default) if isinstance(default, list) else default
    return out
