"""Backends loaded by name for the tests, skipped with their reason when they cannot run here.

When ``ARRAYBENCH_REQUIRED_BACKENDS`` names a backend (``make test`` names numpy, torch and jax), a test that
would skip for want of that framework fails instead: in CI nothing of them may be skipped silently.
"""

from __future__ import annotations

import os
from functools import cache

import pytest

from backends import BackendUnavailable, load_backend
from backends.contract import Backend, Variant

REQUIRED = {name for name in os.environ.get("ARRAYBENCH_REQUIRED_BACKENDS", "").split(",") if name}


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
        if name in REQUIRED:
            pytest.fail(f"required backend {name} is unavailable: {backend}")
        pytest.skip(backend)
    return backend


def runnable_or_skip(name: str, variant: Variant, device: str) -> Backend:
    """The backend, when ``variant`` can run on ``device`` here; skip with the backend's reason otherwise.

    Only a missing framework fails for a required backend: a variant the backend itself declares unavailable
    here (no GPU, CUDA graphs on the CPU) is a skip with its reason, since CI has no GPU.
    """
    backend = backend_or_skip(name)
    reason = backend.unavailable_reason(variant, device)
    if reason:
        pytest.skip(reason)
    return backend
