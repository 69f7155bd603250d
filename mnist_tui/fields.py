"""Field constraints of a typed schema: `Range`, `Length`, `Help`.

A leaf module (it imports nothing of ours), so that both the model builders and the
experiment schema can use it and `config` -> `models` stays the only direction between them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Numeric bounds; for a list, every element must satisfy them."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        parts = []
        for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
            if bound is not None:
                # 1 << 20 reads 1048576, not 1.04858e+06
                text = str(int(bound)) if float(bound).is_integer() else f"{bound:g}"
                parts.append(f"{op} {text}")
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
