"""`--where`: one small filter language over a run's configuration and results.

    optim.lr > 0.01 and model.name == 'mlp' and test_acc >= 0.85
    not (status == 'failed' or seed in (1, 2))

Names are dotted configuration keys (`optim.lr`, `model.hidden`) or result fields
(`test_acc`, `best.test_acc`, `status`, `seed`, `group`, `experiment`, `tag`...);
values are numbers, 'strings' or "strings", true/false and none; comparisons are
== (or =), !=, <, <=, >, >=, `in (...)` and `~` (contains); `and`, `or`, `not` and
parentheses combine them. A parse error says where, with a caret under the column.
A key a run does not have compares false (and != true), never raises.

Read-only and light: no scipy, no torch, no pydantic.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mnist_tui.config.spec import flatten
from mnist_tui.errors import MnistTuiError, did_you_mean
from mnist_tui.runs.record import RunInfo
from mnist_tui.runs.schema import DEFINITION_SECTIONS

RESULT_FIELDS = (
    "test_acc",
    "test_loss",
    "val_acc",
    "val_loss",
    "status",
    "seed",
    "group",
    "experiment",
    "id",
    "tag",
    "epochs_done",
    "best_epoch",
    "train_seconds",
    "wall_seconds",
    "fold",
    "trial",
)
RESULT_PARTS = ("final", "best", "last")  # best.test_acc, final.test_loss ...


class WhereError(MnistTuiError):
    """A filter expression that does not parse: says where, with a caret. `column`
    (from 1) and `reason` let another face (the console's filter) say it its own way."""

    def __init__(self, text: str, col: int, reason: str) -> None:
        self.text, self.column, self.reason = text, col + 1, reason
        super().__init__(self.render("--where"))

    def render(self, label: str) -> str:
        """The message, its place named by `label` (the option, or the console's filter)."""
        return (
            f"{label}, column {self.column}: {self.reason}\n"
            f"  {self.text}\n  {' ' * (self.column - 1)}^"
        )


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op>==|!=|<=|>=|=|<|>|~|\(|\)|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
""",
    re.X,
)
_WORDS = {"and", "or", "not", "in", "true", "false", "none", "null"}


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, op, name, word, end
    text: str
    col: int
    value: Any = None


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _error(text, pos, f"unexpected character '{text[pos]}'")
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "number":
            # 85% is 0.85: accuracies are stored as fractions
            value: Any = float(raw[:-1]) / 100 if raw.endswith("%") else _number(raw)
            out.append(Token("number", raw, pos, value))
        elif kind == "string":
            out.append(Token("string", raw, pos, raw[1:-1]))
        elif kind == "op":
            out.append(Token("op", raw, pos))
        elif kind == "name":
            low = raw.lower()
            out.append(
                Token("word" if low in _WORDS else "name", low if low in _WORDS else raw, pos)
            )
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


def _number(raw: str) -> int | float:
    try:
        return int(raw)
    except ValueError:
        return float(raw)


def _error(text: str, col: int, message: str) -> WhereError:
    return WhereError(text, col, message)


Pred = Callable[[dict[str, Any]], bool]


class _Parser:
    def __init__(self, text: str, known: Callable[[str], str | None]) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.known = known

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, kind: str, text: str | None = None) -> Token:
        t = self.peek()
        if t.kind != kind or (text is not None and t.text != text):
            want = f"'{text}'" if text else kind
            got = f"'{t.text}'" if t.text else "the end"
            raise _error(self.text, t.col, f"expected {want}, found {got}")
        return self.take()

    def parse(self) -> Pred:
        if self.peek().kind == "end":
            raise _error(self.text, 0, "empty expression")
        pred = self.or_()
        t = self.peek()
        if t.kind != "end":
            raise _error(self.text, t.col, f"expected 'and', 'or' or the end, found '{t.text}'")
        return pred

    def or_(self) -> Pred:
        parts = [self.and_()]
        while self.peek().kind == "word" and self.peek().text == "or":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def and_(self) -> Pred:
        parts = [self.not_()]
        while self.peek().kind == "word" and self.peek().text == "and":
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def not_(self) -> Pred:
        if self.peek().kind == "word" and self.peek().text == "not":
            self.take()
            inner = self.not_()
            return lambda row: not inner(row)
        return self.atom()

    def atom(self) -> Pred:
        t = self.peek()
        if t.kind == "op" and t.text == "(":
            self.take()
            inner = self.or_()
            self.expect("op", ")")
            return inner
        if t.kind != "name":
            got = f"'{t.text}'" if t.text else "the end"
            raise _error(
                self.text, t.col, f"expected a key such as optim.lr or test_acc, found {got}"
            )
        self.take()
        problem = self.known(t.text)
        if problem is not None:
            raise _error(self.text, t.col, problem)
        key = t.text
        op = self.peek()
        if op.kind == "word" and op.text == "in":
            self.take()
            values = self.value_list()
            return lambda row: _get(row, key) in values
        if op.kind == "word" and op.text == "not":
            self.take()
            self.expect("word", "in")
            values = self.value_list()
            return lambda row: _get(row, key) not in values
        if op.kind != "op" or op.text in ("(", ")", ","):
            got = f"'{op.text}'" if op.text else "the end"
            raise _error(
                self.text,
                op.col,
                f"expected a comparison (==, !=, <, >, <=, >=, in, ~) after {key}, found {got}",
            )
        self.take()
        value = self.value()
        return _compare(key, op.text, value)

    def value(self) -> Any:
        t = self.peek()
        if t.kind in ("number", "string"):
            self.take()
            return t.value
        if t.kind == "word" and t.text in ("true", "false", "none", "null"):
            self.take()
            return {"true": True, "false": False}.get(t.text)
        if t.kind == "name":  # a bare word: mlp, completed, adam
            self.take()
            return t.text
        got = f"'{t.text}'" if t.text else "the end"
        raise _error(
            self.text, t.col, f"expected a value (number, 'text', true, false), found {got}"
        )

    def value_list(self) -> list[Any]:
        self.expect("op", "(")
        values = [self.value()]
        while self.peek().kind == "op" and self.peek().text == ",":
            self.take()
            values.append(self.value())
        self.expect("op", ")")
        return values


_MISSING = object()


def _get(row: dict[str, Any], key: str) -> Any:
    return row.get(key, _MISSING)


def _compare(key: str, op: str, value: Any) -> Pred:
    def test(row: dict[str, Any]) -> bool:
        v = row.get(key, _MISSING)
        if op in ("==", "="):
            return v is not _MISSING and _equal(v, value)
        if op == "!=":
            return v is _MISSING or not _equal(v, value)
        if op == "~":
            if v is _MISSING or v is None:
                return False
            if isinstance(v, list):
                return any(_equal(x, value) for x in v)
            return str(value).lower() in str(v).lower()
        if v is _MISSING or v is None or isinstance(v, bool):
            return False
        try:
            return bool({"<": v < value, "<=": v <= value, ">": v > value, ">=": v >= value}[op])
        except TypeError:  # a number against text: no order between them
            return False

    return test


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, str):
        return str(a).replace(" ", "") == b.replace(" ", "")
    return bool(a == b)


def key_problem(key: str) -> str | None:
    """None for a key a run can have, else what is wrong (with a did-you-mean)."""
    head, _, rest = key.partition(".")
    if key in RESULT_FIELDS:
        return None
    if head in RESULT_PARTS and rest in RESULT_FIELDS[:4]:
        return None
    if head in DEFINITION_SECTIONS and rest:
        return None
    known = [*RESULT_FIELDS, *(f"{p}.{f}" for p in RESULT_PARTS for f in RESULT_FIELDS[:4])]
    hint = did_you_mean(key, known)
    if rest and not hint:  # optm.lr: the section is misspelt
        hint = did_you_mean(key, [f"{s}.{rest}" for s in DEFINITION_SECTIONS])
    return (
        f"unknown key '{key}' (a result such as test_acc, best.test_acc, status, seed, or a "
        f"configuration key such as optim.lr)." + hint
    )


# a comparison outside quotes (`~` and `in (...)` included); a lone `=` is not one: the
# runs table shows overrides as `optim.lr=0.05`, and typing that must keep finding them
_LOOKS_COMPARED = re.compile(r"==|!=|<=|>=|<|>|~|\s=\s|\bin\s*\(", re.I)


def is_expression(text: str) -> bool:
    """Whether a filter box's text is a `--where` expression rather than text to look for:
    it holds a comparison (==, !=, <, <=, >, >=, ~, ` = `, `in (`), outside quotes, or
    starts with `not ` or `(`."""
    stripped = text.strip()
    if re.match(r"(?i)not\s|\(", stripped):
        return True
    unquoted = re.sub(r"'[^']*'?|\"[^\"]*\"?", "''", stripped)
    return _LOOKS_COMPARED.search(unquoted) is not None


def parse_where(text: str) -> Pred:
    """The filter as a predicate over `run_row(run)` dictionaries."""
    return _Parser(text, key_problem).parse()


# ----------------------------------------------------------------------------- runs as rows


_CONFIGS: dict[str, dict[str, Any]] = {}


def run_config(run: RunInfo) -> dict[str, Any]:
    """A run's resolved configuration as dotted keys (from its spec.toml, read once per
    definition: runs of one definition differ only in their seed)."""
    key = run.definition_hash() or f"path:{run.path}"
    flat = _CONFIGS.get(key)
    if flat is None:
        try:
            raw = tomllib.loads(run.spec_path().read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            raw = {}
        flat = {
            k: v for k, v in flatten({s: raw.get(s) or {} for s in DEFINITION_SECTIONS}).items()
        }
        _CONFIGS[key] = flat
    out = dict(flat)
    if run.seed is not None:
        out["train.seed"] = run.seed
    return out


def run_row(run: RunInfo) -> dict[str, Any]:
    """What `--where` can test of one run: configuration, figures (final unless named),
    status and identity."""
    s: Mapping[str, Any] = run.summary
    row = run_config(run)
    for part in RESULT_PARTS:
        for k, v in (s.get(part) or {}).items():
            row[f"{part}.{k}"] = v
    for k, v in (s.get("final") or s.get("last") or {}).items():
        row.setdefault(k, v)
    for k in ("seed", "group", "epochs_done", "best_epoch", "train_seconds", "wall_seconds"):
        if s.get(k) is not None:
            row[k] = s[k]
    for k in ("fold", "trial"):
        if isinstance(s.get(k), int):
            row[k] = s[k]
    row["status"] = run.status
    row["experiment"] = run.experiment
    row["id"] = run.id
    row["tag"] = run.tags
    return row


def filter_runs(runs: list[RunInfo], text: str) -> list[RunInfo]:
    pred = parse_where(text)
    return [r for r in runs if pred(run_row(r))]


def matching(runs: list[RunInfo], text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The ids of the runs `text` matches, and their experiments (the console's filter
    keeps an experiment's row when one of its runs matches)."""
    found = filter_runs(runs, text)
    return frozenset(r.id for r in found), frozenset(r.experiment for r in found)
