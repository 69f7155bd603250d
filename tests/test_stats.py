"""The statistics against published worked examples and scipy on fixed data."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats as st

from mnist_tui.studies import stats as S

# Welch's t test, worked example 1 of the Wikipedia article "Welch's t-test" (two samples
# of 15): t = 2.46, df = 24.9 (Welch-Satterthwaite), p = 0.021.
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """(t, df, p, se) of mean(b) - mean(a), from the textbook formulas."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    t = (statistics.fmean(b) - statistics.fmean(a)) / se
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p = 2 * st.t.sf(abs(t), df)
    return t, df, p, se


def test_welch_matches_the_published_example() -> None:
    c = S.compare_two("A1", A1, "A2", A2)
    assert c.t == pytest.approx(2.46, abs=0.005)
    assert c.df == pytest.approx(24.9, abs=0.1)
    assert c.p == pytest.approx(0.021, abs=0.0005)


def test_welch_t_df_p_and_interval_match_the_formulas() -> None:
    a = [0.9510, 0.9530, 0.9490]
    b = [0.9620, 0.9650, 0.9600, 0.9640]
    c = S.compare_two("a", a, "b", b)
    t, df, p, se = welch_by_hand(a, b)
    assert c.t == pytest.approx(t) and c.df == pytest.approx(df) and c.p == pytest.approx(p)
    half = st.t.ppf(0.975, df) * se
    assert c.ci_low == pytest.approx(c.diff - half)
    assert c.ci_high == pytest.approx(c.diff + half)
    assert c.diff == pytest.approx(statistics.fmean(b) - statistics.fmean(a))
    # few runs: a bootstrap interval beside Welch's, around the observed difference
    assert c.boot_low is not None and c.boot_high is not None
    assert c.boot_low <= c.diff <= c.boot_high


def test_hedges_g_by_hand() -> None:
    na, nb = len(A1), len(A2)
    pooled = math.sqrt(
        ((na - 1) * statistics.variance(A1) + (nb - 1) * statistics.variance(A2)) / (na + nb - 2)
    )
    d = (statistics.fmean(A2) - statistics.fmean(A1)) / pooled
    assert S.hedges_g(A1, A2) == pytest.approx(d * (1 - 3 / (4 * (na + nb) - 9)))


def test_bootstrap_only_below_five_runs() -> None:
    assert S.compare_two("A1", A1, "A2", A2).boot_low is None  # 15 runs a side


def test_holm_worked_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept at 0.06
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, None, 0.6]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert S.holm([]) == []


