"""The exact float64 reference: the oracle every backend is checked against.

With X = [1, x, x^2, x^3] (n x 4) and w = (a, b, c, d), the tutorial's loss is
``L(w) = |X w - y|^2 = w^T M w - 2 v^T w + s`` with the moments ``M = X^T X``, ``v = X^T y``, ``s = y^T y``,
and its gradient is ``2 (M w - v)``. So the whole gradient-descent trajectory follows from a 4x4 matrix,
a 4-vector and a scalar, computed once in float64 from the float64 ``x``: any n and any iteration count,
with no n-sized work per iteration. The loss is evaluated as ``r^T M r - r_*`` around the least-squares
solution ``w*`` (``L(w) = (w - w*)^T M (w - w*) + L(w*)``), which avoids the cancellation of the expanded
form once the fit is good.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from backends.contract import FitResult, Problem, linspace_block, make_result

BLOCK = 1 << 20
"""Elements per block of the streamed moments: about 100 MB of float64 temporaries at a time, at any n."""

SHIPPED = Path(__file__).with_name("moments")
"""Moments shipped with arraybench (``<n>.json``), for the sizes above 10^8 that presets and tests use."""

DISK_FROM = 10**7
"""From this n on, computed moments are kept on disk (they take seconds at 10^7, minutes at 10^9)."""

CACHE_VARIABLE = "ARRAYBENCH_REFERENCE_CACHE"
"""The folder of the on-disk cache (default ``~/.cache/arraybench/moments``)."""

CACHE_VERSION = 1


class ExactSum:
    """An exact running sum of float64 values, fed block by block, rounded once at the end.

    Each value is ``m * 2**e`` with ``m`` in [0.5, 1) (``np.frexp``); ``m * 2**53`` is a 53-bit integer, split
    into a high and a low 26-27-bit part, which are added up per exponent ``e`` by ``np.bincount``: every
    partial sum of a block (at most :data:`BLOCK` = 2^20 parts under 2^27) stays an integer below 2^53, so the
    float64 additions are exact, and across blocks the counts are carried in int64. :meth:`value` assembles the
    exact sum as a Python integer times 2^-1127 and divides once, which Python rounds correctly (half to even),
    as ``math.fsum`` does: the result is ``math.fsum`` of all values, bit for bit, in memory for one block."""

    EXPONENTS = 2100
    """frexp's exponents of finite float64 run from -1073 to 1024; index ``e + 1074``."""

    def __init__(self) -> None:
        self.high = np.zeros(self.EXPONENTS, dtype=np.int64)
        self.low = np.zeros(self.EXPONENTS, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        """Add every element of ``values`` (float64, finite, at most :data:`BLOCK` of them) exactly."""
        assert values.dtype == np.float64 and values.size <= BLOCK
        mantissa, exponent = np.frexp(values)
        scaled = mantissa * 2.0**27
        high = np.floor(scaled)
        low = (scaled - high) * 2.0**26
        index = exponent + 1074
        self.high += np.bincount(index, weights=high, minlength=self.EXPONENTS).astype(np.int64)
        self.low += np.bincount(index, weights=low, minlength=self.EXPONENTS).astype(np.int64)

    def value(self) -> float:
        """The exact sum, correctly rounded to float64."""
        total = 0
        for index in np.flatnonzero(self.high | self.low):
            total += ((int(self.high[index]) << 26) + int(self.low[index])) << int(index)
        return total / (1 << 1127)


def streamed_moments(n: int, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`moments` computed in blocks of ``block`` elements: the same float64 ``x`` (built block by block,
    bit for bit, by :func:`backends.contract.linspace_block`), the same products (``x * x``, ``x * x * x``,
    ``p * q`` of those powers, ``p * y``) and one exact summation of each across all blocks (:class:`ExactSum`),
    so the result equals ``math.fsum`` over whole arrays to the last bit. Products that are the same floats
    (``1 * x`` and ``x``, ``x * (x * x)`` and ``x * x * x``) are summed once."""
    sums = [ExactSum() for _ in range(12)]
    for start in range(0, n, block):
        x = linspace_block(n, start, min(n, start + block), np.float64)
        y = np.sin(x)
        x2 = x * x
        x3 = x2 * x
        for total, product in zip(
            sums, (x, x2, x3, x * x3, x2 * x2, x2 * x3, x3 * x3, y, x * y, x2 * y, x3 * y, y * y), strict=True
        ):
            total.add(product)
    p1, p2, p3, p13, p22, p23, p33, v0, v1, v2, v3, s = (total.value() for total in sums)
    m = np.array([[float(n), p1, p2, p3], [p1, p2, p3, p13], [p2, p3, p22, p23], [p3, p13, p23, p33]])
    return m, np.array([v0, v1, v2, v3]), s


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "arraybench" / "moments")


def read_moments(path: Path, n: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The moments stored in ``path`` (exact, as float hex strings), or None when absent or not for ``n``."""
    try:
        data = json.loads(path.read_text())
        if data["version"] != CACHE_VERSION or data["n"] != n:
            return None
        m = np.array([[float.fromhex(c) for c in row] for row in data["m"]])
        return m, np.array([float.fromhex(c) for c in data["v"]]), float.fromhex(data["s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_moments(path: Path, n: int, m: np.ndarray, v: np.ndarray, s: float) -> None:
    """Store the moments of ``n`` exactly; written to a temporary file and renamed, so a reader never sees half."""
    data = {
        "version": CACHE_VERSION,
        "n": n,
        "m": [[float(c).hex() for c in row] for row in m],
        "v": [float(c).hex() for c in v],
        "s": float(s).hex(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)


@cache
def moments(n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """M = X^T X, v = X^T y and s = y^T y for x = linspace(-pi, pi, n) in float64, summed exactly.

    Streamed in bounded memory (:func:`streamed_moments`); from :data:`DISK_FROM` on read from the shipped
    moments or the on-disk cache when there, computed and cached otherwise. Cached in memory too (a sweep asks
    for the same n many times). The arrays are returned read-only."""
    found = None
    if n >= DISK_FROM:
        found = read_moments(SHIPPED / f"{n}.json", n) or read_moments(cache_folder() / f"{n}.json", n)
    m, v, s = found or streamed_moments(n)
    if found is None and n >= DISK_FROM:
        with contextlib.suppress(OSError):  # a read-only home costs the time again next run, nothing else
            write_moments(cache_folder() / f"{n}.json", n, m, v, s)
    m.flags.writeable = v.flags.writeable = False
    return m, v, s


def reference_fit(problem: Problem) -> FitResult:
    """The exact trajectory of the tutorial's gradient descent for ``problem``, in float64."""
    return reference_fits(problem, [problem.initial_weights()])[0]


def reference_fits(problem: Problem, starts: Sequence[np.ndarray]) -> list[FitResult]:
    """The exact trajectories of ``problem`` from each of ``starts`` (a, b, c, d), in one pass: the
    iterations act on a 4 x k matrix of weights, so k starts (one per timed repeat) cost about as much as one."""
    return _descend(problem, starts)[0]


def one_iteration_short(problem: Problem) -> tuple[FitResult, FitResult]:
    """The reference fit of ``problem``, and what a fit that missed one iteration returns, computed exactly.

    Gradient descent with a fixed step is the same map every iteration, so a fit that skips iteration k ends
    where the reference was after ``iterations - 1``: with the weights of one step before the end and the
    final loss of one iteration before the end, whichever k it skipped. Logged losses after k come out one
    iteration late; the least they can differ is when k is the last iteration (only a loss logged there moves),
    which is what this returns: the hardest missing iteration for the reference check to see.
    """
    (full,), (weights, final_loss) = _descend(problem, [problem.initial_weights()])
    logged = list(full.logged_losses)
    if problem.is_logged(problem.iterations - 1):
        logged[-1] = final_loss
    return full, FitResult(weights=weights, final_loss=final_loss, logged_losses=logged)


def _descend(problem: Problem, starts: Sequence[np.ndarray]) -> tuple[list[FitResult], tuple]:
    """The fits from ``starts``, and the first start's weights and loss one iteration before the end."""
    m, v, s = moments(problem.n)
    w_star = np.linalg.solve(m, v)
    least_loss = max(s - float(v @ w_star), 0.0)
    lr = problem.lr
    w = np.array([np.asarray(start, dtype=np.float64) for start in starts]).T  # 4 x k
    logged: list[np.ndarray] = []
    loss = previous_loss = np.full(w.shape[1], math.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(problem.iterations):
            r = w - w_star[:, None]
            previous_loss, loss = loss, np.einsum("ik,ik->k", r, m @ r) + least_loss
            if problem.is_logged(t):
                logged.append(loss)
            previous_w, w = w, w - lr * 2.0 * (m @ w - v[:, None])
    # With one iteration there is none before it: its loss comes before its step, so that loss stays.
    before_loss = loss if problem.iterations == 1 else previous_loss
    previous = (tuple(float(c) for c in previous_w[:, 0]), float(before_loss[0]))
    fits = [make_result(w[:, k], loss[k], [values[k] for values in logged]) for k in range(w.shape[1])]
    return fits, previous


def relative_error(result: FitResult, reference: FitResult) -> float:
    """Largest error of a, b, c, d relative to the largest reference coefficient (``ref_rel_err``)."""
    scale = max(abs(c) for c in reference.weights)
    return max(abs(got - want) for got, want in zip(result.weights, reference.weights, strict=True)) / scale


def loss_relative_error(result: FitResult, reference: FitResult) -> float:
    """Largest relative error over the logged losses and the final loss."""
    pairs = [*zip(result.logged_losses, reference.logged_losses, strict=True)]
    pairs.append((result.final_loss, reference.final_loss))
    return max(abs(got - want) / abs(want) for got, want in pairs)
