"""The tuned arithmetic, written once for array libraries with operators, indexing and ``.sum()``.

The same mathematics as :mod:`backends.tutorial`, rearranged for speed: the weights are one 4-vector ``w``
(one buffer instead of four scalars), the prediction is Horner's form ``((d x + c) x + b) x + a`` (three
multiplies and three adds, no power routine), and the four gradient sums reuse one another:
``r x``, then ``(r x) x``, then ``(r x^2) x``. The 2 of ``d(r^2)/dr`` is folded into the step size. Under a
compiler (torch.compile, XLA) this becomes one or two fused loops over x and y.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def residual(w: Any, x: Any, y: Any) -> Any:
    """r = a + b x + c x^2 + d x^3 - y, by Horner's form."""
    return ((w[3] * x + w[2]) * x + w[1]) * x + w[0] - y


def loss_of(w: Any, x: Any, y: Any) -> Any:
    """The summed squared error (what autodiff differentiates)."""
    r = residual(w, x, y)
    return (r * r).sum()


def manual_step(w: Any, x: Any, y: Any, step: float, stack: Callable) -> tuple[Any, Any]:
    """One iteration with hand-written gradients; ``step`` is twice the learning rate, ``stack`` the library's
    stack (``torch.stack``, ``jnp.stack``). Returns the new weights and the loss before the update."""
    r = residual(w, x, y)
    rx = r * x
    rx2 = rx * x
    gradient = stack([r.sum(), rx.sum(), rx2.sum(), (rx2 * x).sum()])
    return w - step * gradient, (r * r).sum()
