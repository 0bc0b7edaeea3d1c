"""The probe's Numba read kernels (imported only when the probe runs; cached on disk by Numba)."""

from __future__ import annotations

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
