"""JAX: the tutorial's loop with manual gradients and with ``jax.grad``, eager and compiled, tutorial and tuned.

Modes:

- ``eager``: op-by-op dispatch (``jax.value_and_grad`` runs un-jitted for autodiff).
- ``jit-step``: one ``jax.jit``-compiled step per iteration, driven by a Python loop.
- ``jit-loop``: the whole fit is one ``jax.jit`` call around ``lax.scan``; the scan returns every
  iteration's loss, of which the logged ones are kept.

Tuned formulation (each the fastest correct form against the alternatives, timed interleaved; the
figures are in the commit messages and docs/notes/):

- ``manual`` ``jit-step`` and ``jit-loop``: the weights as one 4-vector (one buffer per compiled call instead of
  four). In float64, Horner's form with the five sums (loss and four gradients) taken by one variadic
  ``lax.reduce``: one pass over x and y per iteration, where XLA otherwise emits one loop per ``.sum()``.
  That reduce accumulates in order, which float32 cannot afford (5e-3 off
  the reference at 10^7), so in float32 the powers x^2 and x^3 are computed once in ``prepare`` and the
  four sums stay XLA's own reductions. Below :data:`HORNER_BELOW` elements on the CPU, and at every size on
  a GPU, float32 takes :mod:`backends.tuned`'s Horner step with XLA's sums instead: at small n on the CPU
  the three extra multiplies cost less than reading two more arrays, and on a GPU reading x^2 and x^3
  doubles the bytes of a memory-bound iteration.
- ``autodiff/jit-step``: ``jax.grad`` on a 4-vector of weights (it saves per-call work), of the loss over
  x^2 and x^3 computed once in float64 on the CPU, of :mod:`backends.tuned`'s Horner loss in float32 and
  on a GPU (where the powers form lost to the tutorial's arithmetic).
- ``autodiff/jit-loop`` has no tuned variant: every rearrangement tried (Horner, precomputed powers, the
  4-vector) was as fast as the tutorial's arithmetic or slower, since XLA already fuses what the rewrite
  would.
- ``eager``: with ``P = [1, x, x^2, x^3]`` (4 x n) built in ``prepare``, the residual is ``w @ P - y``, so
  an iteration dispatches a handful of operations instead of about twenty. In float64 the loss and the
  gradient are dot products (``r @ r``, ``P @ r``); XLA accumulates float32 dot products in float32, which
  misses the reference by 4e-4 at 10^7, so in float32 the manual step sums (``(r * r).sum()``,
  ``(P * r).sum(1)``) and autodiff differentiates the tutorial's loss over the precomputed powers, four
  scalar weights (fewer operations to dispatch and to differentiate than ``x ** 2``, ``x ** 3``).

float64 runs inside JAX's x64 context manager, so the setting never leaks into code that did not ask
for it; the same scope sets the default matmul precision to ``highest`` (no TF32 on a GPU). x, y and the
weights are placed on the device in ``prepare`` and passed to the compiled functions as arguments (a
closed-over array would be baked into the program as a constant, which XLA may fold at compile time); the
fit ends with ``jax.block_until_ready`` and reads the results back in one transfer.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, ExitStack

import numpy as np

from backends import tuned
from backends.contract import GRADS, Backend, Fit, FitResult, Form, Problem, Shard, Variant, require, unstack_result
from backends.tutorial import Weights, descend, loss_of, manual_step, python_loop

HORNER_BELOW = 4096
"""Below this n, the float32 tuned manual steps on the CPU use Horner's form rather than precomputed powers."""

BOTH = ("cpu", "gpu")
MANUAL_FORMS = (
    Form("horner-reduce", dtype="float64"),
    Form("horner", device="gpu"),
    Form("horner", n_below=HORNER_BELOW),
    Form("powers"),
)
"""The tuned manual jit-step and jit-loop: Horner's form with one variadic reduce in float64; in float32 Horner's
form with XLA's sums on a GPU and below :data:`HORNER_BELOW` on the CPU, precomputed powers above it."""
AUTODIFF_FORMS = (Form("powers", device="cpu", dtype="float64"), Form("horner"))
"""The tuned autodiff jit-step: ``jax.grad`` of the loss over precomputed powers in float64 on the CPU, of Horner's
loss elsewhere."""
EAGER_FORMS = (Form("matrix-dot", dtype="float64"), Form("matrix-sums"))
"""The tuned manual eager step: ``w @ P`` with dot products in float64, with sums in float32."""
AUTODIFF_EAGER_FORMS = (Form("matrix-dot", dtype="float64"), Form("powers"))
"""The tuned autodiff eager step: ``jax.grad`` through ``w @ P`` and dot products in float64, of the tutorial's loss
over precomputed powers (four scalar weights) in float32."""


