"""Typed field validation shared by experiment sections and model builders.

A field is declared once, as a type hint with optional constraints::

    lr: Annotated[float, Range(gt=0)] = 0.001

`check_value` turns a raw TOML value into the declared type or explains, in words a
user understands, what was expected.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin


@dataclass(frozen=True)
class Range:
    """Numeric bounds; for a list, every element must satisfy them."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        parts = []
        if self.ge is not None:
            parts.append(f">= {self.ge:g}")
        if self.gt is not None:
            parts.append(f"> {self.gt:g}")
        if self.le is not None:
            parts.append(f"<= {self.le:g}")
        if self.lt is not None:
            parts.append(f"< {self.lt:g}")
        return " and ".join(parts)

    def ok(self, v: float) -> bool:
        return not (
            (self.ge is not None and v < self.ge)
            or (self.gt is not None and v <= self.gt)
            or (self.le is not None and v > self.le)
            or (self.lt is not None and v >= self.lt)
        )


@dataclass(frozen=True)
class Length:
    """Allowed list length (inclusive)."""

    min: int = 0
    max: int | None = None

    def describe(self) -> str:
        if self.max == self.min:
            return f"exactly {self.min} item{'s' if self.min != 1 else ''}"
        if self.max is None:
            return f"at least {self.min} item{'s' if self.min != 1 else ''}"
        return f"{self.min} to {self.max} items"


@dataclass(frozen=True)
class Help:
    """One-line description shown in `mnist-tui keys` and the TUI."""

    text: str


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


def show(value: Any) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
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
    if origin is Literal:
        return "one of " + ", ".join(show(c) for c in get_args(base))
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(base) if a is not type(None)]
        return " or ".join(describe_type(Annotated[a, *meta] if meta else a) for a in inner)
    if origin is list:
        (item,) = get_args(base)
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
        raise Invalid(f"expected {describe_type(hint)}, got {show(value)} ({_type_word(value)})")

    if origin is Literal:
        choices = get_args(base)
        if value in choices and type(value) is type(choices[0]):
            return value
        from mnist_tui.errors import did_you_mean

        hint_text = did_you_mean(str(value), [str(c) for c in choices])
        raise Invalid(
            f"expected one of {', '.join(show(c) for c in choices)}, got {show(value)}.{hint_text}"
        ).with_traceback(None)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(base) if a is not type(None)]
        for alt in inner:
            try:
                return check_value(value, Annotated[alt, *meta] if meta else alt)
            except Invalid:
                continue
        fail()
    if origin is list:
        if not isinstance(value, list):
            fail()
        (item_type,) = get_args(base)
        if length is not None and (
            len(value) < length.min or (length.max is not None and len(value) > length.max)
        ):
            raise Invalid(f"expected {describe_type(hint)}, got {len(value)} items: {show(value)}")
        item_hint = Annotated[item_type, constraint] if constraint else item_type
        out = []
        for i, item in enumerate(value):
            try:
                out.append(check_value(item, item_hint))
            except Invalid as exc:
                raise Invalid(f"item {i}: {exc}") from None
        return out
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
            raise Invalid(f"expected a finite number, got {show(value)}")
    elif base is str:
        if not isinstance(value, str):
            fail()
    else:  # pragma: no cover - schema authoring error
        raise TypeError(f"unsupported schema type {base!r}")
    if constraint is not None and not constraint.ok(value):
        raise Invalid(f"expected {describe_type(hint)}, got {show(value)}")
    return value
