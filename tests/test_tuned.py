"""Every tuned and Numba variant agrees with the exact reference; the formulation axis reaches every table.

Small problems and few iterations (torch.compile still costs seconds per variant). A framework that is not
installed skips its tests, unless it is listed in ``ARRAYBENCH_REQUIRED_BACKENDS`` (``make test`` lists them
all), where a skip would hide a broken setup, so it fails instead (tests/availability.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from backends.contract import FORMULATIONS, Problem, Variant, default_learning_rate
from backends.reference import loss_relative_error, reference_fit, relative_error
from bench.cli import main
from bench.config import Sweep
from bench.results import TOLERANCE
from tests.availability import backend_or_skip


def checked_variants() -> list[tuple[str, Variant]]:
    """Every tuned variant of the built-in frameworks, and every Numba variant (tutorial ones included)."""
    from backends import backend_class

    pairs = []
    for name in ("numpy", "torch", "jax", "numba"):
        for variant in backend_class(name).variants:
            if variant.formulation == "tuned" or name == "numba":
                pairs.append((name, variant))
    return pairs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "variant"), checked_variants(), ids=lambda v: str(v).replace(" ", "-"))
def test_variant_agrees_with_reference(name: str, variant: Variant, dtype: str) -> None:
    # 5000 > the Numba kernels' block of 2048, so whole blocks and a partial one are both summed; 777 and 5000 lie
    # either side of JAX's HORNER_BELOW, so both of its float32 CPU forms run.
    backend = backend_or_skip(name)
    for n in (777, 5000):
        problem = Problem(n=n, iterations=30, dtype=dtype, log_interval=10)
        result = backend.prepare(problem, variant, "cpu")()
        reference = reference_fit(problem)
        assert len(result.logged_losses) == 3
        assert relative_error(result, reference) <= TOLERANCE[dtype], (n, result, reference)
        assert loss_relative_error(result, reference) <= TOLERANCE[dtype], (n, result, reference)


def test_numba_float32_accumulation_loses_accuracy_and_tuned_blocks_do_not() -> None:
    """Plain float32 sums over 10^6 elements miss the tolerance; the tuned blocked sums keep it."""
    backend = backend_or_skip("numba")
    problem = Problem(n=1_000_000, iterations=20, dtype="float32")
    reference = reference_fit(problem)
    plain = backend.prepare(problem, Variant("manual", "jit-loop", "tutorial"), "cpu")()
    blocked = backend.prepare(problem, Variant("manual", "jit-loop", "tuned"), "cpu")()
    assert max(relative_error(plain, reference), loss_relative_error(plain, reference)) > TOLERANCE["float32"]
    assert max(relative_error(blocked, reference), loss_relative_error(blocked, reference)) <= TOLERANCE["float32"]


@pytest.mark.parametrize("shares", [1, 2, 7])
def test_numba_tuned_kernel_sums_the_same_over_any_number_of_shares(shares: int) -> None:
    """The parallel kernel's rows of partial sums (one per thread) add up to the serial kernel's sums, also with
    more shares than blocks (empty shares) and than this machine's threads."""
    backend_or_skip("numba")
    from backends import numba_kernels

    for n in (777, 5000, 20_000):
        x = np.linspace(-np.pi, np.pi, n)
        y, weights, logged = np.sin(x), np.array([0.1, -0.2, 0.3, -0.4]), np.zeros(3)
        step = 2 * default_learning_rate(n)  # the tuned kernels take twice the learning rate
        serial = numba_kernels.tuned_serial(x, y, weights, step, 30, 10, logged, np.zeros((1, 5)))
        parallel = numba_kernels.tuned_parallel(x, y, weights, step, 30, 10, logged, np.zeros((shares, 5)))
        np.testing.assert_allclose(parallel[0], serial[0], rtol=1e-12)
        assert parallel[1] == pytest.approx(serial[1], rel=1e-12)


def test_variant_label_shows_a_tuned_formulation_only() -> None:
    assert str(Variant("manual", "eager")) == "manual/eager"
    assert str(Variant("manual", "jit-loop", "tuned")) == "manual/jit-loop tuned"


def test_sweep_keeps_only_the_asked_formulations() -> None:
    variants = {"numpy": (Variant("manual", "eager"), Variant("manual", "eager", "tuned"))}
    sweep = Sweep(backends=("numpy",), formulations=("tuned",), devices=("cpu",), dtypes=("float64",), points=((8, 2),))
    configs = sweep.configurations(variants)
    assert [c.formulation for c in configs] == ["tuned"]
    assert configs[0].variant == Variant("manual", "eager", "tuned")
    assert "tuned" in configs[0].key
    both = Sweep(backends=("numpy",), devices=("cpu",), dtypes=("float64",), points=((8, 2),))
    assert {c.formulation for c in both.configurations(variants)} == set(FORMULATIONS)


def test_cli_rejects_an_unknown_formulation(capsys, tmp_path) -> None:
    code = main(["run", "--formulations", "fast", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "unknown formulation fast; choose from tutorial, tuned" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_variant_names_in_tables() -> None:
    import pandas as pd

    from bench.runs import variant_names

    frame = pd.DataFrame(
        {
            "backend": ["torch", "torch"],
            "grad": ["manual"] * 2,
            "mode": ["jit-step", "jit-loop"],
            "formulation": ["tutorial", "tuned"],
        }
    )
    assert list(variant_names(frame)) == ["torch manual/jit-step", "torch manual/jit-loop tuned"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "variant",
    [
        Variant(grad, mode, "tuned")
        for grad, mode in [("manual", "jit-step"), ("manual", "jit-loop"), ("autodiff", "jit-step")]
    ],
    ids=str,
)
def test_jax_gpu_forms_agree_with_reference_on_the_cpu(monkeypatch, variant: Variant, dtype: str) -> None:
    """JAX's tuned steps take another form on a GPU (no powers of x read from memory); run here, the GPU's
    code path on the CPU device, so that CI checks its arithmetic."""
    backend = backend_or_skip("jax")
    monkeypatch.setattr(backend, "_device", lambda device: backend.jax.devices("cpu")[0])
    problem = Problem(n=5000, iterations=30, dtype=dtype, log_interval=10)
    result = backend.prepare(problem, variant, "gpu")()
    reference = reference_fit(problem)
    assert relative_error(result, reference) <= TOLERANCE[dtype]
    assert loss_relative_error(result, reference) <= TOLERANCE[dtype]


@pytest.mark.parametrize(("preset", "expected"), [(None, "-prefer-256-bit"), ("+avx2", "+avx2")])
def test_numba_asks_for_the_widest_vectors_unless_told_otherwise(preset: str | None, expected: str) -> None:
    """In a fresh process (as a worker is): the host's features with LLVM's 256-bit preference off, or the
    user's own NUMBA_CPU_FEATURES untouched."""
    backend_or_skip("numba")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_FEATURES"}
    if preset:
        env["NUMBA_CPU_FEATURES"] = preset
    code = (
        "import os; from backends.numba_backend import NumbaBackend as B; B(); print(os.environ['NUMBA_CPU_FEATURES'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip().endswith(expected)
