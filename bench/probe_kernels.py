"""The probe's Numba kernels (imported only when the probe runs; cached on disk by Numba)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FAST = {"reassoc", "contract"}
"""Reassociation lets LLVM vectorise the sums; no flag that changes what NaN or infinity do."""


def _read(parallel: bool):
    """``passes`` dot products of a and b: each pass reads both arrays once; in parallel, each pass is one
    parallel region over all threads."""
    loop = prange if parallel else range

    @njit(parallel=parallel, fastmath=FAST, cache=True)
    def read(a, b, passes):
        total = 0.0
        for _ in range(passes):
            s = 0.0
            for i in loop(a.size):
                s += a[i] * b[i]
            total += s
        return total

    return read


read = _read(parallel=False)
read_parallel = _read(parallel=True)


@njit(fastmath=FAST, cache=True)
def chain(a, k):
    """Sum over a of a degree-16 polynomial by Horner's form: 16 multiply-adds per element."""
    s = k[0] - k[0]
    for i in range(a.size):
        x = a[i]
        t = k[0] * x + k[1]
        t = t * x + k[2]
        t = t * x + k[3]
        t = t * x + k[4]
        t = t * x + k[5]
        t = t * x + k[6]
        t = t * x + k[7]
        t = t * x + k[8]
        t = t * x + k[9]
        t = t * x + k[10]
        t = t * x + k[11]
        t = t * x + k[12]
        t = t * x + k[13]
        t = t * x + k[14]
        t = t * x + k[15]
        t = t * x + k[16]
        s += t
    return s


@njit(parallel=True, fastmath=FAST, cache=True)
def arithmetic(a, k, passes, parts):
    """``passes`` of :func:`chain` over each of ``parts`` slices of a, the slices in parallel."""
    totals = np.zeros(parts)
    size = a.size // parts
    for part in prange(parts):
        own = a[part * size : (part + 1) * size]
        for _ in range(passes):
            totals[part] += chain(own, k)
    return totals.sum()
