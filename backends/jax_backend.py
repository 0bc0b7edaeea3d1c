"""JAX: the tutorial's loop with manual gradients and with ``jax.grad``, eager and compiled, tutorial and tuned.

Modes:

- ``eager``: op-by-op dispatch (``jax.value_and_grad`` runs un-jitted for autodiff).
- ``jit-step``: one ``jax.jit``-compiled step per iteration, driven by a Python loop.
- ``jit-loop``: the whole fit is one ``jax.jit`` call around ``lax.scan``; the scan returns every
  iteration's loss, of which the logged ones are kept.

Tuned formulation (measured against the alternatives; the fastest that agrees with the reference):

- ``jit-step`` and ``jit-loop``: the step of :mod:`backends.tuned` (weights as one 4-vector, Horner's form,
  the gradient sums reusing one another), which XLA fuses into fewer, cheaper loops than the tutorial's
  arithmetic. ``lax.fori_loop`` measured the same as ``lax.scan``, and ``unroll=4`` no better.
- ``eager``: with ``P = [1, x, x^2, x^3]`` (4 x n) built in ``prepare``, the residual is ``w @ P - y``, so
  an iteration dispatches a handful of operations instead of about twenty. In float64 the loss and the
  gradient are dot products (``r @ r``, ``P @ r``); XLA accumulates float32 dot products in float32, which
  misses the reference by 4e-4 at 10^7, so in float32 they are sums (``(r * r).sum()``, ``(P * r).sum(1)``).
  For ``autodiff/eager`` in float32 no rearrangement found was both correct and faster at every size (the
  sum form loses to the tutorial by 2x at 10^7), so it keeps the tutorial's arithmetic.

float64 runs inside JAX's x64 context manager, so the setting never leaks into code that did not ask
for it; the same scope sets the default matmul precision to ``highest`` (no TF32 on a GPU). x, y and the
weights are placed on the device in ``prepare`` and passed to the compiled functions as arguments (a
closed-over array would be baked into the program as a constant, which XLA may fold at compile time); the
fit ends with ``jax.block_until_ready`` and reads the results back in one transfer.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, ExitStack

import numpy as np

from backends import tuned
from backends.contract import Backend, BackendUnavailable, Fit, FitResult, Problem, Variant, unstack_result
from backends.tutorial import Weights, descend, loss_of, manual_step, python_loop


class JaxBackend(Backend):
    """JAX (XLA) on the CPU and on a GPU."""

    name = "jax"
    variants = tuple(
        Variant(grad, mode, formulation)
        for formulation in ("tutorial", "tuned")
        for grad in ("manual", "autodiff")
        for mode in ("eager", "jit-step", "jit-loop")
    )

    def __init__(self) -> None:
        try:
            import jax
        except ImportError as error:
            raise BackendUnavailable(f"JAX is not installed ({error})") from error
        self.jax = jax

    def version(self) -> str:
        return self.jax.__version__

    def _device(self, device: str):
        """JAX's first device of the platform behind our device name, or None."""
        try:
            return self.jax.devices("gpu" if device == "gpu" else "cpu")[0]
        except RuntimeError:
            return None

    def devices(self) -> tuple[str, ...]:
        return tuple(d for d in ("cpu", "gpu") if self._device(d) is not None)

    def unavailable_reason(self, variant: Variant, device: str) -> str | None:
        if device == "gpu" and self._device("gpu") is None:
            return "no GPU visible to JAX (jax.devices('gpu') found none; is jax[cuda] installed?)"
        return super().unavailable_reason(variant, device)

    def describe(self) -> dict[str, str]:
        facts = {
            "jax_devices": ", ".join(str(d) for d in self.jax.devices()),
            "xla_flags": os.environ.get("XLA_FLAGS", "(none: XLA sizes its pool to the cores it may use)"),
        }
        gpu = self._device("gpu")
        if gpu is not None:
            facts["jax_gpu"] = f"{gpu.device_kind} ({gpu.platform}, backend {self.jax.default_backend()})"
            facts["xla_python_client_preallocate"] = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "(unset: true)")
        return facts

    def free_memory(self, device: str) -> int | None:
        """Bytes JAX's GPU allocator may still hand out (its limit less what is in use), or None."""
        target = self._device(device) if device == "gpu" else None
        stats = target.memory_stats() if target is not None else None
        if not stats or "bytes_limit" not in stats:
            return None
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0)

    def settings(self, problem: Problem) -> AbstractContextManager:
        """JAX's float64 switch and full-precision matmuls, scoped to this problem."""
        scope = ExitStack()
        scope.enter_context(self.jax.enable_x64(problem.dtype == "float64"))
        scope.enter_context(self.jax.default_matmul_precision("highest"))
        return scope

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        jax, jnp = self.jax, self.jax.numpy
        target = self._device(device)
        learning_rate = problem.lr
        x64 = problem.dtype == "float64"
        with self.settings(problem):
            x_host, y_host = problem.x_and_y()
            x, y = jax.device_put(x_host, target), jax.device_put(y_host, target)
            initial = tuple(jax.device_put(w, target) for w in problem.initial_weights())
            assert x.dtype == jnp.dtype(problem.dtype) and initial[0].dtype == x.dtype

        if variant.formulation == "tuned" and not (variant.mode == "eager" and variant.grad == "autodiff" and not x64):
            with self.settings(problem):
                initial, step = self._tuned_step(x, y, initial, problem, variant)
        elif variant.grad == "manual":

            def step(weights: Weights, x, y) -> tuple[Weights, object]:
                return manual_step(weights, x, y, learning_rate)
        else:
            value_and_grad = jax.value_and_grad(loss_of)

            def step(weights: Weights, x, y) -> tuple[Weights, object]:
                loss, gradients = value_and_grad(weights, x, y)
                return descend(weights, gradients, learning_rate), loss

        if variant.mode == "jit-loop":

            @jax.jit
            def whole_fit(weights: Weights, x, y) -> tuple[Weights, object]:
                return jax.lax.scan(lambda w, _: step(w, x, y), weights, length=problem.iterations)

            def run() -> tuple[Weights, object, object]:
                weights, losses = whole_fit(initial, x, y)
                return weights, losses[-1], losses[problem.log_interval - 1 :: problem.log_interval]
        else:
            compiled = jax.jit(step) if variant.mode == "jit-step" else step

            def run() -> tuple[Weights, object, object]:
                return python_loop(lambda weights: compiled(weights, x, y), initial, problem)

        def fit() -> FitResult:
            with self.settings(problem):
                weights, loss, logged = jax.block_until_ready(run())
                head = jnp.stack([*weights, loss])
                values = jnp.concatenate([head, jnp.asarray(logged, dtype=head.dtype).reshape(-1)])
                return unstack_result(np.asarray(values).tolist())

        return fit

    def _tuned_step(self, x, y, initial, problem: Problem, variant: Variant):
        """The tuned initial weights (one 4-vector) and step function (see the module docstring)."""
        jax, jnp = self.jax, self.jax.numpy
        w0 = jnp.stack(initial)
        step_size = jnp.asarray(2.0 * problem.lr, dtype=x.dtype)
        if variant.mode != "eager":
            if variant.grad == "manual":
                return w0, lambda w, x, y: tuned.manual_step(w, x, y, step_size, jnp.stack)
            value_and_grad = jax.value_and_grad(tuned.loss_of)

            def step(w, x, y):
                loss, gradient = value_and_grad(w, x, y)
                return w - (step_size / 2) * gradient, loss

            return w0, step
        powers = jnp.stack([jnp.ones_like(x), x, x * x, x * x * x])
        if x.dtype == jnp.float64:
            loss_and_gradient = lambda r: (r @ r, powers @ r)  # noqa: E731
        else:
            loss_and_gradient = lambda r: ((r * r).sum(), (powers * r).sum(axis=1))  # noqa: E731
        if variant.grad == "manual":

            def step(w, x, y):
                loss, gradient = loss_and_gradient(w @ powers - y)
                return w - step_size * gradient, loss

            return w0, step
        value_and_grad = jax.value_and_grad(lambda w: loss_and_gradient(w @ powers - y)[0])

        def step(w, x, y):
            loss, gradient = value_and_grad(w)
            return w - (step_size / 2) * gradient, loss

        return w0, step
