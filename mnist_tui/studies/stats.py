"""Is one set of runs better than another? Welch's t, intervals, effect size, power.

The distributions come from scipy, imported inside the functions that need it: the
read-only commands that never compare anything (list, runs, show) must not pay for it,
and scipy is an optional extra (`pip install 'mnist-tui[stats]'`).

Every result says plainly when a statistic does not exist (one run on a side, no spread
between seeds) instead of carrying NaN to a screen.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mnist_tui.errors import MnistTuiError

ALPHA = 0.05
POWER = 0.80
BOOTSTRAP_BELOW = 5  # a bootstrap interval is shown beside Welch's where a side has fewer runs
BOOTSTRAP_RESAMPLES = 9999
MAX_SEEDS = 10_000  # beyond this, "seeds needed" says "more than 10,000"


def _scipy_stats() -> Any:
    try:
        from scipy import stats
    except ImportError:  # pragma: no cover - the test extra installs scipy
        raise MnistTuiError(
            "statistics need scipy: pip install 'mnist-tui[stats]' (or pip install scipy)"
        ) from None
    return stats


def have_scipy() -> bool:
    import importlib.util

    return importlib.util.find_spec("scipy") is not None  # found, not imported (1.5 s)


def _special() -> Any:
    """scipy.special: the t and noncentral t distributions a test and its power need, a
    third of scipy.stats' import time (which builds every distribution's docstring)."""
    try:
        from scipy import special
    except ImportError:  # pragma: no cover - the test extra installs scipy
        raise MnistTuiError(
            "statistics need scipy: pip install 'mnist-tui[stats]' (or pip install scipy)"
        ) from None
    return special


def _t_quantile(p: float, df: float) -> float:
    """Student's t quantile (scipy.stats.t.ppf, from scipy.special)."""
    return float(_special().stdtrit(df, p))


# ----------------------------------------------------------------------------- one sample


def mean_and_std(xs: Sequence[float]) -> tuple[float, float]:
    """The mean and sample standard deviation (0 for one value) of a non-empty sample.

    Two passes over floats with exactly rounded sums (math.fsum): equal to the
    statistics module's exact-fraction results to the last digit or two, a hundred times
    faster, which a report of 100,000 runs needs."""
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


@dataclass(frozen=True)
class MeanInterval:
    """A sample's mean with its 95% confidence interval (Student's t, n - 1 df)."""

    n: int
    mean: float
    std: float  # sample standard deviation; 0 for one value
    low: float | None  # None for a single value: no spread to estimate from
    high: float | None

    def contains(self, x: float) -> bool | None:
        if self.low is None or self.high is None:
            return None
        return self.low - 1e-12 <= x <= self.high + 1e-12


def mean_interval(xs: Sequence[float], level: float = 0.95) -> MeanInterval | None:
    """The mean of `xs` and its `level` t interval; None for no values."""
    values = [float(x) for x in xs]
    if not values:
        return None
    mean, std = mean_and_std(values)
    return interval_of(len(values), mean, std, level)


def interval_of(n: int, mean: float, std: float, level: float = 0.95) -> MeanInterval:
    """`mean_interval` from a sample's size, mean and standard deviation (a report's
    groups carry these, not their values)."""
    if n < 2:
        return MeanInterval(1, mean, 0.0, None, None)
    if std == 0:
        return MeanInterval(n, mean, 0.0, mean, mean)
    half = _t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return MeanInterval(n, mean, std, mean - half, mean + half)


# ----------------------------------------------------------------------------- two samples


