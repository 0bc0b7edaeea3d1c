"""bench.verdict: every verdict from samples with a known answer, the exact test's p-values, and BH's arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.verdict import VERDICTS, Verdict, benjamini_hochberg, decide, mann_whitney_p

SPREAD = np.linspace(0.98, 1.02, 10)
"""Ten samples spread by +-2 % around 1 (median 1.0), as a quiet machine gives."""


def shuffled(samples: np.ndarray, seed: int = 0) -> list[float]:
    return list(np.random.default_rng(seed).permutation(samples))


WIDE = np.linspace(1.0, 2.0, 10)
"""Ten samples spread over 1..2 (median 1.5): a noisy machine."""


@pytest.mark.parametrize(
    ("baseline", "candidate", "verdict", "ratio"),
    [
        pytest.param(SPREAD, 0.8 * SPREAD, "faster", 0.8, id="faster-by-20%"),
        pytest.param(SPREAD, 1.5 * SPREAD, "slower", 1.5, id="slower-by-50%"),
        pytest.param(SPREAD, SPREAD, "no change", 1.0, id="same-samples"),
        # Completely separated (significant) but only 3 % slower: not material.
        pytest.param(SPREAD, SPREAD + 0.03, "no change", 1.03, id="significant-not-material"),
        # 10 % slower in the median, but the sets overlap: not significant.
        pytest.param(WIDE, 1.1 * WIDE, "no change", 1.1, id="material-not-significant"),
    ],
)
def test_every_tested_verdict(baseline: np.ndarray, candidate: np.ndarray, verdict: str, ratio: float) -> None:
    (result,) = decide([(shuffled(baseline), shuffled(candidate, seed=1))])
    assert result.verdict == verdict
    assert result.ratio == pytest.approx(ratio)
    assert result.p_value == pytest.approx(mann_whitney_p(baseline, candidate))
    assert (result.p_value <= 0.05) == (verdict != "no change" or ratio == 1.03)


@pytest.mark.parametrize(("n_baseline", "n_candidate"), [(7, 8), (8, 7), (7, 7), (0, 10), (10, 0)])
def test_too_few_samples_whatever_the_effect(n_baseline: int, n_candidate: int) -> None:
    baseline, candidate = list(np.linspace(1, 1.01, n_baseline)), list(np.linspace(3, 3.01, n_candidate))
    (result,) = decide([(baseline, candidate)])
    assert result.verdict == "too few samples"
    assert math.isnan(result.p_value)
    assert result.ratio == pytest.approx(3.0, rel=0.01) if n_baseline and n_candidate else math.isnan(result.ratio)


def test_verdicts_are_the_declared_ones() -> None:
    pairs = [(SPREAD, 0.8 * SPREAD), (SPREAD, 1.5 * SPREAD), (SPREAD, SPREAD), (SPREAD[:3], SPREAD)]
    assert [v.verdict for v in decide(pairs)] == list(VERDICTS)
    assert all(isinstance(v, Verdict) for v in decide(pairs))


def test_eight_a_side_is_the_least_that_survives_150_comparisons() -> None:
    """The module docstring's arithmetic: complete separation gives p = 2 / C(2n, n); BH multiplies the smallest
    of 150 by 150. With 7 a side (0.00058 x 150 = 0.087) nothing is found, with 8 (0.00016 x 150 = 0.023) it is."""
    null = [(SPREAD, SPREAD)] * 149
    for n, smallest_p, verdict in [
        (5, 2 / math.comb(10, 5), "no change"),
        (7, 2 / math.comb(14, 7), "no change"),
        (8, 2 / math.comb(16, 8), "slower"),
    ]:
        separated = (SPREAD[:n], 2 * SPREAD[:n])
        assert mann_whitney_p(*map(np.asarray, separated)) == pytest.approx(smallest_p)
        alone, *_ = decide([separated], min_samples=n)
        assert alone.verdict == "slower" and alone.p_value == pytest.approx(smallest_p)
        among, *rest = decide([separated, *null], min_samples=n)
        assert among.p_value == pytest.approx(min(smallest_p * 150, 1.0))
        assert among.verdict == verdict
        assert {v.verdict for v in rest} == {"no change"}
    assert 2 / math.comb(10, 5) == pytest.approx(0.0079, abs=1e-4)


def test_bh_arithmetic_by_hand() -> None:
    # Sorted: 0.005, 0.01, 0.03, 0.04 -> x 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04; then the running minimum
    # from the largest down (step-up), back in the input's order.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # A larger p earlier in the order lowers nothing: 0.02 x 3/1 = 0.06 but 0.03 x 3/3 = 0.03 caps it at 0.03.
    assert benjamini_hochberg([0.02, 0.025, 0.03]) == pytest.approx([0.03, 0.03, 0.03])
    assert benjamini_hochberg([0.5, 0.9]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([0.9, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])
    assert benjamini_hochberg([]).size == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bh_matches_scipy(seed: int) -> None:
    p = np.random.default_rng(seed).uniform(0, 0.2, size=40) ** 2
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh"))


def test_decide_adjusts_across_the_tested_pairs_only() -> None:
    """The p-values of one call are BH-adjusted together; pairs with too few samples are not in the family."""
    rng = np.random.default_rng(3)
    pairs = [(rng.normal(1, 0.02, 10), rng.normal(1 + shift, 0.02, 10)) for shift in (0.0, 0.01, 0.02, 0.1)]
    raw = [mann_whitney_p(b, c) for b, c in pairs]
    expected = benjamini_hochberg(raw)
    results = decide([*pairs, (SPREAD[:3], 2 * SPREAD[:3])])
    assert [r.p_value for r in results[:4]] == pytest.approx(list(expected))
    assert results[4].verdict == "too few samples"
    assert [r.verdict for r in decide(pairs)] == [r.verdict for r in results[:4]]


@pytest.mark.parametrize(("min_effect", "verdict"), [(0.25, "no change"), (0.24, "slower")])
def test_the_minimum_effect_is_strict(min_effect: float, verdict: str) -> None:
    baseline, candidate = 4 + np.arange(-4, 5) / 8, 5 + np.arange(-4, 5) / 8  # medians 4 and 5: ratio exactly 1.25
    (result,) = decide([(baseline, candidate)], min_effect=min_effect)
    assert result.ratio == 1.25 and result.verdict == verdict


@pytest.mark.parametrize(("q", "verdict"), [(0.01, "slower"), (0.0003, "no change")])
def test_q_is_the_level_of_the_adjusted_p(q: float, verdict: str) -> None:
    """8 a side, separated, beside a null pair: adjusted p = 0.000155 x 2 / 1 = 0.00031; <= 0.01, > 0.0003."""
    separated = (SPREAD[:8], 2 * SPREAD[:8])
    first, _ = decide([separated, (SPREAD, SPREAD)], q=q)
    assert first.p_value == pytest.approx(2 * 2 / math.comb(16, 8))
    assert first.verdict == verdict


def test_ties_use_the_exact_permutation_distribution() -> None:
    """scipy's exact U distribution assumes no ties; with ties the p-value comes from every arrangement."""
    baseline = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0])
    candidate = np.array([2.0, 3.0, 3.0, 4.0, 5.0, 5.0, 6.0, 6.0])
    permutation = stats.mannwhitneyu(baseline, candidate, method=stats.PermutationMethod(n_resamples=np.inf))
    assert mann_whitney_p(baseline, candidate) == pytest.approx(permutation.pvalue)
    assert mann_whitney_p(baseline, candidate) != pytest.approx(
        stats.mannwhitneyu(baseline, candidate, method="exact").pvalue
    )


def test_large_samples_use_the_normal_approximation() -> None:
    rng = np.random.default_rng(4)
    baseline, candidate = rng.normal(1, 0.02, 150), rng.normal(1.004, 0.02, 150)
    assert mann_whitney_p(baseline, candidate) == pytest.approx(
        stats.mannwhitneyu(baseline, candidate, method="asymptotic").pvalue
    )


@pytest.mark.parametrize(
    ("pairs", "options"),
    [
        pytest.param([([1.0, math.nan], [1.0, 2.0])], {}, id="nan-sample"),
        pytest.param([([1.0, math.inf], [1.0, 2.0])], {}, id="infinite-sample"),
        pytest.param([], {"min_samples": 0}, id="min-samples-0"),
        pytest.param([], {"q": 0.0}, id="q-0"),
        pytest.param([], {"min_effect": -0.1}, id="negative-effect"),
    ],
)
def test_bad_input_is_refused(pairs: list, options: dict) -> None:
    with pytest.raises(ValueError):
        decide(pairs, **options)


def test_no_pairs_no_verdicts() -> None:
    assert decide([]) == []
