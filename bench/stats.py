"""Summary statistics of the timed repeats of one configuration."""

from __future__ import annotations

import math

import numpy as np


def summarise(samples_s: list[float], iterations: int, processes: list[int] | None = None) -> dict[str, float]:
    """Statistics of a configuration's timed repeats, ``processes[i]`` the worker process (round) that timed
    ``samples_s[i]`` (None: all in one).

    Over all samples: median, min, mean, standard deviation (ddof=1), IQR and microseconds per iteration
    (median / iterations). ``cv``: the spread *within* processes, the root mean of each process's variance
    (ddof=1) over the mean. ``process_cv``: the spread *between* processes, the standard deviation (ddof=1)
    of the per-process medians over their mean. A spread needs two values: ``std_s``, ``iqr_s`` and ``cv``
    are NaN below 2 samples (``cv`` also when no process has 2), ``process_cv`` below 2 processes.
    """
    s = np.asarray(samples_s, dtype=float)
    if s.size == 0:
        raise ValueError("no samples to summarise")
    of = np.zeros(s.size, dtype=int) if processes is None else np.asarray(processes)
    groups = [s[of == p] for p in np.unique(of)]
    median = float(np.median(s))
    mean = float(s.mean())
    q1, q3 = np.percentile(s, [25, 75])
    variances = [float(g.var(ddof=1)) for g in groups if g.size > 1]
    medians = np.array([np.median(g) for g in groups])
    between = float(medians.std(ddof=1) / medians.mean()) if len(groups) > 1 and medians.mean() > 0 else math.nan
    return {
        "repeats": int(s.size),
        "processes": len(groups),
        "median_s": median,
        "min_s": float(s.min()),
        "mean_s": mean,
        "std_s": float(s.std(ddof=1)) if s.size > 1 else math.nan,
        "iqr_s": float(q3 - q1) if s.size > 1 else math.nan,
        "cv": math.sqrt(float(np.mean(variances))) / mean if variances and mean > 0 else math.nan,
        "process_cv": between,
        "us_per_iter": median / iterations * 1e6,
    }
