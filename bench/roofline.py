"""The machine's floor for one iteration of the fit: the least time its memory and arithmetic allow.

One iteration must at least read x and y once (``2 n itemsize`` bytes) and do the fused kernel's arithmetic
on every element. Counting the operations of the fused pass (Horner's form, residual, loss and the four
gradient sums accumulated in the same loop, as in ``backends/numba_kernels.py``), per element, a fused
multiply-add counting as one operation (it takes one issue slot, as an add or a multiply does):

====================================  ====================================
Horner ``((d x + c) x + b) x + a``        3  (multiply-adds)
residual ``r = p - y``                    1
loss ``+= r * r``                         1  (multiply-add)
``grad_a += r``                           1
``grad_b += r x`` (``rx = r * x``)        2
``grad_c += rx x`` (``rx2 = rx * x``)     2
``grad_d += rx2 x``                       1  (multiply-add)
====================================  ====================================

11 operations per element, 5 of them multiply-adds (16 flops as flops are usually counted); the factor 2 of
the gradient and the learning rate are applied once to the four sums, not per element. No rearrangement
found needs fewer: each of the five sums costs at least one operation, the residual four.

The machine's operation rate is half its flop rate as BLAS counts it (a matrix product is all multiply-adds,
two flops each), and the probe measures that rate with a matrix product (:mod:`bench.probe`): the peak of
the widest vector units.

``floor_us = max(bytes / bandwidth(working set), operations / operation rate)``, taking the bandwidth
measured by the machine probe at that working-set size, and the better of the probe's thread counts that the
configuration may use. It is a bound, not a prediction: no variant can beat it by more than the probe's own
noise, and ``x_floor = us_per_iter / floor_us`` says how far a variant is from it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping

OPERATIONS_PER_ELEMENT = 11
"""Floating-point operations per element of one iteration of the fused kernel, a multiply-add counting as one
(table above)."""

FLOPS_PER_OPERATION = 2
"""Flops per operation at the probe's rate: a matrix product's operations are all multiply-adds."""

READS_PER_ELEMENT = 2
"""Arrays read once per iteration: x and y."""


def bytes_per_iteration(n: int, itemsize: int) -> int:
    """Bytes an iteration must read at least: x and y once."""
    return READS_PER_ELEMENT * n * itemsize


def bandwidth_at(working_set: float, points: Iterable[tuple[float, float]]) -> float:
    """Read bandwidth (GB/s) at ``working_set`` bytes, interpolated linearly in log2(size) between the measured
    ``(bytes, GB/s)`` points and held constant beyond the smallest and largest."""
    table = sorted(points)
    if not table:
        raise ValueError("no bandwidth points to interpolate")
    if working_set <= table[0][0]:
        return table[0][1]
    for (low, low_bw), (high, high_bw) in itertools.pairwise(table):
        if working_set <= high:
            share = (math.log2(working_set) - math.log2(low)) / (math.log2(high) - math.log2(low))
            return low_bw + share * (high_bw - low_bw)
    return table[-1][1]


def floor_us(n: int, itemsize: int, bandwidth_gb_per_s: float, gflop_per_s: float) -> float:
    """The larger of the memory time and the arithmetic time of one iteration, in microseconds."""
    memory_s = bytes_per_iteration(n, itemsize) / (bandwidth_gb_per_s * 1e9)
    arithmetic_s = OPERATIONS_PER_ELEMENT * n / (gflop_per_s * 1e9 / FLOPS_PER_OPERATION)
    return max(memory_s, arithmetic_s) * 1e6


def achieved_gb_per_s(n: int, itemsize: int, us_per_iter: float) -> float:
    """The bandwidth a variant would need to read x and y once per iteration at its measured speed."""
    return bytes_per_iteration(n, itemsize) / (us_per_iter * 1e-6) / 1e9


def machine_floor_us(probe: Mapping | None, n: int, dtype: str, itemsize: int, threads: int) -> float:
    """``floor_us`` for one configuration from a probe record (:func:`bench.probe.measure`), or NaN without one.

    Each thread count the probe measured, up to ``threads``, gives a floor; the smallest is the machine's:
    one core wins while a parallel pass costs more to start than it saves.
    """
    if not probe or "read" not in probe:
        return math.nan
    floors = []
    for count in {row["threads"] for row in probe["read"] if row["threads"] <= threads}:
        points = [(row["bytes"], row["gb_per_s"]) for row in probe["read"] if row["threads"] == count]
        rates = [row["gflop_per_s"] for row in probe["arithmetic"] if row["threads"] == count and row["dtype"] == dtype]
        if points and rates:
            working_set = bytes_per_iteration(n, itemsize)
            floors.append(floor_us(n, itemsize, bandwidth_at(working_set, points), rates[0]))
    return min(floors, default=math.nan)
