"""One module per framework, all implementing the contract in :mod:`backends.contract`.

Backends are found by name and imported lazily: listing them imports no framework. Besides the built-in
table below, a user adds a framework without editing arraybench, through either

- the entry-point group ``arraybench.backends`` (``name = "package.module:BackendClass"`` in their
  package's metadata), or
- the environment variable ``ARRAYBENCH_BACKENDS=module:Class[,module:Class...]`` for a module on the
  Python path; the backend's ``name`` attribute is its name.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from backends.contract import Backend, BackendUnavailable

__all__ = ["BUILTIN", "Backend", "BackendUnavailable", "RegistryError", "backend_class", "load_backend", "registry"]

BUILTIN = {
    "numpy": "backends.numpy_backend:NumpyBackend",
    "torch": "backends.torch_backend:TorchBackend",
    "jax": "backends.jax_backend:JaxBackend",
    "numba": "backends.numba_backend:NumbaBackend",
    "cupy": "backends.cupy_backend:CupyBackend",
}
"""Backend name -> ``module:Class`` of the built-in frameworks, in report order."""

ENTRY_POINT_GROUP = "arraybench.backends"
ENV_VARIABLE = "ARRAYBENCH_BACKENDS"


class RegistryError(ValueError):
    """A backend named in an entry point or in ``ARRAYBENCH_BACKENDS`` that cannot be imported or is no backend."""


def _import(target: str, where: str) -> type[Backend]:
    """The backend class at ``module:Class``; ``where`` says who named it, for the error message."""
    module_name, _, attribute = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise RegistryError(f"{where}: cannot import {target} ({error})") from error
    if not (isinstance(found, type) and issubclass(found, Backend)):
        raise RegistryError(f"{where}: {target} is not a subclass of backends.contract.Backend")
    return found


def registry() -> dict[str, str]:
    """Every known backend name -> ``module:Class``: built-in, then entry points, then the environment."""
    table = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        table[entry.name] = entry.value
    for target in filter(None, (t.strip() for t in os.environ.get(ENV_VARIABLE, "").split(","))):
        if ":" not in target:
            raise RegistryError(f"{ENV_VARIABLE} entries must look like module:Class, got {target!r}")
        table[_import(target, ENV_VARIABLE).name] = target
    return table


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``, without importing its framework. ``KeyError`` for an unknown name."""
    return _import(registry()[name], f"backend {name}")


def load_backend(name: str) -> Backend:
    """An instance of backend ``name``; raises :class:`BackendUnavailable` with the reason if it cannot run."""
    return backend_class(name)()
