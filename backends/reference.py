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

import math
from collections.abc import Sequence
from functools import cache

import numpy as np

from backends.contract import FitResult, Problem


@cache
def moments(n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """M = X^T X, v = X^T y and s = y^T y for x = linspace(-pi, pi, n) in float64, summed exactly.

    Cached: exact sums over 10^7 elements take seconds, and a sweep asks for the same n many times. The arrays
    are returned read-only."""
    x = np.linspace(-math.pi, math.pi, n, dtype=np.float64)
    y = np.sin(x)
    powers = [np.ones_like(x), x, x * x, x * x * x]
    m = np.array([[math.fsum(p * q) for q in powers] for p in powers])
    v = np.array([math.fsum(p * y) for p in powers])
    m.flags.writeable = v.flags.writeable = False
    return m, v, math.fsum(y * y)


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
    fits = [
        FitResult(
            weights=tuple(float(c) for c in w[:, k]),  # type: ignore[arg-type]
            final_loss=float(loss[k]),
            logged_losses=[float(values[k]) for values in logged],
        )
        for k in range(w.shape[1])
    ]
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