@dataclass
class Comparison:
    """B minus A on one metric. `diff` and its intervals are in the metric's own units
    (fractions for accuracy); `better` is the side whose mean is better, if either."""

    a: str
    b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    std_a: float
    std_b: float
    diff: float  # mean_b - mean_a
    higher_is_better: bool
    t: float | None = None
    df: float | None = None
    p: float | None = None  # two-sided Welch p
    p_adjusted: float | None = None  # Holm, when several pairs are compared
    ci_low: float | None = None  # Welch 95% interval of diff
    ci_high: float | None = None
    boot_low: float | None = None  # percentile bootstrap 95% interval, where n < 5
    boot_high: float | None = None
    hedges_g: float | None = None
    seeds_needed: int | None = None  # runs per side for 80% power at `power_delta`
    power_delta: float | None = None
    problem: str | None = None  # why there is no test (n = 1, no spread), said plainly
    notes: list[str] = field(default_factory=list)

    @property
    def p_used(self) -> float | None:
        return self.p_adjusted if self.p_adjusted is not None else self.p

    @property
    def significant(self) -> bool:
        p = self.p_used
        return p is not None and p < ALPHA

    @property
    def better(self) -> str | None:
        """The better side's label when the difference is settled, else None."""
        if not self.significant or self.diff == 0:
            return None
        b_higher = self.diff > 0
        return self.b if b_higher == self.higher_is_better else self.a

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["significant"] = self.significant
        out["better"] = self.better
        return out


def _clean(x: Any) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float | None:
    """(mean b - mean a) / pooled std, times the small-sample correction
    J = 1 - 3 / (4 (n_a + n_b) - 9). None without spread or with a single run a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    return _hedges_g(Sample.of(a), Sample.of(b))


def _hedges_g(a: Sample, b: Sample) -> float | None:
    if a.n < 2 or b.n < 2:
        return None
    pooled = math.sqrt(((a.n - 1) * a.std**2 + (b.n - 1) * b.std**2) / (a.n + b.n - 2))
    if pooled == 0:
        return None
    return (b.mean - a.mean) / pooled * (1 - 3 / (4 * (a.n + b.n) - 9))


def seeds_needed(
    delta: float, std_a: float, std_b: float, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Runs per side for a two-sided two-sample t test to find `delta` with `power`.

    The test is Welch's, as `compare` runs it: the power of n runs a side is that of the
    noncentral t with noncentrality delta / sqrt((sa² + sb²) / n) and the
    Welch-Satterthwaite df, (n - 1)(sa² + sb²)² / (sa⁴ + sb⁴) (2n - 2 when the spreads are
    equal; near n - 1 when one side's spread dominates, which needs more runs). None when
    there is no spread or no difference to find; MAX_SEEDS + 1 when more than MAX_SEEDS
    would be needed."""
    va, vb = std_a**2, std_b**2
    s = math.sqrt((va + vb) / 2)
    if s == 0 or delta == 0 or not math.isfinite(delta):
        return None
    special = _special()  # nctdtr: scipy.stats.nct.cdf, without scipy.stats' import
    effect = abs(delta) / s
    df_per_run = (va + vb) ** 2 / (va**2 + vb**2)  # Welch's df is this times (n - 1)

    def power_at(n: int) -> float:
        df = df_per_run * (n - 1)
        crit = special.stdtrit(df, 1 - alpha / 2)
        nc = effect * math.sqrt(n / 2)
        return float(1 - special.nctdtr(df, nc, crit) + special.nctdtr(df, nc, -crit))

    lo, hi = 2, 2
    while power_at(hi) < power:
        if hi > MAX_SEEDS:
            return MAX_SEEDS + 1
        lo, hi = hi, hi * 2
    while lo < hi:  # the smallest n with enough power (power grows with n)
        mid = (lo + hi) // 2
        if power_at(mid) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def bootstrap_interval(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(b) - mean(a) (fixed seed: reproducible)."""
    if len(a) < 2 or len(b) < 2:
        return None
    import numpy as np

    st = _scipy_stats()
    res = st.bootstrap(
        (np.asarray(b, dtype=float), np.asarray(a, dtype=float)),
        lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(0),
        vectorized=True,
    )
    lo, hi = _clean(res.confidence_interval.low), _clean(res.confidence_interval.high)
    return (lo, hi) if lo is not None and hi is not None else None


@dataclass(frozen=True)
class Sample:
    """What Welch's test, the effect size and the power need of one side."""

    n: int
    mean: float
    std: float  # sample standard deviation; 0 for one value

    @classmethod
    def of(cls, xs: Sequence[float]) -> Sample:
        return cls(len(xs), *mean_and_std(xs))


def compare_two(
    a_label: str,
    a: Sequence[float],
    b_label: str,
    b: Sequence[float],
    *,
    higher_is_better: bool = True,
    delta: float | None = None,
) -> Comparison:
    """Welch's t test of B against A, its 95% interval, effect size and seeds needed.

    `delta`: the difference the seeds-needed estimate should detect (default: the one
    observed)."""
    xa, xb = [float(x) for x in a], [float(x) for x in b]
    if not xa or not xb:
        raise MnistTuiError(
            f"nothing to compare: {a_label if not xa else b_label} has no completed runs"
        )
    return compare_samples(
        a_label,
        Sample.of(xa),
        b_label,
        Sample.of(xb),
        higher_is_better=higher_is_better,
        delta=delta,
        values=lambda: (xa, xb),
    )


def compare_samples(
    a_label: str,
    a: Sample,
    b_label: str,
    b: Sample,
    *,
    higher_is_better: bool = True,
    delta: float | None = None,
    values: Callable[[], tuple[Sequence[float], Sequence[float]]] | None = None,
) -> Comparison:
    """`compare_two` from each side's size, mean and spread (a report's groups carry
    these); `values` gives both sides' values, asked for only where a side has fewer
    than BOOTSTRAP_BELOW runs (the bootstrap interval resamples them)."""
    na, nb, ma, mb, sa, sb = a.n, b.n, a.mean, b.mean, a.std, b.std
    c = Comparison(a_label, b_label, na, nb, ma, mb, sa, sb, mb - ma, higher_is_better)
    if na < 2 or nb < 2:
        one = " and ".join(label for label, n in ((a_label, na), (b_label, nb)) if n < 2)
        c.problem = f"only one run of {one}: no seed spread to test against; run more seeds"
        return c
    c.hedges_g = _hedges_g(a, b)
    if sa == 0 and sb == 0:
        c.problem = (
            "every run of each side gave the same figure: no seed spread to test against"
            if ma != mb
            else "every run of both sides gave the same figure"
        )
        return c
    # Welch's test by its formulas (scipy.stats.ttest_ind(b, a, equal_var=False) gives
    # the same figures; its import costs three times scipy.special's)
    wa, wb = sa**2 / na, sb**2 / nb
    se = math.sqrt(wa + wb)
    df = (wa + wb) ** 2 / (wa**2 / (na - 1) + wb**2 / (nb - 1))
    t = (mb - ma) / se
    special = _special()
    half = float(special.stdtrit(df, 0.975)) * se
    c.t, c.df, c.p = _clean(t), _clean(df), _clean(2 * special.stdtr(df, -abs(t)))
    c.ci_low, c.ci_high = _clean(c.diff - half), _clean(c.diff + half)
    if min(na, nb) < BOOTSTRAP_BELOW and values is not None:
        boot = bootstrap_interval(*values())
        if boot is not None:
            c.boot_low, c.boot_high = boot
    c.power_delta = c.diff if delta is None else delta
    c.seeds_needed = seeds_needed(c.power_delta, sa, sb)
    return c


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i), made
    non-decreasing, capped at 1. Missing p-values stay missing and do not count in m."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass
