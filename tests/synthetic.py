"""Synthetic run folders with known answers, for the tests of what reads them (report, compare, the scaling
sections): rows written with the project's own CSV writer, so that they are what a run writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import results

NUMPY_LOOP = {
    "backend": "numpy",
    "grad": "manual",
    "mode": "eager",
    "formulation": "tutorial",
    "form": "tutorial",
    "device": "cpu",
    "dtype": "float64",
}
"""The key of NumPy's tutorial loop in float64 on the CPU: what a synthetic row is unless it says otherwise."""


def write_configuration(folder: Path, samples: Sequence[float], iterations: int, status: str = "ok", **key) -> None:
    """Append one configuration of ``iterations`` iterations to the run ``folder``: its summary row (the median of
    the seconds ``samples``) and, when its ``status`` is ok, a raw row for each sample. ``key``: the fields in
    which it differs from :data:`NUMPY_LOOP` (``n`` is required)."""
    base = {
        "run_id": folder.name,
        **NUMPY_LOOP,
        **key,
        "iterations": iterations,
        "iterations_timed": iterations,
        "status": status,
        "host": "synthetic",
        "reason": "" if status == "ok" else "synthetic failure",
    }
    median = float(np.median(samples))
    summary = {**base, "repeats": len(samples), "median_s": median, "us_per_iter": median / iterations * 1e6}
    results.append_rows(folder, "summary", [summary])
    if status == "ok":
        results.append_rows(folder, "raw", [{**base, "repeat": i, "seconds": s} for i, s in enumerate(samples)])
