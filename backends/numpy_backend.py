"""NumPy: the tutorial's own code, manual gradients, op by op on the CPU.

The fit below is the seed document's loop line for line; the only changes are that the problem supplies
x, y, the initial weights and the learning rate, and that the logged losses are returned instead of
printed. The weights are NumPy scalars of the problem's dtype, so a float32 problem stays float32.
"""

from __future__ import annotations

import numpy as np

from backends.contract import Backend, Fit, FitResult, Problem, Variant, make_result


def fit_tutorial(x: np.ndarray, y: np.ndarray, weights: np.ndarray, problem: Problem) -> FitResult:
    """The tutorial's forward pass, loss and hand-written backward pass."""
    a, b, c, d = weights
    learning_rate = problem.lr
    logged_losses = []
    for t in range(problem.iterations):
        # Forward pass: compute predicted y
        y_pred = a + b * x + c * x**2 + d * x**3

        # Compute and log loss
        loss = np.square(y_pred - y).sum()
        if problem.is_logged(t):
            logged_losses.append(loss)

        # Backprop to compute gradients of a, b, c, d with respect to loss
        grad_y_pred = 2.0 * (y_pred - y)
        grad_a = grad_y_pred.sum()
        grad_b = (grad_y_pred * x).sum()
        grad_c = (grad_y_pred * x**2).sum()
        grad_d = (grad_y_pred * x**3).sum()

        # Update weights
        a -= learning_rate * grad_a
        b -= learning_rate * grad_b
        c -= learning_rate * grad_c
        d -= learning_rate * grad_d
    return make_result((a, b, c, d), loss, logged_losses)


class NumpyBackend(Backend):
    """The reference framework: the tutorial loop as published."""

    name = "numpy"
    variants = (Variant("manual", "eager"),)

    def __init__(self) -> None:
        self.np = np

    def version(self) -> str:
        return np.__version__

    def describe(self) -> dict[str, str]:
        from threadpoolctl import threadpool_info

        blas = [f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)" for p in threadpool_info()]
        return {"numpy_blas": "; ".join(blas) or "none loaded"}

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        x, y = problem.x_and_y()
        weights = problem.initial_weights()
        return lambda: fit_tutorial(x, y, weights, problem)
