"""Every backend, variant, dtype and device against the exact float64 reference."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from backends import backend_class
from backends.contract import DTYPES, Problem, Variant
from backends.reference import loss_relative_error, moments, reference_fit, relative_error
from bench.results import TOLERANCE
from tests.availability import declared_cases, runnable_or_skip

# Sizes and iteration counts that are not round numbers, so no accidental alignment hides an error.
POINTS = [(777, 123), (3001, 500)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "iterations"), POINTS)
@pytest.mark.parametrize(("name", "variant", "device"), declared_cases())
def test_fit_agrees_with_the_reference(name: str, variant: Variant, n: int, iterations: int, dtype: str, device: str):
    """Final weights, every logged loss and the final loss, within the dtype's tolerance (see TOLERANCE)."""
    backend = runnable_or_skip(name, variant, device)
    problem = Problem(n=n, iterations=iterations, dtype=dtype)
    fit = backend.prepare(problem, variant, device)
    result = fit()
    reference = reference_fit(problem)
    assert len(result.logged_losses) == iterations // 100
    assert all(isinstance(w, float) for w in result.weights)
    assert relative_error(result, reference) <= TOLERANCE[dtype]
    assert loss_relative_error(result, reference) <= TOLERANCE[dtype]
    assert fit() == result, "a prepared fit must restart from the same initial weights every call"
    other = replace(problem, seed=problem.seed + 1)
    fit.reset(other.initial_weights())
    moved = fit()
    assert relative_error(moved, reference_fit(other)) <= TOLERANCE[dtype], "reset() chooses the initial weights"
    assert relative_error(moved, reference) > 1e-3
    fit.reset(problem.initial_weights())
    assert fit() == result


def exact_gradient(problem: Problem) -> np.ndarray:
    m, v, _ = moments(problem.n)
    return 2.0 * (m @ problem.initial_weights().astype(np.float64) - v)


def one_step_gradient(name: str, grad: str, mode: str, problem: Problem, device: str) -> np.ndarray:
    """The gradient a backend used in its first step, recovered from w1 = w0 - lr * g with lr = 1."""
    backend = runnable_or_skip(name, Variant(grad, mode), device)
    result = backend.prepare(problem, Variant(grad, mode), device)()
    return problem.initial_weights().astype(np.float64) - np.array(result.weights)


def has_manual_twin(name: str, variant: Variant, device: str) -> bool:
    """Whether ``variant`` is a tutorial autodiff variant whose manual twin exists on ``device`` too."""
    twin = Variant("manual", variant.mode)
    return (
        variant.grad == "autodiff"
        and variant.formulation == "tutorial"
        and not backend_class(name).absent_reason(twin, device)
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("name", "variant", "device"), declared_cases(keep=has_manual_twin))
def test_manual_and_autodiff_gradients_agree(name: str, variant: Variant, seed: int, dtype: str, device: str) -> None:
    """At random weights, the hand-written backward pass and the framework's autodiff give one gradient."""
    mode = variant.mode
    problem = Problem(n=501, iterations=1, dtype=dtype, learning_rate=1.0, seed=seed)
    manual = one_step_gradient(name, "manual", mode, problem, device)
    autodiff = one_step_gradient(name, "autodiff", mode, problem, device)
    scale = np.abs(exact_gradient(problem)).max()
    # float64: both agree with the exact gradient to rounding (measured about 1e-15 of the largest component).
    # float32: x itself is rounded to float32, so each agrees with the exact gradient to about 1e-6.
    tolerance = {"float64": 1e-12, "float32": 1e-5}[dtype]
    assert np.abs(manual - autodiff).max() / scale <= tolerance
    assert np.abs(manual - exact_gradient(problem)).max() / scale <= tolerance


def test_numpy_backend_is_the_tutorial_code_at_the_tutorials_settings() -> None:
    """The seed document's loop at n = 2000, 2000 iterations, lr 1e-6 agrees with the reference."""
    backend = runnable_or_skip("numpy", Variant("manual", "eager"), "cpu")
    problem = Problem(n=2000, iterations=2000, learning_rate=1e-6)
    result = backend.prepare(problem, Variant("manual", "eager"), "cpu")()
    assert relative_error(result, reference_fit(problem)) <= TOLERANCE["float64"]
    assert all(math.isfinite(loss) for loss in result.logged_losses)
