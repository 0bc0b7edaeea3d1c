"""Numba: the fit as one compiled loop, the hand-written baseline frameworks are compared against.

Numba compiles loops, so every variant is ``manual`` (hand-written gradients; Numba has no autodiff) and
compiles the whole fit (all iterations in one call). Two modes and two formulations:

- ``jit-loop``: one thread; ``jit-loop-parallel``: the pass over the data is a ``prange`` loop, so each
  iteration is one parallel region over the run's threads (its sums reduced across threads). Serial and
  parallel are modes rather than formulations because the choice is how the loop is run, not how the
  arithmetic is written; which one wins depends on n (starting a parallel region costs microseconds).
- ``tutorial``: the tutorial's arithmetic written as a loop, as a Numba user writes it first: ``x ** 2``
  and ``x ** 3`` for each element, ``grad_y_pred = 2 (y_pred - y)``, the loss and four gradient sums
  accumulated in the data's dtype, in order, with IEEE semantics. In float32 this is plain float32
  accumulation over n elements, which loses accuracy from a few 10^4 elements on: those rows are reported
  as ``expected-mismatch`` (the bound is declared in :data:`EXPECTED`), by design, to show it.
- ``tuned``: one fused pass per iteration with Horner's form ``((d x + c) x + b) x + a``, the loss and the
  four sums of ``r, r x, r x^2, r x^3`` (each power one multiply from the last) in the same loop, the 2 of
  the gradient folded into the learning rate, and ``fastmath`` limited to reassociation and contraction
  (so LLVM vectorises the sums and fuses multiply-adds; NaN and infinity keep their meaning, so divergence
  is still detected). The sums run in blocks of 2048 elements, in the data's dtype inside a block and in
  float64 across blocks: in float32 that keeps the speed of float32 arithmetic (eight or sixteen lanes per
  vector) with the accuracy of float64 accumulation (float32 accumulators throughout miss the reference by
  1e-4 at 10^7; float64 accumulators throughout are about four times slower while the data fits in cache).
  ``backends/numba_kernels.py`` holds the kernels; ``bench/roofline.py`` counts their operations.

Vector width: on CPUs with AVX-512, LLVM prefers 256-bit vectors unless told otherwise, which halves the
arithmetic rate of a compute-bound loop. The backend asks for the widest vectors (``NUMBA_CPU_FEATURES`` = the
host's features with LLVM's ``prefer-256-bit`` tuning off), as an expert tuning for this machine would, unless
``NUMBA_CPU_FEATURES`` is already set or Numba was imported before the backend (then Numba's default stands;
``environment.json`` records which). It matters where the kernel is compute-bound (from cache), not where
it waits on memory. It applies to both formulations, since Numba compiles the whole process for one target.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from numpy.typing import DTypeLike

from backends.contract import (
    Backend,
    BackendUnavailable,
    Expected,
    Fit,
    FitResult,
    Form,
    Problem,
    Variant,
    make_result,
)

FLOAT32_SUMS_HOLD_UP_TO = 20_000
"""Up to this n the tutorial formulation in float32 (plain float32 accumulators, in order) agrees with the
reference within the float32 tolerance; beyond it the error of its sums grows with n (``docs/statuses.md`` and the
commit that set these give the measured errors), the accuracy loss this variant exists to show."""

FLOAT32_SUMS_AT_MOST = ((200_000, 2e-4), (2_000_000, 1e-2), (20_000_000, 0.1))
"""(n below, largest relative error predicted) of the float32 tutorial sums, decade by decade above
:data:`FLOAT32_SUMS_HOLD_UP_TO`: about four times the serial kernel's worst measured error, in the weights or
the losses, over the start seeds of a sweep's repeats (the parallel kernel's per-thread sums are shorter, hence
closer). Beyond the last n nothing is predicted: a disagreement there is a plain ``mismatch``."""

WHY = "plain float32 accumulation over n elements loses accuracy (the tutorial's loop, as a Numba user writes it)"

EXPECTED = {
    "tutorial": tuple(
        Expected(dtype="float32", n_from=n_from, n_below=n_below, why=WHY, at_most=at_most)
        for n_from, (n_below, at_most) in zip(
            (FLOAT32_SUMS_HOLD_UP_TO + 1, *(n for n, _ in FLOAT32_SUMS_AT_MOST)), FLOAT32_SUMS_AT_MOST, strict=False
        )
    ),
    "tuned": (),
}
"""Where each formulation is expected to miss the reference (the tuned blocked sums never are)."""
FORMS = {"tutorial": (Form("tutorial"),), "tuned": (Form("horner-blocked"),)}
"""The tuned kernel: Horner's form, one fused pass, sums in blocks (see the module docstring)."""


class NumbaBackend(Backend):
    """Numba on the CPU: the whole fit compiled, serial or parallel, tutorial or tuned arithmetic."""

    name = "numba"
    variants = tuple(
        Variant("manual", mode, formulation, forms=FORMS[formulation], expected=EXPECTED[formulation], compiler="Numba")
        for mode in ("jit-loop", "jit-loop-parallel")
        for formulation in ("tutorial", "tuned")
    )

    def __init__(self) -> None:
        try:
            widest_vectors()
            import numba

            from backends import numba_kernels
        except ImportError as error:
            raise BackendUnavailable(f"Numba is not installed ({error})") from error
        self.numba = numba
        self.kernels = numba_kernels

    def version(self) -> str:
        return self.numba.__version__

    def describe(self) -> dict[str, str]:
        return {
            "numba_threads": str(self.numba.get_num_threads()),
            # numba sets its config's names through globals() at import, which mypy cannot see
            "numba_threading_layer": self.numba.config.THREADING_LAYER,  # type: ignore[attr-defined]
            "numba_vectors": "widest (prefer-256-bit off)"
            if "-prefer-256-bit" in os.environ.get("NUMBA_CPU_FEATURES", "")
            else "Numba's default (LLVM's preference for the CPU)",
        }

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        x, y = problem.x_and_y()
        weights = problem.initial_weights()
        scalar = x.dtype.type
        parallel = variant.mode == "jit-loop-parallel"
        logged_dtype: DTypeLike
        buffers: tuple[np.ndarray, ...]  # the kernel's last arguments
        if variant.formulation == "tuned":
            kernel = self.kernels.tuned_parallel if parallel else self.kernels.tuned_serial
            rate, logged_dtype = scalar(2.0 * problem.lr), np.float64
            buffers = (np.zeros((self.numba.get_num_threads() if parallel else 1, 5)),)  # a row of sums per thread
        else:
            kernel = self.kernels.tutorial_parallel if parallel else self.kernels.tutorial_serial
            rate, logged_dtype = scalar(problem.lr), x.dtype
            buffers = ()
        logged = np.full(len(problem.logged_iterations), np.nan, dtype=logged_dtype)

        def fit(initial: np.ndarray) -> FitResult:
            w, loss = kernel(x, y, initial, rate, problem.iterations, problem.log_interval, logged, *buffers)
            return make_result(w, loss, logged)

        return Fit(fit, weights, clear=lambda: logged.fill(np.nan))


def widest_vectors() -> None:
    """Ask Numba for the host's widest vectors (see the module docstring), before Numba is imported."""
    if "numba" in sys.modules or "NUMBA_CPU_FEATURES" in os.environ:
        return
    import llvmlite.binding as llvm

    os.environ["NUMBA_CPU_FEATURES"] = f"{llvm.get_host_cpu_features().flatten()},-prefer-256-bit"
