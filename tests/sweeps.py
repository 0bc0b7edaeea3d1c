"""How tests run ``bench`` for real, spelled out once: the command, and the options of the small sweeps that
several test modules run (a test adds what it is about, its sizes, budget, machine, folder, after them)."""

from __future__ import annotations

import sys


def bench_command(*args: str) -> list[str]:
    """``python -m bench ARGS`` with this environment's Python: what a user types, for a fresh process."""
    return [sys.executable, "-m", "bench", *args]


TINY = (
    "--backends",
    "numpy",
    "--grads",
    "manual",
    "--modes",
    "eager",
    "--devices",
    "cpu",
    "--sizes",
    "100,300",
    "--iterations",
    "100",
    "--repeats",
    "2",
    "--threads",
    "1",
    "--no-probe",
    "--budget",
    "5",
)
"""NumPy's loop at 2 sizes, with every host-dependent option a shard needs spelled out (``--devices``,
``--threads``): 4 series (tutorial and tuned, float32 and float64) of 2 sizes, 8 configurations, a few seconds."""
TINY_TUTORIAL = (*TINY, "--formulations", "tutorial")
""":data:`TINY` in the tutorial formulation only: 2 series (float32, float64) of 2 sizes, 4 configurations."""

NUMPY_FLOAT64 = ("--backends", "numpy", "--formulations", "tutorial", "--dtypes", "float64")
"""NumPy's tutorial fit in float64 alone: one configuration for each size and iteration count on the CPU."""
NUMPY_AND_JAX_LOOPS = ("--backends", "numpy,jax", "--grads", "manual", "--modes", "eager,jit-loop")
"""NumPy's loop beside JAX's eager and compiled (jit-loop) loops, with manual gradients: a framework that
compiles beside one that does not."""
