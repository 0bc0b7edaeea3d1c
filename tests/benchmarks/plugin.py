"""pytest options, fixtures and table grouping of the pytest-benchmark fits in ``test_fit.py``.

The configurations are the runner's own (:func:`bench.runner.plan` of a :class:`bench.config.Sweep`), every
backend x variant x device x dtype x size, so a pytest-benchmark run and ``python -m bench run`` time the
same things. Frameworks run in this one pytest process, with the thread settings a runner worker gets.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import pytest
from threadpoolctl import threadpool_limits

from backends import registry
from backends.contract import Backend
from bench.cli import UsageError, whole_number, whole_numbers
from bench.config import PRESETS, Configuration, Sweep
from bench.environment import fingerprint
from bench.runner import plan, worker_environment
from bench.worker import pin_threads
from tests.availability import device_marks, runnable_or_skip

DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_ITERATIONS = (100,)
"""Small enough that the default ``pytest --benchmark-only`` takes a few minutes on 2 cores: a dispatch-bound,
a middle and a compute-bound size (NumPy's fit at n = 100,000 costs 10 to 20 ms per iteration there)."""


def argument(parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` (one of the CLI's parsers) as an argparse type, so a bad value is one usage-error line."""

    def checked(text: str) -> object:
        try:
            return parse(text)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return checked


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("arraybench", "arraybench fits under pytest-benchmark (tests/benchmarks/test_fit.py)")
    group.addoption(
        "--fit-sizes",
        type=argument(whole_numbers("a size", 4)),
        default=DEFAULT_SIZES,
        help=f"comma-separated n of the fits (default: {','.join(map(str, DEFAULT_SIZES))})",
    )
    group.addoption(
        "--fit-iterations",
        type=argument(whole_numbers("an iteration count", 1)),
        default=DEFAULT_ITERATIONS,
        help=f"comma-separated iteration counts (default: {','.join(map(str, DEFAULT_ITERATIONS))})",
    )
    group.addoption(
        "--fit-rounds",
        type=argument(lambda t: whole_number(t, "--fit-rounds", 1)),
        default=PRESETS["quick"].repeats,
        help="measured fits per benchmark, after the first call (default: %(default)s, the quick preset's repeats)",
    )
    group.addoption(
        "--fit-threads",
        type=argument(lambda t: whole_number(t, "--fit-threads", 1)),
        default=len(os.sched_getaffinity(0)),
        help="cores and threads given to every framework (default: all usable, %(default)s)",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """When benchmarks are collected, give the frameworks the runner's thread settings: through the
    environment for those a fit loads later (none is imported by collection), through threadpoolctl for the
    BLAS that NumPy has loaded already, and the process's CPU affinity. Any other session is left as it is."""
    if not any("fit_config" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    threads = session.config.getoption("fit_threads")
    os.environ.update(worker_environment(threads))
    pin_threads(threads)
    threadpool_limits(threads)


def configurations(config: pytest.Config) -> list[Configuration]:
    """Every configuration the options ask for, in the runner's order."""
    sizes, iterations = config.getoption("fit_sizes"), config.getoption("fit_iterations")
    sweep = Sweep(
        backends=tuple(registry()),
        points=tuple((n, it) for n in sizes for it in iterations),
        threads=config.getoption("fit_threads"),
    )
    return plan(sweep)


def configuration_id(config: Configuration) -> str:
    """The test id, e.g. ``torch-manual-jit-step-tutorial-cpu-float32-n1000-it100`` (select with ``-k``): the
    configuration's key (:data:`bench.config.KEY_COLUMNS`), sizes prefixed."""
    return "-".join([*map(str, config.variant_key), f"n{config.n}", f"it{config.iterations}"])


def group_name(config: Configuration) -> str:
    """The pytest-benchmark group, one table per device, dtype and size: frameworks side by side."""
    return f"{config.device} {config.dtype} n={config.n:,} iterations={config.iterations:,}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fit_config" in metafunc.fixturenames:
        found = configurations(metafunc.config)
        params = [pytest.param(c, id=configuration_id(c), marks=device_marks(c.backend, c.device)) for c in found]
        metafunc.parametrize("fit_config", params)


@pytest.fixture(scope="session")
def fit_rounds(pytestconfig: pytest.Config) -> int:
    return pytestconfig.getoption("fit_rounds")


@pytest.fixture(scope="session")
def warmed_variants() -> dict[tuple, float]:
    """The :attr:`bench.config.Configuration.variant_key` already warmed up (see bench.worker.warm_up_once)."""
    return {}


@pytest.fixture
def fit_backend(fit_config: Configuration) -> Backend:
    """The configuration's backend; the benchmark is skipped with the reason when it cannot run here (and fails
    instead when ``ARRAYBENCH_REQUIRED_BACKENDS`` names a framework that is missing)."""
    return runnable_or_skip(fit_config.backend, fit_config.variant, fit_config.device)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record arraybench's own fingerprint, which becomes the imported run folder's environment.json."""
    machine_info["arraybench"] = fingerprint(config.getoption("fit_threads"))


@pytest.hookimpl(wrapper=True)
def pytest_benchmark_group_stats(config: pytest.Config, benchmarks: list, group_by: str):
    """Print the tables in numeric order of size (pytest-benchmark sorts group names as text)."""
    groups = yield

    def order(group: tuple) -> tuple:
        infos = [bench.get("extra_info", {}) for bench in group[1]]
        if all("n" in info for info in infos):
            first = infos[0]
            return (0, first["device"], first["dtype"], first["n"], first["iterations"], group[0] or "")
        return (1, "", "", 0, 0, group[0] or "")

    return sorted(groups, key=order)
