"""Summary statistics of the timed repeats of one configuration."""

from __future__ import annotations

import numpy as np


def summarise(samples_s: list[float], iterations: int) -> dict[str, float]:
    """Median, min, mean, standard deviation (ddof=1; 0 for one sample), IQR, CV and microseconds per
    iteration (median / iterations) of ``samples_s``."""
    s = np.asarray(samples_s, dtype=float)
    if s.size == 0:
        raise ValueError("no samples to summarise")
    median = float(np.median(s))
    mean = float(s.mean())
    std = float(s.std(ddof=1)) if s.size > 1 else 0.0
    q1, q3 = np.percentile(s, [25, 75])
    return {
        "repeats": int(s.size),
        "median_s": median,
        "min_s": float(s.min()),
        "mean_s": mean,
        "std_s": std,
        "iqr_s": float(q3 - q1),
        "cv": std / mean if mean > 0 else 0.0,
        "us_per_iter": median / iterations * 1e6,
    }


BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def ratio_of_medians(old_s: list[float], new_s: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``median(new) / median(old)`` and its percentile-bootstrap confidence interval.

    Each of the :data:`BOOTSTRAP_RESAMPLES` resamples draws both runs' repeats again with replacement
    (independently, as the two runs are), from a generator seeded with :data:`BOOTSTRAP_SEED`, so the same
    data always gives the same interval. With one repeat on a side, that side contributes no spread.
    """
    old, new = np.asarray(old_s, dtype=float), np.asarray(new_s, dtype=float)
    if old.size == 0 or new.size == 0:
        raise ValueError("no samples to compare")
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    old_medians = np.median(rng.choice(old, size=(BOOTSTRAP_RESAMPLES, old.size)), axis=1)
    new_medians = np.median(rng.choice(new, size=(BOOTSTRAP_RESAMPLES, new.size)), axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(new_medians / old_medians, [tail, 100 - tail])
    return float(np.median(new) / np.median(old)), float(low), float(high)
