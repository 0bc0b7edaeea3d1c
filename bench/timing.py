"""How one configuration is timed; shared by the runner's worker and the pytest-benchmark module.

Rules (after TorchBench, triton's ``do_bench`` and JAX's "Benchmarking JAX code"):

1. ``prepare`` (x, y and weights onto the device, tracing set-up) happens before and is never timed.
2. One warm-up fit is timed on its own as ``first_call_s``: it includes compilation and first-touch costs.
3. Then up to ``repeats`` fits, each timed with ``time.perf_counter_ns`` around a call that ends
   synchronised (every backend's fit blocks until the device is done and returns host values), so
   asynchronous dispatch cannot make a framework look faster than it is.
4. A per-configuration time budget may cut the repeats (never below one); the cut is reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from backends.contract import Fit, FitResult


@dataclass(frozen=True)
class Measurement:
    """The timings of one configuration and the result of its last fit."""

    first_call_s: float
    samples_s: list[float]
    result: FitResult
    note: str = ""


def timed_call(fit: Fit) -> tuple[float, FitResult]:
    """Seconds taken by one synchronised fit, and its result."""
    start = time.perf_counter_ns()
    result = fit()
    return (time.perf_counter_ns() - start) / 1e9, result


def measure(fit: Fit, repeats: int, budget_s: float = math.inf) -> Measurement:
    """Warm up once, then time up to ``repeats`` fits within ``budget_s`` seconds of timed repeats.

    The first timed repeat always runs; further repeats run while the estimated time of all of them
    stays within the budget, so a slow configuration keeps at least one clean sample.
    """
    first_call_s, result = timed_call(fit)
    seconds, result = timed_call(fit)
    samples = [seconds]
    affordable = max(1, int(budget_s // seconds)) if seconds > 0 else repeats
    planned = min(repeats, affordable)
    while len(samples) < planned:
        seconds, result = timed_call(fit)
        samples.append(seconds)
    note = ""
    if planned < repeats:
        note = f"repeats cut from {repeats} to {planned} by the {budget_s:g} s per-configuration budget"
    return Measurement(first_call_s, samples, result, note)
