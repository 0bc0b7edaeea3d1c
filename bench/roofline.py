"""The machine's floor for one iteration of the fit: a lower bound on its time on this machine.

Every variant's iteration reads x and y (``2 n itemsize`` bytes) and computes, for each element, the
residual ``r = p(x) - y`` of the current weights and its contributions to the loss and the four gradient
sums. Two lower bounds on that time, each measured on the machine at hand by :mod:`bench.probe`:

- **memory**: ``2 n itemsize / bandwidth(W, threads)``, the read bandwidth a dot product of two arrays
  sustains at this configuration's own working set ``W = 2 n itemsize`` (so in whichever cache level, or
  memory, such a working set lives when it is read again every iteration, as the fit reads it).
- **arithmetic**: ``n / rate(dtype, threads)``, the elements per second at which the CPU's execution units
  can do one iteration's per-element vector instructions (:data:`MIXES`, counted per vector below), timed
  on arrays resident in L1, with independent accumulator chains (so no latency is charged), at every
  vector width the CPU has, the fastest mix and width taken. ``n`` elements need at least ``n / lanes``
  vectors, so the term is a bound even where a last vector is partial.

``floor_us = max(memory, arithmetic)``, for the best of the thread counts the probe measured up to the
configuration's (one thread's bandwidth at W taken as at least its best at any larger working set, which lives
in the same cache or a farther one; ``t`` threads' arithmetic rate taken as at least ``t`` times one thread's:
no more can be done, and a busy machine may deny the probe its cores together). The larger of two lower bounds
is a lower bound; the sum would not be (an out-of-order core overlaps loads with arithmetic). What it leaves
out only adds time: loop overhead, the horizontal sums and float64 accumulation across blocks, the weight
update, a framework's dispatch, and the serial dependency of each iteration on the last one's sums (except
that the parallel read bandwidth includes starting one parallel region per pass, as every parallel iteration
must). ``x_floor = us_per_iter / floor_us`` says how far a variant is from it; below 1 by more than the
probe's noise would mean the model is wrong.

Per vector of elements (``lanes`` elements: 8 float64 or 16 float32 with AVX-512):

=========================================  ======  =========================  ===========================
operation                                  fused   (Horner, reads x, y)       powers (reads x, x^2, x^3, y)
=========================================  ======  =========================  ===========================
prediction and residual                    3 multiply-adds + 1 subtract       1 subtract (a - y) + 3 m.-adds
sum of r                                   1 add                              1 add
sums of r x, r x^2                         2 multiplies + 2 adds              2 multiply-adds
sum of r x^3                               1 multiply-add                     1 multiply-add
loss, sum of r^2                           1 multiply-add                     1 multiply-add
total                                      5 m.-adds, 2 multiplies, 4 adds    7 m.-adds, 2 adds
=========================================  ======  =========================  ===========================

Both need 7 instructions that multiply (Horner's three, r x, r x^2, r x^3, r^2; no rearrangement found needs
fewer); they differ in the adds, which some CPUs issue to pipes of their own (AMD Zen 4) and others to the
multiply-add ports (many Intel cores), so which is cheaper is the machine's to say. The factor 2 of the
gradient and the learning rate apply once to the four sums, not per element. The bound holds for variants
that do this per-element work each iteration, as every variant here does (precomputing the data's moments
would make an iteration independent of n: a different algorithm, not a faster fit).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Mix:
    """The vector instructions one vector of elements costs in one iteration: fused multiply-adds, multiplies,
    and adds (a subtraction is an add), and the arrays each element reads."""

    name: str
    fma: int
    mul: int
    add: int
    arrays: int


FUSED = Mix("fused", fma=5, mul=2, add=4, arrays=2)
"""The tuned Numba kernel's loop (``_block_sums`` in ``backends/numba_kernels.py``), per vector: Horner's
three multiply-adds, the residual's subtraction, ``r x`` and ``r x^2`` (two multiplies), the sums of r,
r x, r x^2 (three adds) and of r x^3, r^2 (two multiply-adds). ``tests/test_roofline.py`` counts them in
the kernel's generated code."""

POWERS = Mix("powers", fma=7, mul=0, add=2, arrays=4)
"""The same iteration over precomputed powers of x (as NumPy's and JAX's tuned forms write it), per vector:
``a - y`` (an add), ``+ b x + c x^2 + d x^3`` (three multiply-adds), the sum of r (an add) and of r x, r x^2,
r x^3, r^2 (four multiply-adds): fewer instructions, more arrays to read."""

MIXES = (FUSED, POWERS)
"""The instruction mixes the probe times; the floor takes the fastest (which one wins depends on the CPU)."""

READS_PER_ELEMENT = 2
"""Arrays read once per iteration: x and y."""


def bytes_per_iteration(n: int, itemsize: int) -> int:
    """Bytes an iteration must read at least: x and y once."""
    return READS_PER_ELEMENT * n * itemsize


def at_least_as_fast_as_larger(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """``(bytes, GB/s)`` points with each figure raised to the best at any larger working set: one thread
    reads a working set at least as fast as a larger one (it lives in the same cache or a nearer one), so a
    lower figure is a slow spell of a shared core, not the machine."""
    raised, best = [], 0.0
    for size, rate in sorted(points, reverse=True):
        best = max(best, rate)
        raised.append((size, best))
    return sorted(raised)


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


def floor_us(n: int, itemsize: int, bandwidth_gb_per_s: float, gelem_per_s: float) -> float:
    """The larger of the memory time and the arithmetic time of one iteration, in microseconds."""
    memory_s = bytes_per_iteration(n, itemsize) / (bandwidth_gb_per_s * 1e9)
    arithmetic_s = n / (gelem_per_s * 1e9)
    return max(memory_s, arithmetic_s) * 1e6


def achieved_gb_per_s(n: int, itemsize: int, us_per_iter: float) -> float:
    """The bandwidth a variant would need to read x and y once per iteration at its measured speed."""
    return bytes_per_iteration(n, itemsize) / (us_per_iter * 1e-6) / 1e9


def machine_floor_us(probe: Mapping | None, n: int, dtype: str, itemsize: int, threads: int) -> float:
    """``floor_us`` for one configuration from a probe record (:func:`bench.probe.measure`), or NaN without one.

    Each thread count the probe measured, up to ``threads``, gives a floor; the smallest is the machine's:
    one core wins while a parallel pass costs more to start than it saves. The arithmetic rate for
    ``count`` threads is the fastest of the probe's mixes and vector widths, measured with ``count`` threads
    or with fewer and scaled to ``count`` (``count`` threads can do no more than ``count`` times what one
    does: more is never measured, and a busy machine, which rarely gives a probe all its cores at once,
    then cannot raise the floor). A record of an older probe (another measure of the arithmetic) gives NaN.
    """
    if not probe or "read" not in probe:
        return math.nan
    floors = []
    for count in {row["threads"] for row in probe["read"] if row["threads"] <= threads}:
        points = [(row["bytes"], row["gb_per_s"]) for row in probe["read"] if row["threads"] == count]
        if count == 1:  # not with several threads: there a small working set's figure is mostly the cost of
            points = at_least_as_fast_as_larger(points)  # starting a parallel region, which every pass pays
        rates = [
            row["gelem_per_s"] * count / row["threads"]
            for row in probe.get("arithmetic", [])
            if row["threads"] <= count and row["dtype"] == dtype and "gelem_per_s" in row
        ]
        if points and rates:
            working_set = bytes_per_iteration(n, itemsize)
            floors.append(floor_us(n, itemsize, bandwidth_at(working_set, points), max(rates)))
    return min(floors, default=math.nan)
