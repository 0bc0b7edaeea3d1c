"""The tutorial's arithmetic, written once for every array library that has operators and ``.sum()``.

NumPy arrays, torch tensors and JAX arrays all run these functions unchanged, so the PyTorch and JAX
backends time exactly the arithmetic of the NumPy tutorial (``x ** 2`` and ``x ** 3`` recomputed every
iteration) and differ only in how they drive it: eager, compiled per step, or compiled as a whole loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends.contract import Problem

Weights = tuple[Any, Any, Any, Any]
"""a, b, c, d as the framework's scalars (0-d arrays or tensors)."""


def predict(weights: Weights, x: Any) -> Any:
    """Forward pass: y = a + b x + c x^2 + d x^3."""
    a, b, c, d = weights
    return a + b * x + c * x**2 + d * x**3


def loss_of(weights: Weights, x: Any, y: Any) -> Any:
    """Summed squared error, the tutorial's loss (what autodiff differentiates)."""
    return ((predict(weights, x) - y) ** 2).sum()


def manual_step(weights: Weights, x: Any, y: Any, learning_rate: float) -> tuple[Weights, Any]:
    """One iteration with the tutorial's hand-written backward pass; returns new weights and the loss."""
    a, b, c, d = weights
    y_pred = predict(weights, x)
    loss = ((y_pred - y) ** 2).sum()

    grad_y_pred = 2.0 * (y_pred - y)
    grad_a = grad_y_pred.sum()
    grad_b = (grad_y_pred * x).sum()
    grad_c = (grad_y_pred * x**2).sum()
    grad_d = (grad_y_pred * x**3).sum()

    new_weights = (
        a - learning_rate * grad_a,
        b - learning_rate * grad_b,
        c - learning_rate * grad_c,
        d - learning_rate * grad_d,
    )
    return new_weights, loss


def descend(weights: Weights, gradients: Weights, learning_rate: float) -> Weights:
    """The update w <- w - lr * grad for each of a, b, c, d."""
    return tuple(w - learning_rate * g for w, g in zip(weights, gradients, strict=True))


def python_loop(
    step: Callable[[Weights], tuple[Weights, Any]], weights: Weights, problem: Problem
) -> tuple[Weights, Any, list[Any]]:
    """Drive ``step`` from Python for every iteration, keeping the logged losses on the device.

    Losses stay framework scalars (no host round-trip inside the loop); the caller converts them once the
    loop is done. Returns the final weights, the last loss and the logged losses.
    """
    logged_losses = []
    loss = None
    for t in range(problem.iterations):
        weights, loss = step(weights)
        if problem.is_logged(t):
            logged_losses.append(loss)
    return weights, loss, logged_losses
