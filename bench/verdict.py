"""Did the candidate get faster, slower, or neither? One decision for every comparison of two sets of timings.

:func:`decide` takes pairs ``(baseline_samples, candidate_samples)`` (every timed sample of one configuration in
each of two runs) and gives each pair a :class:`Verdict`. A pair is ``faster`` or ``slower`` only when the change
is both *significant* and *material*:

- **Significant**: an exact two-sided Mann-Whitney U test of the two sets (no assumption about the shape of
  timing noise, which is skewed and heavy-tailed), its p-values adjusted by Benjamini-Hochberg across all the
  pairs of one call, so that of the changes reported about ``q`` are expected to be false, however many
  configurations are compared. The adjusted p-value must be at most ``q``.
- **Material**: ``ratio = median(candidate) / median(baseline)`` differs from 1 by more than ``min_effect``;
  with enough samples a 0.5 % shift is significant, and not worth a word.

Below ``min_samples`` on either side the answer is ``too few samples``: the exact test cannot reach
significance there. With 5 a side the smallest exact two-sided p is 2 / C(10, 5) = 0.0079, while BH over ~150
configurations lets the smallest of them through only at p <= 0.05 / 150 = 0.00033; 7 a side give 0.00058, still
too much, and 8 a side 2 / C(16, 8) = 0.00016. Hence 8 (two processes of 5 repeats give 10).

The test's method: scipy's ``method="exact"`` computes the null distribution of U without ties, which is only
valid without ties. With ties (a coarse clock), the exact permutation distribution of the tied ranks is used
while it has at most :data:`PERMUTATIONS_UP_TO` arrangements, else the normal approximation with tie
correction; the exact distribution itself is used up to :data:`EXACT_UP_TO` samples a side (its cost grows
quickly beyond: seconds at 300 a side), where the normal approximation is within a few percent of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

VERDICTS = ("faster", "slower", "no change", "too few samples")
"""Every verdict :func:`decide` gives; ``faster`` means the candidate is faster than the baseline."""
EXACT_UP_TO = 100
"""The most samples a side for which the exact null distribution of U is computed (no ties)."""
PERMUTATIONS_UP_TO = 50_000
"""With ties, the most arrangements C(n + m, n) enumerated for an exact permutation p-value."""

Samples = Sequence[float] | np.ndarray
"""One side of a pair: its samples, as a sequence of numbers or a one-dimensional array."""


@dataclass(frozen=True)
class Verdict:
    """The answer for one pair: ``ratio = median(candidate) / median(baseline)``, the Benjamini-Hochberg
    adjusted p-value (NaN when not tested) and one of :data:`VERDICTS`."""

    ratio: float
    p_value: float
    verdict: str


def mann_whitney_p(baseline: np.ndarray, candidate: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of two samples, exact where the method allows (module docstring)."""
    n, m = baseline.size, candidate.size
    ties = np.unique(np.concatenate([baseline, candidate])).size < n + m
    if not ties and max(n, m) <= EXACT_UP_TO:
        method = "exact"
    elif ties and math.comb(n + m, n) <= PERMUTATIONS_UP_TO:
        method = stats.PermutationMethod(n_resamples=np.inf)
    else:
        method = "asymptotic"
    return float(stats.mannwhitneyu(baseline, candidate, alternative="two-sided", method=method).pvalue)


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: the i-th smallest of m becomes ``min over k >= i of p_(k) m / k``
    (capped at 1), in the input's order. A pair is a discovery at level q when its adjusted p is <= q."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def decide(
    pairs: Sequence[tuple[Samples, Samples]],
    *,
    min_effect: float = 0.05,
    q: float = 0.05,
    min_samples: int = 8,
) -> list[Verdict]:
    """A :class:`Verdict` for each ``(baseline_samples, candidate_samples)`` pair, in order (module docstring).

    The pairs with fewer than ``min_samples`` on a side are ``too few samples`` and not part of the
    Benjamini-Hochberg family; the rest are tested together. Samples must be finite; an empty side has no
    median, so its ratio is NaN.
    """
    if min_samples < 1 or not 0 < q < 1 or min_effect < 0:
        raise ValueError(f"need min_samples >= 1, 0 < q < 1, min_effect >= 0 (got {min_samples}, {q}, {min_effect})")
    arrays = [(np.asarray(b, dtype=float), np.asarray(c, dtype=float)) for b, c in pairs]
    for baseline, candidate in arrays:
        if not (np.isfinite(baseline).all() and np.isfinite(candidate).all()):
            raise ValueError("samples must be finite numbers")
    ratios = [float(np.median(c) / np.median(b)) if b.size and c.size else math.nan for b, c in arrays]
    tested = [i for i, (b, c) in enumerate(arrays) if min(b.size, c.size) >= min_samples]
    adjusted = dict(zip(tested, benjamini_hochberg([mann_whitney_p(*arrays[i]) for i in tested]), strict=True))
    verdicts = []
    for i, ratio in enumerate(ratios):
        if i not in adjusted:
            verdicts.append(Verdict(ratio, math.nan, "too few samples"))
            continue
        p = float(adjusted[i])
        changed = p <= q and abs(ratio - 1) > min_effect
        verdicts.append(Verdict(ratio, p, ("slower" if ratio > 1 else "faster") if changed else "no change"))
    return verdicts
