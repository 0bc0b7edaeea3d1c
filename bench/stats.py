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
