"""What the tests may skip here: the one place that decides "skip", or "fail, because what is missing is required".

Two things can be required, so that a broken setup cannot pass by skipping:

- a framework, named in ``ARRAYBENCH_REQUIRED_BACKENDS`` (``make test`` names numpy, torch, jax and numba): a
  test that would skip because that framework cannot be loaded fails instead;
- a GPU, with ``ARRAYBENCH_REQUIRE_GPU=1`` (set by ``python -m bench.gpu_check``): a test marked ``gpu`` that
  would skip, for whatever reason, fails instead.

A test marked ``gpu`` needs a CUDA GPU: it is skipped (by a mark added at collection) where ``nvidia-smi``
lists none (:func:`gpu_here`), and ``pytest -m gpu`` selects exactly these tests. This module is loaded as a
pytest plugin (the project's conftest.py) for these hooks; tests import its functions.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from typing import NoReturn

import pytest

from backends import BUILTIN, BackendUnavailable, backend_class, load_backend
from backends.contract import Backend, Variant
from bench.environment import gpus

REQUIRED = {name for name in os.environ.get("ARRAYBENCH_REQUIRED_BACKENDS", "").split(",") if name}
REQUIRE_GPU = os.environ.get("ARRAYBENCH_REQUIRE_GPU") == "1"
GPU_BACKENDS = ("torch", "jax", "cupy")
"""The frameworks that have a GPU device: their ``gpu`` cases are marked ``gpu`` (:func:`device_marks`)."""


@cache
def gpu_here() -> bool:
    """Whether this machine has an NVIDIA GPU (``nvidia-smi`` lists one: the same fact as environment.json's)."""
    return bool(gpus())


def cupy_installed() -> bool:
    """Whether CuPy is installed (found, not imported: importing it needs CUDA)."""
    return importlib.util.find_spec("cupy") is not None


def skip_or_fail(reason: str, *, required: bool) -> NoReturn:
    """Skip with ``reason``, or fail with it when what is missing is ``required`` here."""
    if required:
        pytest.fail(f"required here, but cannot run: {reason}")
    pytest.skip(reason)


@cache
def _load(name: str) -> Backend | str:
    try:
        return load_backend(name)
    except BackendUnavailable as error:
        return str(error)


def backend_or_skip(name: str) -> Backend:
    """The backend ``name``; skip (or fail, if it is required) with the reason when it cannot be loaded."""
    backend = _load(name)
    if isinstance(backend, str):
        skip_or_fail(backend, required=name in REQUIRED)
    return backend


def declared_cases(names=tuple(BUILTIN), keep=lambda name, variant, device: True) -> list:
    """A ``pytest.param(name, variant, device)`` (id ``name:variant:device``) for every variant of the backends
    ``names`` on every device it is declared for (the declaration, never a list of exceptions here), where
    ``keep`` says so; the GPU frameworks' ``gpu`` cases are marked ``gpu`` (:func:`device_marks`)."""
    return [
        pytest.param(name, variant, device, id=f"{name}:{variant}:{device}", marks=device_marks(name, device))
        for name in names
        for variant in backend_class(name).variants
        for device in variant.devices
        if keep(name, variant, device)
    ]


def runnable_or_skip(name: str, variant: Variant, device: str, *, declared: bool = False) -> Backend:
    """The backend, when ``variant`` can run on ``device`` here; skip with the backend's reason otherwise.

    A missing framework fails for a required backend. A variant the backend itself declares unavailable here
    (no GPU, CUDA graphs on the CPU) is a skip, unless ``declared``: the caller's cases are those the variant
    exists for on ``device`` (tests/test_gpu.py's), so for a required backend that is a failure too. (A GPU
    test's skip fails under ``ARRAYBENCH_REQUIRE_GPU`` by its marker.)
    """
    backend = backend_or_skip(name)
    reason = backend.unavailable_reason(variant, device)
    if reason:
        skip_or_fail(reason, required=declared and name in REQUIRED)
    return backend


def device_marks(name: str, device: str) -> list[pytest.MarkDecorator]:
    """``[pytest.mark.gpu]`` for a case of a GPU framework (:data:`GPU_BACKENDS`) on the ``gpu`` device."""
    return [pytest.mark.gpu] if device == "gpu" and name in GPU_BACKENDS else []


# --- the hooks ------------------------------------------------------------------------------------------------


def _skip_fails_where_a_gpu_is_required(item: pytest.Item):
    try:
        return (yield)
    except pytest.skip.Exception as skipped:
        if REQUIRE_GPU and item.get_closest_marker("gpu"):
            pytest.fail(f"a GPU test skipped where a GPU is required: {skipped.msg}")
        raise


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Where there is no GPU, every ``gpu`` test gets a skip mark (which a required GPU turns into a failure)."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_tests and not gpu_here():
        for item in gpu_tests:
            item.add_marker(pytest.mark.skip(reason="no NVIDIA GPU here (nvidia-smi lists none)"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Under ``ARRAYBENCH_REQUIRE_GPU=1`` a ``gpu`` test whose setup (skip marks, fixtures) skips fails instead."""
    return (yield from _skip_fails_where_a_gpu_is_required(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Under ``ARRAYBENCH_REQUIRE_GPU=1``, a ``gpu`` test that skips in its body fails instead."""
    return (yield from _skip_fails_where_a_gpu_is_required(item))
