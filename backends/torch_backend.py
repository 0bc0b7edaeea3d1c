"""PyTorch: the tutorial's "Tensors" (manual) and "Tensors and autograd" (autodiff) loops.

Variants:

- ``manual/eager``: the tutorial's arithmetic on tensors, op by op.
- ``autodiff/eager``: ``loss.backward()`` and an in-place update under ``torch.no_grad()``, as in the
  tutorial's autograd section.
- ``manual/jit-step`` and ``autodiff/jit-step``: one ``torch.compile``-d call per iteration
  (``fullgraph=True``, so a graph break is an error, never a silent fallback to eager;
  ``dynamic=False``, so every size gets kernels specialised to its shape, as an expert benchmarking a
  fixed shape would do). The autodiff step differentiates with ``torch.func.grad_and_value`` inside the
  compiled function. Dynamo's caches are reset in ``prepare``, so each configuration pays its own
  compilation in its first call and never hits the recompile limit.

x, y and the weights are created on the device during ``prepare``. The fit keeps the logged losses on the
device and reads them back once at the end, after ``torch.cuda.synchronize()`` on a GPU. TF32 is
disabled, so float32 results on a GPU are true float32 results.
"""

from __future__ import annotations

import shutil

from backends.contract import Backend, BackendUnavailable, Fit, FitResult, Problem, Variant, make_result
from backends.tutorial import Weights, descend, loss_of, manual_step, python_loop


class TorchBackend(Backend):
    """PyTorch on the CPU and on CUDA."""

    name = "torch"
    variants = tuple(Variant(g, m) for g in ("manual", "autodiff") for m in ("eager", "jit-step"))

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
        if variant.mode == "jit-step" and device == "cpu" and not _cpp_compiler():
            return "torch.compile on the CPU needs a C++ compiler (none of g++, c++, clang++ on PATH)"
        return super().unavailable_reason(variant, device)

    def free_memory(self, device: str) -> int | None:
        if device == "gpu" and self.torch.cuda.is_available():
            return self.torch.cuda.mem_get_info()[0]
        return None

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

        if variant.mode == "jit-step":
            torch._dynamo.reset()
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
        values = torch.stack([*weights, loss, *logged_losses]).tolist()
        return make_result(values[:4], values[4], values[5:])


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU, if any."""
    return next((cc for cc in ("g++", "c++", "clang++") if shutil.which(cc)), None)