class Side:
    """One side of a comparison: a label and its runs' figures."""

    label: str
    values: list[float]
    what: str = ""  # "experiment", "variant", "group"
    key: str = ""  # its id where it has one
    run_ids: list[str] = field(default_factory=list)


@dataclass
class Study:
    """Several sides on one metric: ranked means and every pair, Holm-corrected."""

    metric: str
    at: str  # "final" or "best"
    higher_is_better: bool
    sides: list[Side]  # best mean first
    pairs: list[Comparison]  # each lower-ranked side as A against a higher-ranked B

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "at": self.at,
            "higher_is_better": self.higher_is_better,
            "sides": [
                {
                    "label": s.label,
                    "kind": s.what,
                    "id": s.key,
                    "n": len(s.values),
                    "mean": statistics.fmean(s.values) if s.values else None,
                    "std": statistics.stdev(s.values) if len(s.values) > 1 else 0.0,
                    "runs": s.run_ids,
                    "values": s.values,
                }
                for s in self.sides
            ],
            "pairs": [p.to_json() for p in self.pairs],
        }


def higher_is_better(metric: str) -> bool:
    """Accuracies up, losses (and anything else named like an error) down."""
    return not any(w in metric.lower() for w in ("loss", "error", "seconds", "time"))


def compare_sides(
    sides: Sequence[Side],
    metric: str = "test_acc",
    at: str = "final",
    *,
    delta: float | None = None,
) -> Study:
    """Two sides: one Welch comparison, in the order given (B against A). More: the sides
    ranked by mean, every pair compared (the lower-ranked as A), p-values Holm-adjusted."""
    up = higher_is_better(metric)
    if len(sides) < 2:
        raise MnistTuiError("compare needs at least two sides")
    if len(sides) == 2:
        a, b = sides
        pair = compare_two(a.label, a.values, b.label, b.values, higher_is_better=up, delta=delta)
        return Study(metric, at, up, list(sides), [pair])

    def mean(s: Side) -> float:
        return statistics.fmean(s.values) if s.values else -math.inf

    ranked = sorted(sides, key=mean, reverse=up)
    pairs = []
    for i, better in enumerate(ranked):
        for worse in ranked[i + 1 :]:
            pairs.append(
                compare_two(
                    worse.label,
                    worse.values,
                    better.label,
                    better.values,
                    higher_is_better=up,
                    delta=delta,
                )
            )
    for pair, adjusted in zip(pairs, holm([p.p for p in pairs]), strict=True):
        pair.p_adjusted = adjusted
    return Study(metric, at, up, ranked, pairs)


