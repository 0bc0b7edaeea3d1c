"""PyTorch: the tutorial's "Tensors" (manual) and "Tensors and autograd" (autodiff) loops, and tuned ones.

Tutorial formulation:

- ``manual/eager``: the tutorial's arithmetic on tensors, op by op.
- ``autodiff/eager``: ``loss.backward()`` and an in-place update under ``torch.no_grad()``, as in the
  tutorial's autograd section.
- ``manual/jit-step`` and ``autodiff/jit-step``: one ``torch.compile``-d call per iteration
  (``fullgraph=True``, so a graph break is an error, never a silent fallback to eager;
  ``dynamic=False``, so every size gets kernels specialised to its shape, as an expert benchmarking a
  fixed shape would do). The autodiff step differentiates with ``torch.func.grad_and_value`` inside the
  compiled function. Dynamo's caches are reset in ``prepare``, so each configuration pays its own
  compilation in its first call and never hits the recompile limit.
- ``manual/jit-loop`` and ``autodiff/jit-loop`` (GPU only): the whole fit captured once as one CUDA graph
  and replayed by every call, since kernel-launch overhead dominates small sizes on a GPU. The captured
  work is the eager arithmetic (no ``torch.compile``); the autodiff step is the functional
  ``torch.func.grad_and_value``, whose backward pass is captured with the rest (see :func:`cuda_graph_fit`).

Tuned formulation (timed against the alternatives; the fastest that agrees with the reference):

- ``manual/eager tuned``: with ``P = [1, x, x^2, x^3]`` (4 x n) built in ``prepare``, the residual is one
  ``torch.addmv(y, P.T, w, beta=-1)`` and, in float64, the gradient one ``torch.mv(P, r)`` and the loss one
  ``torch.dot``, all into preallocated buffers (``out=``): four kernels per iteration instead of about
  twenty. BLAS accumulates float32 dot products in float32 and misses the reference by 3e-4 at 10^7, so in
  float32 the two reductions use torch's own cascade sums (``(P * r).sum(1)``, ``(r * r).sum()``).
- ``autodiff/eager tuned``: autograd on one 4-vector of weights; in float64 through ``addmv`` and ``dot``
  (one forward and one backward kernel each), in float32 through Horner's form and ``.sum()`` (autograd's
  backward of ``addmv`` is a float32 BLAS ``mv``, 3e-4 off at 10^7).
- ``manual/jit-loop tuned`` and ``autodiff/jit-loop tuned``: the tuned step (Horner's form,
  :mod:`backends.tuned`) compiled by ``torch.compile``, and the whole fit built from it. On the CPU, one
  compiled ``torch.while_loop`` whose body is that step, every iteration's loss written into a buffer
  carried by the loop (compiling one step (jit-step) with the tuned arithmetic was no faster than the
  tutorial's, since inductor fuses both into one kernel, and compiling a block of 10 or 100 unrolled steps
  lost to the while-loop beyond small n). On a GPU, every iteration of the compiled step captured as one
  CUDA graph, as the tutorial's jit-loop captures the eager step: inductor's GPU while-loop reads its
  condition back to the host every iteration, while the graph replays inductor's fused kernels with no
  host in between (figures: docs/notes/2026-11-26-h200.md).

x, y and the weights are copied to the device during ``prepare``. The fit keeps the logged losses on the
device and reads them back once at the end, after ``torch.cuda.synchronize()`` on a GPU. TF32 is
disabled, so float32 results on a GPU are true float32 results. On a GPU the fits are also timed with CUDA
events (:meth:`TorchBackend.device_timer`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from backends import tuned
from backends.contract import (
    GRADS,
    Backend,
    DeviceTimer,
    Fit,
    FitResult,
    Form,
    Problem,
    Shard,
    Variant,
    block_bounds,
    cuda_event_timer,
    require,
    unstack_result,
)
from backends.tutorial import Weights, descend, loss_of, manual_step, python_loop

Step = Callable[[Weights], tuple[Weights, Any]]
"""One iteration: weights in, new weights and this iteration's loss out."""

BOTH = ("cpu", "gpu")
COMPILED_LOOP = (Form("cuda-graph", device="gpu"), Form("while-loop"))
"""The tuned jit-loop's two codes: the compiled step captured as a CUDA graph on a GPU, a ``torch.while_loop``
elsewhere (see the module docstring)."""


