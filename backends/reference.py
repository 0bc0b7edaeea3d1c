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
    m, v, s = moments(problem.n)
    w_star = np.linalg.solve(m, v)
    least_loss = max(s - float(v @ w_star), 0.0)
    lr = problem.lr
    w = problem.initial_weights().astype(np.float64)
    logged: list[float] = []
    loss = math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(problem.iterations):
            r = w - w_star
            loss = float(r @ m @ r) + least_loss
            if problem.is_logged(t):
                logged.append(loss)
            w = w - lr * 2.0 * (m @ w - v)
    return FitResult(weights=tuple(float(c) for c in w), final_loss=loss, logged_losses=logged)  # type: ignore[arg-type]


def relative_error(result: FitResult, reference: FitResult) -> float:
    """Largest error of a, b, c, d relative to the largest reference coefficient (``ref_rel_err``)."""
    scale = max(abs(c) for c in reference.weights)
    return max(abs(got - want) for got, want in zip(result.weights, reference.weights, strict=True)) / scale


def loss_relative_error(result: FitResult, reference: FitResult) -> float:
    """Largest relative error over the logged losses and the final loss."""
    pairs = [*zip(result.logged_losses, reference.logged_losses, strict=True)]
    pairs.append((result.final_loss, reference.final_loss))
    return max(abs(got - want) / abs(want) for got, want in pairs)