# ----------------------------------------------------------------------------- words


def scale_of(metric: str) -> tuple[float, str]:
    """Accuracies read in percentage points; anything else in its own units."""
    return (100.0, " pp") if metric.endswith("acc") else (1.0, "")


def amount(metric: str, x: float) -> str:
    k, unit = scale_of(metric)
    return f"{k * x:.2f}{unit}" if unit else f"{x:.4g}"


def interval_text(metric: str, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "—"
    k, unit = scale_of(metric)
    if unit:
        return f"{k * low:+.2f} to {k * high:+.2f}"
    return f"{low:+.4g} to {high:+.4g}"


def p_text(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def seeds_text(n: int | None) -> str:
    if n is None:
        return "—"
    return f"> {MAX_SEEDS:,}" if n > MAX_SEEDS else str(n)


def verdict(c: Comparison, metric: str) -> str:
    """One plain sentence: who is better and by how much, or why it cannot be told."""
    size = amount(metric, abs(c.diff))
    if c.problem is not None:
        if c.n_a > 1 and c.n_b > 1 and c.diff != 0:
            ahead = c.b if (c.diff > 0) == c.higher_is_better else c.a
            return f"{ahead} is ahead by {size}, but {c.problem}"
        return c.problem[0].upper() + c.problem[1:]
    if c.better is not None:
        worse = c.a if c.better == c.b else c.b
        k, unit = scale_of(metric)
        lo, hi = c.ci_low, c.ci_high
        sign = 1 if c.better == c.b else -1
        if lo is not None and hi is not None:
            lo, hi = sorted((sign * lo, sign * hi))
            ci = (
                f", 95% CI {k * lo:.2f} to {k * hi:.2f}{unit}"
                if unit
                else f", 95% CI {lo:.4g} to {hi:.4g}"
            )
        else:
            ci = ""
        adjusted = " (Holm-adjusted)" if c.p_adjusted is not None else ""
        return f"{c.better} is better than {worse} by {size}{ci}, p {p_text(c.p_used)}{adjusted}"
    # named: with more than two sides the verdicts are a list of pairs
    text = f"{c.b} and {c.a}: not distinguishable with {c.n_b} and {c.n_a} runs"
    if c.seeds_needed is not None and c.power_delta is not None:
        text += (
            f"; about {seeds_text(c.seeds_needed)} runs a side would detect "
            f"{amount(metric, abs(c.power_delta))} at 80% power"
        )
    return text
