"""CuPy: the tutorial's NumPy loop on a CUDA GPU, manual gradients, op by op.

One variant, ``manual/eager``, on the GPU only: the arithmetic of :mod:`backends.tutorial` (the NumPy
tutorial's, line for line) on CuPy arrays. x, y and the weights are copied to the GPU in ``prepare``; so is
the learning rate, as a 0-d array of the problem's dtype, so that every operation stays in that dtype
whatever CuPy's promotion rules for Python scalars. The logged losses stay on the GPU until the fit
ends; it then synchronises and reads everything back in one transfer. Fits are also timed with CUDA
events. CuPy is an optional dependency (``pip install -e .[gpu]``); without it, or without a GPU, the
backend says why it cannot run.
"""

from __future__ import annotations

from backends.contract import (
    Backend,
    DeviceTimer,
    Fit,
    FitResult,
    Problem,
    Variant,
    cuda_event_timer,
    require,
    unstack_result,
)
from backends.tutorial import Weights, manual_step, python_loop


class CupyBackend(Backend):
    """CuPy (NumPy's API on CUDA)."""

    name = "cupy"
    variants = (Variant("manual", "eager", devices=("gpu",)),)

    def __init__(self) -> None:
        self.cupy = cupy = require(
            "cupy",
            "CuPy",
            (ImportError, OSError),
            absent="is not installed or cannot load CUDA",
            hint="; install it with pip install -e '.[gpu]'",
        )
        self.no_gpu_reason = _no_gpu_reason(cupy)

    def version(self) -> str:
        return self.cupy.__version__

    def devices(self) -> tuple[str, ...]:
        return () if self.no_gpu_reason else ("gpu",)

    def unavailable_reason(self, variant: Variant, device: str) -> str | None:
        if self.no_gpu_reason:
            return self.no_gpu_reason
        return super().unavailable_reason(variant, device)

    def describe(self) -> dict[str, str]:
        if self.no_gpu_reason:
            return {"cupy_gpu": self.no_gpu_reason}
        runtime = self.cupy.cuda.runtime
        properties = runtime.getDeviceProperties(0)
        name = properties["name"]
        return {
            "cupy_gpu": (
                f"{name.decode() if isinstance(name, bytes) else name}, {properties['totalGlobalMem'] / 2**30:.1f} GiB,"
                f" CUDA runtime {_cuda_version(runtime.runtimeGetVersion())},"
                f" driver {_cuda_version(runtime.driverGetVersion())}"
            )
        }

    def free_memory(self, device: str) -> int | None:
        """Free GPU bytes: what CUDA reports free plus what CuPy's memory pool holds unused."""
        if device not in self.devices():
            return None
        free, _total = self.cupy.cuda.Device().mem_info
        return free + self.cupy.get_default_memory_pool().free_bytes()

    def device_timer(self, device: str) -> DeviceTimer | None:
        """CUDA events on the current stream, around each timed fit."""
        if device not in self.devices():
            return None
        cuda = self.cupy.cuda
        return cuda_event_timer(cuda.Event, cuda.get_elapsed_time)

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        cupy = self.cupy
        x_host, y_host = problem.x_and_y()
        x, y = cupy.asarray(x_host), cupy.asarray(y_host)
        learning_rate = cupy.asarray(problem.lr, dtype=problem.dtype)
        assert x.dtype == learning_rate.dtype == problem.dtype

        def step(weights: Weights) -> tuple[Weights, object]:
            return manual_step(weights, x, y, learning_rate)

        def place(weights):
            initial = cupy.asarray(weights)
            cupy.cuda.get_current_stream().synchronize()  # the copy to the GPU stays out of the timed call
            return initial

        def fit(initial) -> FitResult:
            weights, loss, logged_losses = python_loop(step, tuple(initial.copy()), problem)
            values = cupy.stack([*weights, loss, *logged_losses])
            if values.dtype != problem.dtype:
                raise TypeError(f"CuPy promoted the fit from {problem.dtype} to {values.dtype}")
            cupy.cuda.get_current_stream().synchronize()
            return unstack_result(values.get().tolist())

        return Fit(fit, problem.initial_weights(), place)


def _no_gpu_reason(cupy) -> str | None:
    """Why CuPy cannot use a GPU here, or None when it can."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError, or a missing driver library
        return f"no CUDA GPU visible to CuPy ({type(error).__name__}: {error})"
    return None if count > 0 else "no CUDA GPU visible to CuPy (getDeviceCount() is 0)"


def _cuda_version(number: int) -> str:
    """CUDA's integer version (12040) as text (12.4)."""
    return f"{number // 1000}.{number % 1000 // 10}"
