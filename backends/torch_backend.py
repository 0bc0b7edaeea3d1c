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

Tuned formulation (measured against the alternatives; the fastest that agrees with the reference):

- ``manual/eager tuned``: with ``P = [1, x, x^2, x^3]`` (4 x n) built in ``prepare``, the residual is one
  ``torch.addmv(y, P.T, w, beta=-1)`` and, in float64, the gradient one ``torch.mv(P, r)`` and the loss one
  ``torch.dot``, all into preallocated buffers (``out=``): four kernels per iteration instead of about
  twenty. BLAS accumulates float32 dot products in float32 and misses the reference by 3e-4 at 10^7, so in
  float32 the two reductions use torch's own cascade sums (``(P * r).sum(1)``, ``(r * r).sum()``).
- ``autodiff/eager tuned``: autograd on one 4-vector of weights; in float64 through ``addmv`` and ``dot``
  (one forward and one backward kernel each), in float32 through Horner's form and ``.sum()`` (autograd's
  backward of ``addmv`` is a float32 BLAS ``mv``, 3e-4 off at 10^7).
- ``manual/jit-loop tuned`` and ``autodiff/jit-loop tuned``: the whole fit as one ``torch.compile``-d
  ``torch.while_loop`` whose body is the tuned step (Horner's form, :mod:`backends.tuned`), every iteration's
  loss written into a buffer carried by the loop. Compiling one step (jit-step) with the tuned arithmetic
  measured the same as the tutorial's (inductor fuses both into one kernel), and compiling a block of 10 or
  100 unrolled steps lost to the while-loop above 10^3, so the tuned compiled form is the loop.

x, y and the weights are created on the device during ``prepare``. The fit keeps the logged losses on the
device and reads them back once at the end, after ``torch.cuda.synchronize()`` on a GPU. TF32 is
disabled, so float32 results on a GPU are true float32 results.
"""

from __future__ import annotations

import shutil

from backends import tuned
from backends.contract import Backend, BackendUnavailable, Fit, FitResult, Problem, Variant, make_result
from backends.tutorial import Weights, descend, loss_of, manual_step, python_loop


class TorchBackend(Backend):
    """PyTorch on the CPU and on CUDA."""

    name = "torch"
    variants = tuple(
        Variant(grad, mode, formulation)
        for formulation, modes in (("tutorial", ("eager", "jit-step")), ("tuned", ("eager", "jit-loop")))
        for grad in ("manual", "autodiff")
        for mode in modes
    )

    def __init__(self) -> None:
        try:
            import torch
        except ImportError as error:
            raise BackendUnavailable(f"PyTorch is not installed ({error})") from error
        self.torch = torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def version(self) -> str:
        return self.torch.__version__

    def devices(self) -> tuple[str, ...]:
        return ("cpu", "gpu") if self.torch.cuda.is_available() else ("cpu",)

    def unavailable_reason(self, variant: Variant, device: str) -> str | None:
        if device == "gpu" and not self.torch.cuda.is_available():
            return "no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False)"
        if variant.mode in ("jit-step", "jit-loop") and device == "cpu" and not _cpp_compiler():
            return "torch.compile on the CPU needs a C++ compiler (none of g++, c++, clang++ on PATH)"
        return super().unavailable_reason(variant, device)

    def describe(self) -> dict[str, str]:
        torch = self.torch
        facts = {
            "torch_threads": str(torch.get_num_threads()),
            "torch_interop_threads": str(torch.get_num_interop_threads()),
        }
        if torch.cuda.is_available():
            facts["torch_cuda"] = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
        return facts

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        torch = self.torch
        target = torch.device("cuda" if device == "gpu" else "cpu")
        dtype = getattr(torch, problem.dtype)
        x_host, y_host = problem.x_and_y()
        x = torch.from_numpy(x_host).to(target)
        y = torch.from_numpy(y_host).to(target)
        initial = torch.from_numpy(problem.initial_weights()).to(target)
        assert x.dtype == dtype and initial.dtype == dtype
        learning_rate = problem.lr

        if variant.mode in ("jit-step", "jit-loop"):
            torch._dynamo.reset()
        if variant.formulation == "tuned":
            return self._prepare_tuned(x, y, initial, problem, variant, device)
        if variant == Variant("autodiff", "eager"):
            return lambda: self._finish(*self._autograd_loop(initial, x, y, problem), device)

        if variant.grad == "manual":

            def step(weights: Weights) -> tuple[Weights, object]:
                return manual_step(weights, x, y, learning_rate)
        else:
            grad_and_value = torch.func.grad_and_value(loss_of)

            def step(weights: Weights) -> tuple[Weights, object]:
                gradients, loss = grad_and_value(weights, x, y)
                return descend(weights, gradients, learning_rate), loss

        if variant.mode == "jit-step":
            step = torch.compile(step, fullgraph=True, dynamic=False)

        def fit() -> FitResult:
            with torch.no_grad():
                return self._finish(*python_loop(step, tuple(initial.clone()), problem), device)

        return fit

    def _prepare_tuned(self, x, y, initial, problem: Problem, variant: Variant, device: str) -> Fit:
        """The tuned fits (see the module docstring)."""
        torch = self.torch
        powers = torch.stack([torch.ones_like(x), x, x * x, x * x * x])
        if variant.mode == "jit-loop":
            whole_fit = torch.compile(self._while_loop(x, y, problem, variant.grad), fullgraph=True, dynamic=False)

            def run() -> tuple[Weights, object, list]:
                weights, losses = whole_fit(initial.clone(), torch.zeros(problem.iterations, dtype=x.dtype))
                return weights, losses[-1], list(losses[problem.log_interval - 1 :: problem.log_interval])
        elif variant.grad == "manual":
            run = self._eager_manual(x, y, powers, initial, problem)
        else:
            run = self._eager_autodiff(x, y, powers, initial, problem)

        def fit() -> FitResult:
            with torch.no_grad():
                return self._finish(*run(), device)

        return fit

    def _while_loop(self, x, y, problem: Problem, grad: str):
        """The whole fit as a ``torch.while_loop``: (weights, losses) -> (weights, losses)."""
        torch = self.torch
        step = 2.0 * problem.lr

        def one_step(w):
            if grad == "manual":
                return tuned.manual_step(w, x, y, step, torch.stack)
            gradient, loss = torch.func.grad_and_value(tuned.loss_of)(w, x, y)
            return w - problem.lr * gradient, loss

        def whole_fit(w, losses):
            def body(t, w, losses):
                w, loss = one_step(w)
                return t + 1, w, losses.index_copy(0, t.reshape(1), loss.reshape(1))

            t0 = torch.zeros((), dtype=torch.int64, device=w.device)
            _, w, losses = torch.while_loop(lambda t, w, losses: t < problem.iterations, body, (t0, w, losses))
            return w, losses

        return whole_fit

    def _eager_manual(self, x, y, powers, initial, problem: Problem):
        """Residual by ``addmv``, gradient and loss by BLAS (float64) or cascade sums (float32), into buffers."""
        torch = self.torch
        blas = x.dtype == torch.float64
        residual, products, gradient = torch.empty_like(x), torch.empty_like(powers), torch.empty_like(initial)
        step = 2.0 * problem.lr

        def run() -> tuple[Weights, object, list]:
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
                if problem.is_logged(t):
                    logged_losses.append(loss)
                w.sub_(gradient, alpha=step)
            return w, loss, logged_losses

        return run

    def _eager_autodiff(self, x, y, powers, initial, problem: Problem):
        """Autograd on a 4-vector: ``addmv`` and ``dot`` in float64, Horner's form and ``.sum()`` in float32."""
        torch = self.torch

        def loss_of(w):
            if x.dtype == torch.float64:
                r = torch.addmv(y, powers.T, w, beta=-1)
                return torch.dot(r, r)
            return tuned.loss_of(w, x, y)

        def run() -> tuple[Weights, object, list]:
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
        values = torch.stack([*weights, loss, *logged_losses]).tolist()  # a 4-vector unpacks like 4 scalars
        return make_result(values[:4], values[4], values[5:])


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU, if any."""
    return next((cc for cc in ("g++", "c++", "clang++") if shutil.which(cc)), None)