def residual_of_powers(w, x, y, x2, x3):
    """The residual from the weights (a 4-vector or four scalars) and the powers of x computed once in
    ``prepare``."""
    return w[0] + w[1] * x + w[2] * x2 + w[3] * x3 - y


def loss_of_powers(w, x, y, x2, x3):
    """The summed squared error over the precomputed powers (what the tuned autodiff variants differentiate)."""
    r = residual_of_powers(w, x, y, x2, x3)
    return (r * r).sum()


def with_powers(x, y) -> tuple:
    """x, y and the powers x^2, x^3, computed once: the arrays the precomputed-powers steps take."""
    return x, y, x * x, x * x * x


class JaxBackend(Backend):
    """JAX (XLA) on the CPU and on a GPU."""

    name = "jax"
    variants = (
        *(
            Variant(grad, mode, devices=BOTH, compiler=None if mode == "eager" else "XLA")
            for grad in GRADS
            for mode in ("eager", "jit-step", "jit-loop")
        ),
        Variant("manual", "eager", "tuned", devices=BOTH, forms=EAGER_FORMS),
        Variant("manual", "jit-step", "tuned", devices=BOTH, forms=MANUAL_FORMS, compiler="XLA"),
        Variant("manual", "jit-loop", "tuned", devices=BOTH, forms=MANUAL_FORMS, compiler="XLA", distributed=True),
        Variant("autodiff", "eager", "tuned", devices=BOTH, forms=AUTODIFF_EAGER_FORMS),
        Variant("autodiff", "jit-step", "tuned", devices=BOTH, forms=AUTODIFF_FORMS, compiler="XLA"),
    )

    def __init__(self) -> None:
        self.jax = require("jax", "JAX")

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
        with self.settings(problem):
            x_host, y_host = problem.x_and_y()
            x, y = jax.device_put(x_host, target), jax.device_put(y_host, target)
            assert x.dtype == jnp.dtype(problem.dtype)

        data, vector = (x, y), False
        if variant.formulation == "tuned":
            with self.settings(problem):
                vector, step, data = self._tuned_step(x, y, problem, variant, device)
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
            def whole_fit(weights: Weights, *data) -> tuple[Weights, object]:
                return jax.lax.scan(lambda w, _: step(w, *data), weights, length=problem.iterations)

            def run(initial) -> tuple[Weights, object, object]:
                weights, losses = whole_fit(initial, *data)
                return weights, losses[-1], losses[problem.log_interval - 1 :: problem.log_interval]
        else:
            compiled = jax.jit(step) if variant.mode == "jit-step" else step

            def run(initial) -> tuple[Weights, object, object]:
                return python_loop(lambda weights: compiled(weights, *data), initial, problem)

        def place(weights: np.ndarray):
            """The initial weights on the device: one 4-vector for the tuned steps that take one, else four scalars."""
            with self.settings(problem):
                if vector:
                    return jax.block_until_ready(jax.device_put(weights, target))
                return jax.block_until_ready(tuple(jax.device_put(w, target) for w in weights))

        def fit(initial) -> FitResult:
            with self.settings(problem):
                weights, loss, logged = jax.block_until_ready(run(initial))
                head = jnp.stack([*weights, loss])
                values = jnp.concatenate([head, jnp.asarray(logged, dtype=head.dtype).reshape(-1)])
                return unstack_result(np.asarray(values).tolist())

        return Fit(fit, problem.initial_weights(), place)

    def _tuned_step(self, x, y, problem: Problem, variant: Variant, device: str):
        """Whether the tuned step takes the weights as one 4-vector (else four scalars), the step function and
        the arrays it takes after the weights (see the module docstring), in the form the variant declares for this
        device, dtype and size. On a GPU, whose memory is the bound, no powers of x are read from memory: they cost
        more bytes than the arithmetic they save."""
        form = self.declaration(variant).form(device, problem.dtype, problem.n)
        if variant.mode == "eager":
            return self._tuned_eager_step(x, y, problem, variant, form)
        jax, jnp = self.jax, self.jax.numpy
        step_size = jnp.asarray(2.0 * problem.lr, dtype=x.dtype)
        if variant.grad == "autodiff":
            loss, data = (loss_of_powers, with_powers(x, y)) if form == "powers" else (tuned.loss_of, (x, y))
            value_and_grad = jax.value_and_grad(loss)

            def step(w, *data):
                loss, gradient = value_and_grad(w, *data)
                return w - (step_size / 2) * gradient, loss

            return True, step, data
        sums, powers = self._tuned_sums(form)

        def step(w, *data):
            total = sums(w, *data)
            return w - step_size * total[1:], total[0]

        return True, step, with_powers(x, y) if powers else (x, y)

    def _tuned_sums(self, form: str):
        """The tuned manual step's five sums over the data, as one vector ``[sum r^2, sum r, sum r x, sum r x^2,
        sum r x^3]``, in ``form`` (one of :data:`MANUAL_FORMS`' names; see the module docstring), and whether they
        take the powers of x. What a fit across devices all-reduces; on one device the step applies them."""
        jax, jnp = self.jax, self.jax.numpy
        if form == "horner-reduce":

            def sums(w, x, y):
                r = tuned.residual(w, x, y)
                rx = r * x
                rx2 = rx * x
                zero = jnp.zeros((), x.dtype)
                *gradient, loss = jax.lax.reduce(
                    (r, rx, rx2, rx2 * x, r * r), (zero,) * 5, lambda p, q: tuple(map(jnp.add, p, q)), (0,)
                )
                return jnp.stack([loss, *gradient])

            return sums, False
        if form == "horner":

            def sums(w, x, y):
                r = tuned.residual(w, x, y)
                rx = r * x
                rx2 = rx * x
                return jnp.stack([(r * r).sum(), r.sum(), rx.sum(), rx2.sum(), (rx2 * x).sum()])

            return sums, False

        def sums(w, x, y, x2, x3):
            r = residual_of_powers(w, x, y, x2, x3)
            return jnp.stack([(r * r).sum(), r.sum(), (r * x).sum(), (r * x2).sum(), (r * x3).sum()])

        return sums, True

    # Across devices: ``manual/jit-loop tuned`` over a 1-D mesh of ``world`` devices (one process's host devices
    # on the CPU, or several processes' joined by jax.distributed), by ``shard_map``: each device runs the tuned
    # step's five sums over its block, one ``psum`` of them per iteration inside the scan, the same update
    # everywhere. ``shard_map`` needs blocks of one size: n must be a multiple of world.

    one_process_per_device = False

    @classmethod
    def local_devices_environment(cls, device: str, count: int) -> dict[str, str]:
        """On the CPU, ``count`` host devices (``--xla_force_host_platform_device_count``, read at JAX's start)."""
        if device != "cpu":
            return {}
        flags = os.environ.get("XLA_FLAGS", "")
        return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={count}".strip()}

    def shard_unavailable_reason(self, problem: Problem, variant: Variant, device: str, world: int) -> str | None:
        if problem.n % world:
            return f"shard_map splits x into blocks of one size: n={problem.n:,} is not a multiple of world={world}"
        if device == "gpu":
            count = len(self.jax.devices("gpu")) if self._device("gpu") is not None else 0
            if count < world:
                return f"world={world} needs {world} GPUs, {count} visible to JAX here"
        return None

    def join(self, shard: Shard, device: str, timeout_s: float) -> None:
        """With more than one process, ``jax.distributed.initialize`` at the coordinator (gloo collectives
        between the processes on the CPU)."""
        if shard.processes > 1:
            self.jax.distributed.initialize(
                coordinator_address=shard.coordinator,
                num_processes=shard.processes,
                process_id=shard.process,
                initialization_timeout=int(timeout_s),
            )
        count = len(self._mesh_devices(device, shard.world))
        if count != shard.world:
            raise RuntimeError(f"JAX sees {count} {device} devices across the processes, not world={shard.world}")

    def _mesh_devices(self, device: str, world: int) -> list:
        """The first ``world`` devices of the platform, across every process."""
        return self.jax.devices("gpu" if device == "gpu" else "cpu")[:world]

    def barrier(self, shard: Shard) -> None:
        if shard.processes > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("arraybench")

    def sharded_program(self, problem: Problem, device: str, shard: Shard, variant: Variant | None = None):
        """The compiled-to-be fit across the mesh and its arguments: ``(jitted, args)``; ``jitted(*args)`` returns
        the replicated weights and every iteration's loss. The blocks are built on each device from their own
        indices (``jax.make_array_from_callback``), never from a whole x on the host."""
        jax, jnp = self.jax, self.jax.numpy
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        mesh = Mesh(np.array(self._mesh_devices(device, shard.world)), ("d",))
        blocked, replicated = NamedSharding(mesh, P("d")), NamedSharding(mesh, P())
        local_n = problem.n // shard.world
        blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def block(index: tuple[slice, ...], which: int) -> np.ndarray:
            start = index[0].start or 0
            if start not in blocks:
                blocks[start] = problem.x_and_y_block(start, start + local_n)
            return blocks[start][which]

        with self.settings(problem):
            x, y = (jax.make_array_from_callback((problem.n,), blocked, lambda i, k=k: block(i, k)) for k in (0, 1))
            w0 = jax.device_put(problem.initial_weights(), replicated)
            declared = self.declaration(variant or next(v for v in self.variants if v.distributed))
            sums, powers = self._tuned_sums(declared.form(device, problem.dtype, local_n))
            data = with_powers(x, y) if powers else (x, y)
            step_size = 2.0 * problem.lr

            def local_fit(w, *local_data):
                def body(w, _):
                    total = jax.lax.psum(sums(w, *local_data), "d")
                    return w - jnp.asarray(step_size, w.dtype) * total[1:], total[0]

                return jax.lax.scan(body, w, length=problem.iterations)

            specs = (P(), *(P("d") for _ in data))
            mapped = jax.shard_map(local_fit, mesh=mesh, in_specs=specs, out_specs=(P(), P()))
        return jax.jit(mapped), (w0, *data)

    def prepare_shard(self, problem: Problem, variant: Variant, device: str, shard: Shard) -> Fit:
        jax = self.jax
        whole_fit, (w0, *data) = self.sharded_program(problem, device, shard, variant)

        def fit(start) -> FitResult:
            with self.settings(problem):
                weights, losses = jax.block_until_ready(whole_fit(start, *data))
                # Replicated: this process's first device holds the whole result.
                w, all_losses = np.asarray(weights.addressable_data(0)), np.asarray(losses.addressable_data(0))
                logged = all_losses[problem.log_interval - 1 :: problem.log_interval]
                return unstack_result([*w.tolist(), float(all_losses[-1]), *logged.tolist()])

        def place(weights: np.ndarray):
            with self.settings(problem):
                return self.jax.device_put(weights, w0.sharding)

        return Fit(fit, problem.initial_weights(), place)

    def collective_seconds(self, shard: Shard, device: str, dtype: str, rounds: int) -> float:
        """``rounds`` psums of a 5-vector in one compiled scan; each round's input is the device's own value
        mixed with the last sum (kept different on every device, so XLA cannot drop the collective)."""
        jax = self.jax
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        mesh = Mesh(np.array(self._mesh_devices(device, shard.world)), ("d",))
        with jax.enable_x64(dtype == "float64"):
            values = jax.make_array_from_callback(
                (5 * shard.world,), NamedSharding(mesh, P("d")), lambda i: np.full(5, 1.0 + (i[0].start or 0), dtype)
            )

            def rounds_of(v):
                def body(v, _):
                    return (v + jax.lax.psum(v, "d")) / (shard.world + 1), None

                return jax.lax.scan(body, v, length=rounds)[0]

            run = jax.jit(jax.shard_map(rounds_of, mesh=mesh, in_specs=P("d"), out_specs=P("d")))
            jax.block_until_ready(run(values))
            times = []
            for _ in range(3):
                self.barrier(shard)
                start = time.perf_counter_ns()
                jax.block_until_ready(run(values))
                times.append((time.perf_counter_ns() - start) / 1e9 / rounds)
        return sorted(times)[1]

    def _tuned_eager_step(self, x, y, problem: Problem, variant: Variant, form: str):
        """The tuned eager step: powers of x built once, a handful of dispatched operations per iteration."""
        jax, jnp = self.jax, self.jax.numpy
        data = with_powers(x, y)
        if form == "powers":
            value_and_grad = jax.value_and_grad(loss_of_powers)

            def step(weights: Weights, *data):
                loss, gradients = value_and_grad(weights, *data)
                return descend(weights, gradients, problem.lr), loss

            return False, step, data

        def loss_and_gradient(r, powers):
            if form == "matrix-dot":
                return r @ r, powers @ r
            return (r * r).sum(), (powers * r).sum(axis=1)

        step_size = jnp.asarray(2.0 * problem.lr, dtype=x.dtype)
        if variant.grad == "manual":

            def step(w, powers, y):
                loss, gradient = loss_and_gradient(w @ powers - y, powers)
                return w - step_size * gradient, loss

        else:
            value_and_grad = jax.value_and_grad(lambda w, powers, y: loss_and_gradient(w @ powers - y, powers)[0])

            def step(w, powers, y):
                loss, gradient = value_and_grad(w, powers, y)
                return w - (step_size / 2) * gradient, loss

        _, _, x2, x3 = data
        return True, step, (jnp.stack([jnp.ones_like(x), x, x2, x3]), y)