@pytest.mark.parametrize(("effect", "n"), [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_seeds_needed_matches_cohens_table(effect: float, n: int) -> None:
    """Cohen (1988), two-sided α = 0.05, power 0.80: n per group for d = 0.2, 0.5, 0.8."""
    assert S.seeds_needed(effect, 1.0, 1.0) == n


def test_seeds_needed_is_the_smallest_n_with_the_power() -> None:
    delta, sa, sb = 0.004, 0.002, 0.003
    n = S.seeds_needed(delta, sa, sb)
    assert n is not None
    s = math.sqrt((sa**2 + sb**2) / 2)

    def power(k: int, sa: float = sa, sb: float = sb) -> float:
        # Welch's test, as compare runs it: Welch-Satterthwaite df for k runs a side
        ea, eb = sa**2 / k, sb**2 / k
        df = (ea + eb) ** 2 / (ea**2 / (k - 1) + eb**2 / (k - 1))
        crit = st.t.ppf(0.975, df)
        nc = delta / math.sqrt(ea + eb)
        return float(1 - st.nct.cdf(crit, df, nc) + st.nct.cdf(-crit, df, nc))

    assert power(n) >= 0.8 > power(n - 1)
    assert S.seeds_needed(0.0, sa, sb) is None and S.seeds_needed(delta, 0, 0) is None
    assert s > 0
    # one side's spread dominating leaves Welch's test fewer df: more runs than pooled
    lop = S.seeds_needed(delta, 0.0045, 0.0001)
    assert lop is not None and power(lop, 0.0045, 0.0001) >= 0.8 > power(lop - 1, 0.0045, 0.0001)
    assert lop > S.seeds_needed(delta, math.sqrt((0.0045**2 + 0.0001**2) / 2), 0.0045 / 1.4143)


def test_one_run_is_said_plainly() -> None:
    c = S.compare_two("A", [0.91], "B", [0.90, 0.92])
    assert c.p is None and c.t is None and c.ci_low is None
    text = S.verdict(c, "test_acc")
    assert text.startswith("Only one run of A:") and "nan" not in text.lower()


def test_zero_variance_is_said_plainly() -> None:
    same = S.compare_two("A", [0.9, 0.9, 0.9], "B", [0.9, 0.9])
    assert same.p is None and "same figure" in S.verdict(same, "test_acc")
    apart = S.compare_two("A", [0.9, 0.9], "B", [0.92, 0.92])
    text = S.verdict(apart, "test_acc")
    assert text.startswith("B is ahead by 2.00 pp") and "no seed spread" in text
    # spread on one side only: Welch's test still exists
    one = S.compare_two("A", [0.9, 0.9, 0.9], "B", [0.91, 0.92, 0.93])
    assert one.p is not None and math.isfinite(one.p)
    t, df, p, _ = welch_by_hand([0.9, 0.9, 0.9], [0.91, 0.92, 0.93])
    assert one.t == pytest.approx(t) and one.df == pytest.approx(df) and one.p == pytest.approx(p)


def test_mean_interval_matches_scipy() -> None:
    xs = [0.9510, 0.9530, 0.9490]
    got = S.mean_interval(xs)
    assert got is not None
    lo, hi = st.t.interval(0.95, len(xs) - 1, loc=statistics.fmean(xs), scale=st.sem(xs))
    assert got.low == pytest.approx(lo) and got.high == pytest.approx(hi)
    single = S.mean_interval([0.9])
    assert single is not None and single.low is None and single.contains(0.9) is None
    assert S.mean_interval([]) is None


def test_verdicts() -> None:
    c = S.compare_two("A", [0.9500, 0.9510, 0.9490], "B", [0.9540, 0.9550, 0.9560])
    assert S.verdict(c, "test_acc").startswith("B is better than A by 0.50 pp, 95% CI ")
    loss = S.compare_two("A", [0.30, 0.31, 0.29], "B", [0.20, 0.21, 0.19], higher_is_better=False)
    assert loss.better == "B"
    close = S.compare_two("A", [0.90, 0.91, 0.92], "B", [0.905, 0.915, 0.92])
    text = S.verdict(close, "test_acc")
    assert text.startswith("B and A: not distinguishable with 3 and 3 runs; about ")
    assert "at 80% power" in text


def test_several_sides_are_ranked_and_holm_adjusted() -> None:
    sides = [
        S.Side("a", [0.90, 0.91, 0.92]),
        S.Side("b", [0.95, 0.96, 0.955]),
        S.Side("c", [0.93, 0.92, 0.925]),
        S.Side("d", [0.80, 0.82, 0.81]),
    ]
    study = S.compare_sides(sides, "test_acc")
    assert [s.label for s in study.sides] == ["b", "c", "a", "d"]
    assert len(study.pairs) == 6
    raw = [welch_by_hand(p_a, p_b)[2] for p_a, p_b in _pairs(study)]
    assert [p.p for p in study.pairs] == pytest.approx(raw)
    assert [p.p_adjusted for p in study.pairs] == pytest.approx(S.holm(raw))
    # a loss ranks lowest first
    losses = S.compare_sides([S.Side("x", [0.3, 0.31]), S.Side("y", [0.2, 0.21]), sides[0]], "loss")
    assert losses.sides[0].label == "y"


def _pairs(study: S.Study) -> list[tuple[list[float], list[float]]]:
    by = {s.label: s.values for s in study.sides}
    return [(by[p.a], by[p.b]) for p in study.pairs]