class TorchBackend(Backend):
    """PyTorch on the CPU and on CUDA."""

    name = "torch"
    variants = (
        *(
            variant
            for grad in GRADS
            for variant in (
                Variant(grad, "eager", devices=BOTH),
                Variant(grad, "jit-step", devices=BOTH, compiler="torch.compile"),
                Variant(grad, "jit-loop", devices=("gpu",), forms=(Form("cuda-graph"),)),
            )
        ),
        Variant(
            "manual",
            "eager",
            "tuned",
            devices=BOTH,
            forms=(Form("blas", dtype="float64"), Form("sums")),
            distributed=True,
        ),
        Variant("manual", "jit-loop", "tuned", devices=BOTH, forms=COMPILED_LOOP, compiler="torch.compile"),
        Variant("autodiff", "eager", "tuned", devices=BOTH, forms=(Form("blas", dtype="float64"), Form("horner"))),
        Variant("autodiff", "jit-loop", "tuned", devices=BOTH, forms=COMPILED_LOOP, compiler="torch.compile"),
    )

    def __init__(self) -> None:
        self.torch = torch = require("torch", "PyTorch")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def version(self) -> str:
        return self.torch.__version__

    def devices(self) -> tuple[str, ...]:
        return ("cpu", "gpu") if self.torch.cuda.is_available() else ("cpu",)

    def unavailable_reason(self, variant: Variant, device: str) -> str | None:
        if device == "gpu" and not self.torch.cuda.is_available():
            return "no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False)"
        compiled = self.declaration(variant).compiler == "torch.compile"
        if compiled and device == "cpu" and not _cpp_compiler():
            return "torch.compile on the CPU needs a C++ compiler (none of g++, c++, clang++ on PATH)"
        return super().unavailable_reason(variant, device)

    def describe(self) -> dict[str, str]:
        torch = self.torch
        facts = {
            "torch_threads": str(torch.get_num_threads()),
            "torch_interop_threads": str(torch.get_num_interop_threads()),
        }
        if torch.cuda.is_available():
            properties = torch.cuda.get_device_properties(0)
            facts["torch_cuda"] = (
                f"{properties.name}, {properties.total_memory / 2**30:.1f} GiB,"
                f" compute capability {properties.major}.{properties.minor},"
                f" {properties.multi_processor_count} SMs, CUDA runtime {torch.version.cuda}"
            )
            facts["torch_tf32"] = (
                f"matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn {torch.backends.cudnn.allow_tf32}"
            )
        return facts

    def free_memory(self, device: str) -> int | None:
        """Free GPU bytes: what CUDA reports free plus what PyTorch's caching allocator holds unused."""
        if device not in self.devices() or device != "gpu":
            return None
        torch = self.torch
        free, _total = torch.cuda.mem_get_info()
        return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()

    def device_timer(self, device: str) -> DeviceTimer | None:
        """CUDA events on the current stream, around each timed fit on the GPU."""
        if device not in self.devices() or device != "gpu":
            return None
        event = self.torch.cuda.Event
        return cuda_event_timer(lambda: event(enable_timing=True), lambda begin, end: begin.elapsed_time(end))

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        """The fit, reading its initial weights from one static device tensor that :meth:`Fit.reset` overwrites
        (a CUDA graph replays from that very tensor; every other fit clones it first)."""
        torch = self.torch
        x, y, initial = self.tensors(problem, device)
        run, outputs = self._run(x, y, initial, problem, variant, device)

        def place(weights) -> None:
            initial.copy_(torch.from_numpy(weights))
            if device == "gpu":
                torch.cuda.synchronize()  # the copy stays out of the timed call

        clear = None if outputs is None else lambda: outputs.fill_(float("nan"))
        return Fit(lambda _: run(), problem.initial_weights(), place, clear)

    def _run(self, x, y, initial, problem: Problem, variant: Variant, device: str) -> tuple[Callable, Any]:
        """The timed call of ``variant``, and its persistent output buffer (the CUDA graph's; else None)."""
        torch = self.torch
        if self.declaration(variant).compiler == "torch.compile":
            torch._dynamo.reset()
        if variant.formulation == "tuned":
            return self._prepare_tuned(x, y, initial, problem, variant, device)
        if variant == Variant("autodiff", "eager"):
            return lambda: self._finish(*self._autograd_loop(initial, x, y, problem), device), None

        step = self.functional_step(variant.grad, x, y, problem.lr)
        if variant.mode == "jit-loop":
            static_fit = StaticFit(torch, step, initial, problem)
            return cuda_graph_fit(torch, static_fit), static_fit.outputs
        if variant.mode == "jit-step":
            step = torch.compile(step, fullgraph=True, dynamic=False)

        def fit() -> FitResult:
            with torch.no_grad():
                return self._finish(*python_loop(step, tuple(initial.clone()), problem), device)

        return fit, None

    def tensors(self, problem: Problem, device: str) -> tuple[Any, Any, Any]:
        """x, y and the initial weights (one tensor of four) on ``device``, copied from the problem's arrays."""
        torch = self.torch
        target = torch.device("cuda" if device == "gpu" else "cpu")
        x_host, y_host = problem.x_and_y()
        x, y = torch.from_numpy(x_host).to(target), torch.from_numpy(y_host).to(target)
        initial = torch.from_numpy(problem.initial_weights()).to(target)
        assert x.dtype == initial.dtype == getattr(torch, problem.dtype)
        return x, y, initial

    def functional_step(self, grad: str, x: Any, y: Any, learning_rate: float) -> Step:
        """One iteration as a function of the weights: the tutorial's manual backward pass, or
        ``torch.func.grad_and_value`` of the loss followed by the update."""
        if grad == "manual":

            def step(weights: Weights) -> tuple[Weights, Any]:
                return manual_step(weights, x, y, learning_rate)
        else:
            grad_and_value = self.torch.func.grad_and_value(loss_of)

            def step(weights: Weights) -> tuple[Weights, Any]:
                gradients, loss = grad_and_value(weights, x, y)
                return descend(weights, gradients, learning_rate), loss

        return step

    def _prepare_tuned(self, x, y, initial, problem: Problem, variant: Variant, device: str) -> tuple[Callable, Any]:
        """The tuned fits (see the module docstring), as :meth:`_run` returns them, in the form the variant declares
        for this device and dtype."""
        torch = self.torch
        form = self.declaration(variant).form(device, problem.dtype, problem.n)
        if form == "cuda-graph":
            step = torch.compile(self.tuned_step(variant.grad, x, y, problem), fullgraph=True, dynamic=False)
            static_fit = StaticFit(torch, step, initial, problem, vector=True)
            return cuda_graph_fit(torch, static_fit), static_fit.outputs
        if form == "while-loop":
            whole_fit = torch.compile(self._while_loop(x, y, problem, variant.grad), fullgraph=True, dynamic=False)

            def run(start) -> tuple[Weights, object, list]:
                weights, losses = whole_fit(start.clone(), x.new_zeros(problem.iterations))
                return weights, losses[-1], list(losses[problem.log_interval - 1 :: problem.log_interval])
        else:
            powers = torch.stack([torch.ones_like(x), x, x * x, x * x * x])
            eager = self._eager_manual if variant.grad == "manual" else self._eager_autodiff
            run = eager(x, y, powers, problem, blas=form == "blas")

        def fit() -> FitResult:
            with torch.no_grad():
                return self._finish(*run(initial), device)

        return fit, None

    def tuned_step(self, grad: str, x: Any, y: Any, problem: Problem) -> Step:
        """One tuned iteration on the 4-vector of weights: :mod:`backends.tuned`'s manual step, or
        ``torch.func.grad_and_value`` of its Horner loss followed by the update."""
        torch = self.torch

        def one_step(w):
            if grad == "manual":
                return tuned.manual_step(w, x, y, 2.0 * problem.lr, torch.stack)
            gradient, loss = torch.func.grad_and_value(tuned.loss_of)(w, x, y)
            return w - problem.lr * gradient, loss

        return one_step

    def _while_loop(self, x, y, problem: Problem, grad: str):
        """The whole fit as a ``torch.while_loop``: (weights, losses) -> (weights, losses)."""
        torch = self.torch
        one_step = self.tuned_step(grad, x, y, problem)

        def whole_fit(w, losses):
            def body(t, w, losses):
                w, loss = one_step(w)
                return t + 1, w, losses.index_copy(0, t.reshape(1), loss.reshape(1))

            t0 = torch.zeros((), dtype=torch.int64, device=w.device)
            _, w, losses = torch.while_loop(lambda t, w, losses: t < problem.iterations, body, (t0, w, losses))
            return w, losses

        return whole_fit

    def _eager_manual(self, x, y, powers, problem: Problem, blas: bool, all_reduce: Callable | None = None):
        """Residual by ``addmv``, gradient and loss by BLAS (form ``blas``, float64) or cascade sums (``sums``,
        float32), into buffers. On a rank of a distributed fit, ``all_reduce`` sums the loss and the four gradient
        sums across ranks as one 5-vector once per iteration, before the update every rank applies alike."""
        torch = self.torch
        residual, products = torch.empty_like(x), torch.empty_like(powers)
        sums = x.new_empty(5)
        gradient = sums[1:]
        step = 2.0 * problem.lr

        def run(initial) -> tuple[Weights, object, list]:
            w = initial.clone()
            logged_losses = []
            for t in range(problem.iterations):
                torch.addmv(y, powers.T, w, beta=-1, out=residual)
                if blas:
                    loss = torch.dot(residual, residual)
                    torch.mv(powers, residual, out=gradient)
                else:
                    loss = residual.square().sum()
                    torch.sum(torch.mul(powers, residual, out=products), dim=1, out=gradient)
                if all_reduce is not None:
                    sums[0] = loss
                    all_reduce(sums)
                    loss = sums[0]
                if problem.is_logged(t):
                    logged_losses.append(loss.clone())
                w.sub_(gradient, alpha=step)
            return w, loss.clone(), logged_losses

        return run

    # Across devices: ``manual/eager tuned`` in ``world`` rank processes (torch.distributed: gloo on the CPU,
    # NCCL on GPUs, one GPU per rank), each with its block of x and y; the tuned step's loss and four gradient
    # sums go into one 5-vector, ``all_reduce``-d once per iteration, and every rank applies the same update.

    def shard_unavailable_reason(self, problem: Problem, variant: Variant, device: str, world: int) -> str | None:
        if device == "gpu" and (count := self.torch.cuda.device_count()) < world:
            return (
                f"world={world} needs {world} GPUs, {count} here (NCCL cannot put two ranks on one GPU:"
                " 'Duplicate GPU detected')"
            )
        return None

    def join(self, shard: Shard, device: str, timeout_s: float) -> None:
        """``init_process_group`` at ``tcp://coordinator`` (gloo on the CPU, NCCL on GPUs)."""
        import datetime

        import torch.distributed as dist

        if device == "gpu":
            self.torch.cuda.set_device(shard.process % self.torch.cuda.device_count())
        dist.init_process_group(
            "nccl" if device == "gpu" else "gloo",
            init_method=f"tcp://{shard.coordinator}",
            rank=shard.process,
            world_size=shard.processes,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        self.dist = dist

    def barrier(self, shard: Shard) -> None:
        if shard.processes > 1:
            self.dist.barrier()

    def prepare_shard(self, problem: Problem, variant: Variant, device: str, shard: Shard) -> Fit:
        torch = self.torch
        target = torch.device("cuda" if device == "gpu" else "cpu")
        x_host, y_host = problem.x_and_y_block(*block_bounds(problem.n, shard.world, shard.process))
        x, y = torch.from_numpy(x_host).to(target), torch.from_numpy(y_host).to(target)
        powers = torch.stack([torch.ones_like(x), x, x * x, x * x * x])
        form = self.declaration(variant).form(device, problem.dtype, problem.n)
        run = self._eager_manual(x, y, powers, problem, blas=form == "blas", all_reduce=self.dist.all_reduce)

        def fit(start) -> FitResult:
            with torch.no_grad():
                return self._finish(*run(start), device)

        return Fit(fit, problem.initial_weights(), lambda w: torch.from_numpy(w).to(target))

    def collective_seconds(self, shard: Shard, device: str, dtype: str, rounds: int) -> float:
        """``rounds`` all-reduces of a 5-vector of zeros in a row (the sum stays zero: no overflow)."""
        torch = self.torch
        values = torch.zeros(5, dtype=getattr(torch, dtype), device="cuda" if device == "gpu" else "cpu")
        times = []
        for attempt in range(4):
            self.barrier(shard)
            start = time.perf_counter_ns()
            for _ in range(rounds):
                self.dist.all_reduce(values)
            if device == "gpu":
                torch.cuda.synchronize()
            if attempt:  # the first is a warm-up
                times.append((time.perf_counter_ns() - start) / 1e9 / rounds)
        return sorted(times)[1]

    def _eager_autodiff(self, x, y, powers, problem: Problem, blas: bool):
        """Autograd on a 4-vector: ``addmv`` and ``dot`` (form ``blas``, float64), Horner's form and ``.sum()``
        (``horner``, float32)."""
        torch = self.torch

        def loss_of(w):
            if blas:
                r = torch.addmv(y, powers.T, w, beta=-1)
                return torch.dot(r, r)
            return tuned.loss_of(w, x, y)

        def run(initial) -> tuple[Weights, object, list]:
            w = initial.clone().requires_grad_(True)
            logged_losses = []
            for t in range(problem.iterations):
                with torch.enable_grad():
                    loss = loss_of(w)
                    loss.backward()
                if problem.is_logged(t):
                    logged_losses.append(loss.detach())
                w.sub_(w.grad, alpha=problem.lr)
                w.grad = None
            return w.detach(), loss.detach(), logged_losses

        return run

    def _autograd_loop(self, initial, x, y, problem: Problem) -> tuple[Weights, object, list]:
        """The tutorial's autograd section: backward(), then an in-place update without grad tracking."""
        torch = self.torch
        a, b, c, d = (w.clone().requires_grad_(True) for w in initial)
        learning_rate = problem.lr
        logged_losses = []
        for t in range(problem.iterations):
            loss = loss_of((a, b, c, d), x, y)
            if problem.is_logged(t):
                logged_losses.append(loss.detach())
            loss.backward()
            with torch.no_grad():
                for weight in (a, b, c, d):
                    weight -= learning_rate * weight.grad
                    weight.grad = None
        return (a.detach(), b.detach(), c.detach(), d.detach()), loss.detach(), logged_losses

    def _finish(self, weights: Weights, loss, logged_losses: list, device: str) -> FitResult:
        """Synchronise, then read everything back to the host in one transfer."""
        torch = self.torch
        if device == "gpu":
            torch.cuda.synchronize()
        return unstack_result(stacked(torch, weights, loss, logged_losses).tolist())


def stacked(torch: Any, weights: Weights, loss: Any, logged_losses: list) -> Any:
    """The fit's results in one device tensor, in the order of :func:`backends.contract.unstack_result`."""
    return torch.stack([*weights, loss, *logged_losses])


class StaticFit:
    """The whole fit writing its results into preallocated device tensors: the work a CUDA graph captures.

    Calling it runs every iteration from ``initial`` and writes the final weights, the final loss and the
    logged losses (as :func:`stacked` orders them) into :attr:`outputs`, one tensor allocated here, before any
    capture. Everything in between (the weights of each iteration, the temporaries, the logged losses until
    they are stacked) lives only on the device, so the call contains no host synchronisation and can be
    captured; replaying the capture restarts from ``initial`` (a static tensor) and refills the same output
    tensor. It runs eagerly too, which is how the CPU tests check its arithmetic.
    """

    def __init__(self, torch: Any, step: Step, initial: Any, problem: Problem, vector: bool = False) -> None:
        self.torch, self.step, self.initial, self.problem = torch, step, initial, problem
        self.vector = vector  # the step takes the weights as one 4-vector (the tuned steps), not four scalars
        self.outputs = torch.empty(5 + len(problem.logged_iterations), dtype=initial.dtype, device=initial.device)

    def start(self) -> Weights:
        """A fresh copy of the initial weights, in the form ``step`` takes."""
        weights = self.initial.clone()
        return weights if self.vector else tuple(weights)

    def __call__(self) -> None:
        torch = self.torch
        with torch.no_grad():
            weights, loss, logged_losses = python_loop(self.step, self.start(), self.problem)
            self.outputs.copy_(stacked(torch, weights, loss, logged_losses))

    def warm_up(self, iterations: int = 3) -> None:
        """A few steps, untimed and uncaptured: they initialise what capture must not (handles, allocator) and,
        for a compiled step, compile it."""
        weights = self.start()
        with self.torch.no_grad():
            for _ in range(iterations):
                weights, _loss = self.step(weights)

    def result(self) -> FitResult:
        """The outputs, read back to the host in one transfer (which waits for the device)."""
        return unstack_result(self.outputs.tolist())


def cuda_graph_fit(torch: Any, static_fit: StaticFit) -> Callable[[], FitResult]:
    """A fit that captures ``static_fit`` as one CUDA graph on its first call and replays it on every call.

    Capture follows PyTorch's CUDA-graph rules: warm-up iterations on a side stream, then capture on the
    same stream (``torch.cuda.graph(..., stream=side)``) so lazily created handles already exist; the
    capture's allocations come from the graph's private memory pool, and memory freed during capture is
    reused within it, so the graph needs about one iteration's temporaries, not one per iteration. The
    autodiff step's backward pass is captured like the rest: autograd runs each backward kernel on the stream
    of its forward one, here the capturing stream, as in PyTorch's own whole-network capture example.
    The first call (``first_call_s``) pays warm-up, capture and instantiation; every call then replays
    the graph, synchronises and reads the outputs back once.
    """
    graph = None

    def fit() -> FitResult:
        nonlocal graph
        if graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                static_fit.warm_up()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=side):
                static_fit()
        graph.replay()
        torch.cuda.synchronize()
        return static_fit.result()

    return fit


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU, if any."""
    return next((cc for cc in ("g++", "c++", "clang++") if shutil.which(cc)), None)
