"""JAX: the tutorial's loop with manual gradients and with ``jax.grad``, eager and compiled.

Variants:

- ``eager``: op-by-op dispatch (``jax.value_and_grad`` runs un-jitted for autodiff).
- ``jit-step``: one ``jax.jit``-compiled step per iteration, driven by a Python loop.
- ``jit-loop``: the whole fit is one ``jax.jit`` call around ``lax.scan``; the scan returns every
  iteration's loss, of which the logged ones are kept.

float64 runs inside JAX's x64 context manager, so the setting never leaks into code that did not ask
for it. x, y and the weights are placed on the device in ``prepare``; the fit ends with
``jax.block_until_ready`` and reads the results back once.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from backends.contract import Backend, BackendUnavailable, Fit, FitResult, Problem, Variant, make_result
from backends.tutorial import Weights, descend, loss_of, manual_step, python_loop


class JaxBackend(Backend):
    """JAX (XLA) on the CPU and on a GPU."""

    name = "jax"
    variants = tuple(Variant(g, m) for g in ("manual", "autodiff") for m in ("eager", "jit-step", "jit-loop"))

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

    def free_memory(self, device: str) -> int | None:
        target = self._device(device) if device == "gpu" else None
        stats = target.memory_stats() if target is not None else None
        if stats and "bytes_limit" in stats:
            return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
        return None

    def describe(self) -> dict[str, str]:
        return {
            "jax_devices": ", ".join(str(d) for d in self.jax.devices()),
            "xla_flags": os.environ.get("XLA_FLAGS", "(none: XLA sizes its pool to the cores it may use)"),
        }

    def x64(self, problem: Problem) -> AbstractContextManager:
        """JAX's float64 switch, scoped to this problem."""
        return self.jax.enable_x64(problem.dtype == "float64")

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        jax, jnp = self.jax, self.jax.numpy
        target = self._device(device)
        learning_rate = problem.lr
        with self.x64(problem):
            x_host, y_host = problem.x_and_y()
            x, y = jax.device_put(x_host, target), jax.device_put(y_host, target)
            initial = tuple(jax.device_put(w, target) for w in problem.initial_weights())
            assert x.dtype == jnp.dtype(problem.dtype) and initial[0].dtype == x.dtype

        if variant.grad == "manual":

            def step(weights: Weights) -> tuple[Weights, object]:
                return manual_step(weights, x, y, learning_rate)
        else:
            value_and_grad = jax.value_and_grad(loss_of)

            def step(weights: Weights) -> tuple[Weights, object]:
                loss, gradients = value_and_grad(weights, x, y)
                return descend(weights, gradients, learning_rate), loss

        if variant.mode == "jit-loop":
            whole_fit = jax.jit(lambda weights: jax.lax.scan(lambda w, _: step(w), weights, length=problem.iterations))

            def run() -> tuple[Weights, object, object]:
                weights, losses = whole_fit(initial)
                return weights, losses[-1], losses[problem.log_interval - 1 :: problem.log_interval]
        else:
            if variant.mode == "jit-step":
                step = jax.jit(step)

            def run() -> tuple[Weights, object, object]:
                return python_loop(step, initial, problem)

        def fit() -> FitResult:
            with self.x64(problem):
                weights, loss, logged = jax.block_until_ready(run())
                return make_result(weights, loss, jnp.asarray(logged).tolist())

        return fit
