"""How one configuration is timed; shared by the runner's worker and the pytest-benchmark module.

Rules (after TorchBench, triton's ``do_bench`` and JAX's "Benchmarking JAX code"):

1. ``prepare`` (x, y and weights onto the device, tracing set-up) happens before and is never timed.
2. One warm-up fit is timed on its own as ``first_call_s``: it includes compilation and first-touch costs.
3. Then up to ``repeats`` fits, each timed with ``time.perf_counter_ns`` around a call that ends
   synchronised (every backend's fit blocks until the device is done and returns host values), so
   asynchronous dispatch cannot make a framework look faster than it is. Before each call, untimed, the fit
   is reset to the initial weights of that repeat (every repeat has its own, from its own seed) and its output
   buffers are filled with NaN; every repeat's result is kept, for the check against its own reference.
4. A per-configuration time budget may cut the repeats, never below ``min_repeats``; the cut is reported.
   A per-fit budget may shorten the loop of a configuration whose every iteration is slow (see
   :func:`affordable_iterations`); the iterations timed and the reason are reported.
5. Where the backend has a device clock (CUDA events), each timed repeat is also timed on the device: a
   start mark recorded just before the call, an end mark just after it returns. The host clock stays the
   main figure; the device figure shows how much of it the device spent between the two marks.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from backends.contract import DeviceTimer, Fit, FitResult


@dataclass(frozen=True)
class Measurement:
    """The timings of one configuration and the result of each timed repeat."""

    first_call_s: float
    samples_s: list[float]
    results: list[FitResult]
    """What each timed repeat returned, in order (``samples_s[i]`` timed ``results[i]``)."""
    note: str = ""
    device_samples_s: list[float] = field(default_factory=list)
    """Seconds of each timed repeat on the device's own clock; empty without one."""


def timed_call(fit: Fit) -> tuple[float, FitResult]:
    """Seconds taken by one synchronised fit, and its result."""
    start = time.perf_counter_ns()
    result = fit()
    return (time.perf_counter_ns() - start) / 1e9, result


def affordable_repeats(budget_s: float, seconds: float) -> int:
    """How many repeats of ``seconds`` each fit in ``budget_s`` (at least one; any number without a budget)."""
    if not math.isfinite(budget_s) or seconds <= 0:
        return sys.maxsize
    return max(1, int(budget_s // seconds))


def affordable_iterations(
    iterations: int, per_iteration_s: float, fit_budget_s: float | None, log_interval: int
) -> int:
    """How many of a fit's ``iterations`` fit in ``fit_budget_s`` at ``per_iteration_s`` each (None: all).

    A loop's iterations all do the same work, so time per iteration measured over a shorter loop is the
    same figure. The count is kept a multiple of ``log_interval`` (so logged losses stay comparable) and at
    least one interval (or all of ``iterations`` when there are fewer), so every timed fit still logs a loss
    to check against the reference: a fit slower than ``fit_budget_s`` over one interval is timed over one
    interval all the same, and exceeds the budget (the worker's note says so).
    """
    if fit_budget_s is None or per_iteration_s * iterations <= fit_budget_s:
        return iterations
    affordable = int(fit_budget_s / per_iteration_s) // log_interval * log_interval
    return min(iterations, max(affordable, log_interval))


def measure(
    fit: Fit,
    start: Callable[[int], np.ndarray],
    repeats: int,
    min_repeats: int = 1,
    budget_s: float = math.inf,
    device_timer: DeviceTimer | None = None,
) -> Measurement:
    """Warm up once, then time up to ``repeats`` fits within ``budget_s`` seconds of timed repeats.

    Timed repeat ``i`` starts from the weights ``start(i)`` (the warm-up from ``start(0)``). The first
    ``min_repeats`` always run; further repeats run while the estimated time of all of them stays within
    the budget. With a ``device_timer``, every timed repeat is also timed on the device (rule 5).
    """
    fit.reset(start(0))
    first_call_s, _ = timed_call(fit)
    samples: list[float] = []
    results: list[FitResult] = []
    device_samples: list[float] = []
    planned = repeats
    while len(samples) < planned:
        fit.reset(start(len(samples)))
        stop = device_timer() if device_timer else None
        seconds, result = timed_call(fit)
        samples.append(seconds)
        results.append(result)
        if stop:
            device_samples.append(stop())
        if len(samples) == 1:
            planned = min(repeats, max(min_repeats, affordable_repeats(budget_s, seconds)))
    note = ""
    if planned < repeats:
        note = f"repeats cut from {repeats} to {planned} by the {budget_s:g} s per-configuration budget"
    return Measurement(first_call_s, samples, results, note, device_samples)
