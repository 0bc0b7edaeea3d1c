"""NumPy: the tutorial's own code, manual gradients, op by op on the CPU.

``manual/eager`` (tutorial formulation) is the seed document's loop line for line; the only changes are
that the problem supplies x, y, the initial weights and the learning rate, and that the logged losses are
returned instead of printed. The weights are NumPy scalars of the problem's dtype, so a float32 problem stays
float32.

``manual/eager tuned`` writes the same mathematics as a NumPy expert would. With the powers of x stacked
once, in ``prepare``, as ``P = [1, x, x^2, x^3]`` (4 x n, row-major), the forward pass is one matrix-vector
product ``w @ P`` and the backward pass another, ``P @ r`` for the residual ``r``: two BLAS calls replace the
tutorial's dozen full-size temporaries (``x ** 3`` through the generic power routine alone costs more than
both). Every n-sized result goes into a buffer allocated in ``prepare`` (``out=``), and the weights are one
4-vector updated in place. Measured against the alternatives (Horner's form with in-place ufuncs; dot
products per coefficient; ``P`` stored n x 4), this was the fastest at 10^3, 10^5 and 10^7 or within noise
of it, and the only one that stays within the float32 tolerance at 10^7: BLAS accumulates float32 dot
products in float32, and ``r @ r`` (or a ``P`` stored n x 4, whose ``gemv`` sums each column in order)
misses the reference by 1e-4 at 10^7, so in float32 the loss is squared into a buffer and summed by NumPy's
pairwise ``sum``; ``P @ r`` on the 4 x n layout keeps many partial sums and agrees to 1e-7.
"""

from __future__ import annotations

import numpy as np

from backends.contract import Backend, Fit, FitResult, Form, Problem, Variant, make_result


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


def prepare_tuned(x: np.ndarray, y: np.ndarray, weights: np.ndarray, problem: Problem, form: str) -> Fit:
    """Powers of x stacked once; forward ``w @ P`` and backward ``P @ r``, into preallocated buffers; the loss by
    BLAS (form ``blas``, float64) or squared into a buffer and summed pairwise (``blas-sums``, float32)."""
    powers = np.stack([np.ones_like(x), x, x * x, x * x * x])
    residual, squares, gradient = np.empty_like(x), np.empty_like(x), np.empty(4, dtype=x.dtype)
    step = x.dtype.type(2.0 * problem.lr)  # the 2 of d(r^2)/dr, folded into the learning rate
    pairwise = form == "blas-sums"

    def fit(initial: np.ndarray) -> FitResult:
        w = initial.copy()
        logged_losses = []
        for t in range(problem.iterations):
            np.matmul(w, powers, out=residual)
            np.subtract(residual, y, out=residual)
            loss = np.multiply(residual, residual, out=squares).sum() if pairwise else residual @ residual
            if problem.is_logged(t):
                logged_losses.append(loss)
            np.matmul(powers, residual, out=gradient)
            w -= step * gradient
        return make_result(w, loss, logged_losses)

    return Fit(fit, weights)


class NumpyBackend(Backend):
    """The reference framework: the tutorial loop as published, and as a NumPy expert writes it."""

    name = "numpy"
    variants = (
        Variant("manual", "eager"),
        Variant("manual", "eager", "tuned", forms=(Form("blas", dtype="float64"), Form("blas-sums"))),
    )

    def version(self) -> str:
        return np.__version__

    def describe(self) -> dict[str, str]:
        from threadpoolctl import threadpool_info

        blas = [f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)" for p in threadpool_info()]
        return {"numpy_blas": "; ".join(blas) or "none loaded"}

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        x, y = problem.x_and_y()
        weights = problem.initial_weights()
        if variant.formulation == "tuned":
            return prepare_tuned(
                x, y, weights, problem, self.declaration(variant).form(device, problem.dtype, problem.n)
            )
        return Fit(lambda initial: fit_tutorial(x, y, initial, problem), weights)
