"""Expected outcomes as data: a declared mismatch within its bound is ``expected-mismatch`` and leaves the exit
status 0; beyond it, or undeclared, it is ``mismatch``. One table of exit codes, and ``make bench`` exits with the
run's status after plotting and reporting what finished."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backends import BUILTIN, backend_class
from backends.contract import Expected, FitResult, Variant
from backends.reference import reference_fit
from bench import exitcodes, results
from bench.config import Configuration
from bench.rows import reference_check
from tests.availability import backend_or_skip

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(
    params=[
        pytest.param((name, variant, expected), id=f"{name}:{variant}:n>={expected.n_from}")
        for name in BUILTIN
        for variant in backend_class(name).variants
        for expected in variant.expected
    ]
)
def declared_expectation(request) -> tuple[str, Variant, Expected]:
    """Every expected mismatch a built-in backend declares, with its backend and variant."""
    return request.param


def configuration(name: str, variant: Variant, expected: Expected, **changes) -> Configuration:
    """A configuration inside the expectation's scope (at its smallest n), unless ``changes`` move it out."""
    values = dict(device=expected.device or variant.devices[0], dtype=expected.dtype or "float32", n=expected.n_from)
    values |= changes
    return Configuration(
        name,
        variant.grad,
        variant.mode,
        iterations=200,
        learning_rate=None,
        seed=0,
        threads=1,
        formulation=variant.formulation,
        **values,
    )


def off_by(reference: FitResult, error: float) -> FitResult:
    """The reference with its first weight and every loss moved by ``error`` (relative, as the check measures)."""
    scale = max(abs(w) for w in reference.weights)
    weights = (reference.weights[0] + error * scale, *reference.weights[1:])
    return FitResult(weights, reference.final_loss * (1 + error), [v * (1 + error) for v in reference.logged_losses])  # type: ignore[arg-type]


def test_within_the_declared_bound_is_an_expected_mismatch(declared_expectation) -> None:
    name, variant, expected = declared_expectation
    config = configuration(name, variant, expected)
    reference = reference_fit(config.problem)
    status, reason, _, _ = reference_check(config, off_by(reference, expected.at_most / 2), reference)
    assert status == "expected-mismatch" and expected.why in reason
    assert reference_check(config, off_by(reference, results.TOLERANCE[config.dtype] / 2), reference)[0] == "ok"


def test_beyond_the_declared_bound_is_a_mismatch(declared_expectation) -> None:
    name, variant, expected = declared_expectation
    config = configuration(name, variant, expected)
    reference = reference_fit(config.problem)
    status, reason, _, _ = reference_check(config, off_by(reference, expected.at_most * 2), reference)
    assert status == "mismatch" and f"beyond the declared {expected.at_most:g}" in reason


def test_outside_the_declared_scope_a_disagreement_is_a_mismatch(declared_expectation) -> None:
    """In the other dtype, and below the smallest n any of the variant's expectations starts from."""
    name, variant, expected = declared_expectation
    other_dtype = "float64" if (expected.dtype or "float32") == "float32" else "float32"
    outside = [configuration(name, variant, expected, dtype=other_dtype)]
    lowest = min(e.n_from for e in variant.expected)
    if lowest > 4:
        outside.append(configuration(name, variant, expected, n=lowest - 1))
    for config in outside:
        assert variant.expectation(config.device, config.dtype, config.n) is None
        reference = reference_fit(config.problem)
        status, _, _, _ = reference_check(config, off_by(reference, expected.at_most / 2), reference)
        assert status == "mismatch"


@pytest.mark.slow
def test_numbas_declared_bound_holds_for_what_it_computes() -> None:
    """The real fits at 10^5 and 10^6: plain float32 sums miss the tolerance, within the declared bound."""
    backend = backend_or_skip("numba")
    for mode in ("jit-loop", "jit-loop-parallel"):
        for n in (100_000, 1_000_000):
            config = Configuration("numba", "manual", mode, "cpu", "float32", n, 20, None, 0, 1)
            result = backend.prepare(config.problem, config.variant, "cpu")()
            status, reason, _, _ = reference_check(config, result, reference_fit(config.problem))
            assert status == "expected-mismatch", reason


# --- exit codes --------------------------------------------------------------------------------------------------


@pytest.fixture(
    params=[
        ({"ok"}, 0),
        ({"ok", "skipped", "expected-mismatch"}, 0),
        (set(), 0),
        *(({"ok", status}, 1) for status in results.STATUSES if status not in exitcodes.AS_EXPECTED),
    ],
    ids=lambda p: ",".join(sorted(p[0])) or "nothing" if isinstance(p, tuple) else str(p),
)
def statuses_and_code(request) -> tuple[set[str], int]:
    return request.param


def test_the_exit_status_of_a_run(statuses_and_code) -> None:
    statuses, code = statuses_and_code
    assert exitcodes.of_statuses(statuses) == code


def test_every_status_is_either_as_expected_or_not() -> None:
    assert set(exitcodes.AS_EXPECTED) <= set(results.STATUSES)
    assert set(exitcodes.TABLE) == {0, 1, 2, 3, 130}


# --- make bench --------------------------------------------------------------------------------------------------

TINY = "--backends faulty --devices cpu --dtypes float64 --repeats 2 --budget 100 --fit-budget none --no-probe"


@pytest.fixture(params=[("16", 0), ("16,6", 1)], ids=["sound", "segfault"])
def tiny_sweep(request) -> tuple[str, int]:
    """Sizes for the faulty backend (n = 6 segfaults in the timed fit) and the exit status of the recipe."""
    return request.param


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_bench_plots_reports_and_exits_with_the_runs_status(tmp_path: Path, tiny_sweep) -> None:
    sizes, code = tiny_sweep
    out = tmp_path / "run"
    installed = tmp_path / "installed"  # stands for the venv's stamp; -o: never rebuilt
    command = [
        "make",
        "-s",
        "-o",
        str(installed),
        f"INSTALLED={installed}",
        f"PY={sys.executable}",
        "bench",
        f"BENCH_OUT={out}",
        f"BENCH_OPTIONS={TINY} --sizes {sizes} --iterations 100",
    ]
    env = {**os.environ, "ARRAYBENCH_BACKENDS": "tests.faulty_backend:FaultyBackend", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    # make itself exits 2 whenever a recipe fails, and names the recipe's status ("Error 1"): the run's
    assert (done.returncode, f"Error {code}" in done.stderr) == ((0, False) if code == 0 else (2, True)), done.stderr
    summary = results.read_csv(out)
    assert set(summary["n"]) == {int(n) for n in sizes.split(",")}
    assert (out / "time_per_iteration.png").is_file() and (out / "report.md").stat().st_size > 0
    assert f"report: {out}/report.md" in done.stdout
