"""Will a configuration fit in memory? An estimate of what the tutorial loop needs, checked before it starts.

The host check runs in the runner, before a worker is started; the device check runs in the worker, where the
framework is loaded and can say how much of its device is free (:meth:`backends.contract.Backend.free_memory`).
"""

from __future__ import annotations

import numpy as np

from backends.contract import Problem

ARRAYS_ALIVE = 12
"""Arrays of n elements alive at once in the tutorial loop (x, y, y_pred, y_pred - y, its gradient, x**2,
x**3 and their products, plus framework temporaries), a deliberately generous count."""

HEADROOM = 0.8
"""Only this share of the free memory is counted on: allocators, caches and other processes need the rest."""


def estimated_bytes(problem: Problem) -> int:
    """Bytes the fit of ``problem`` needs at most, by the generous count above."""
    return problem.n * np.dtype(problem.dtype).itemsize * ARRAYS_ALIVE


def shortfall(problem: Problem, free_bytes: int, where: str) -> str | None:
    """The reason to skip ``problem`` when it cannot fit in ``free_bytes`` of ``where`` memory, else None."""
    need = estimated_bytes(problem)
    if need <= HEADROOM * free_bytes:
        return None
    return (
        f"needs about {need / 2**30:.2f} GiB of {where} memory ({ARRAYS_ALIVE} arrays of n={problem.n:,}"
        f" {problem.dtype}), {free_bytes / 2**30:.2f} GiB free"
    )
