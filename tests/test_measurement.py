"""What a configuration's numbers rest on: enough samples, several processes, every repeat checked, a check
that says how much it can see, explicit requests run as asked.

Through the real command line (tiny sweeps, small n) where the behaviour spans runner and worker processes;
unit tests on known numbers elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from backends.contract import Fit, FitResult, Problem, Variant
from backends.reference import one_iteration_short, reference_fit, reference_fits, relative_error
from bench import results
from bench.cli import build_parser, main, sweep_from
from bench.config import PRESETS, Configuration
from bench.protocol import Reply, Request
from bench.rows import check_power, rows_for
from bench.timing import measure
from bench.worker import Worker
from tests.availability import runnable_or_skip
from tests.sweeps import NUMPY_AND_JAX_LOOPS


def config_of(n: int = 2000, iterations: int = 2000, dtype: str = "float64") -> Configuration:
    return Configuration("numpy", "manual", "eager", "cpu", dtype, n, iterations, None, 0, 1)


def reply_for(config: Configuration, seeds: list[int], results_of: list[FitResult] | None = None) -> Reply:
    """A worker's ``ran`` reply whose repeats return ``results_of`` (default: each seed's exact reference)."""
    problem = config.problem
    if results_of is None:
        results_of = reference_fits(problem, [replace(problem, seed=s).initial_weights() for s in seeds])
    return Reply(
        id=1,
        status="ran",
        backend_version="test",
        first_call_s=0.5,
        samples_s=(0.1,) * len(seeds),
        iterations_timed=config.iterations,
        seeds=tuple(seeds),
        weights=tuple(r.weights for r in results_of),
        final_losses=tuple(r.final_loss for r in results_of),
        logged_losses=tuple(tuple(r.logged_losses) for r in results_of),
    )


# --- every repeat checked against its own reference ---------------------------------------------------------


def test_reference_fits_from_several_starts_agree_with_one_at_a_time() -> None:
    problem = Problem(n=1000, iterations=300)
    starts = [replace(problem, seed=s) for s in (0, 1, 2)]
    together = reference_fits(problem, [p.initial_weights() for p in starts])
    for alone, batch in zip((reference_fit(p) for p in starts), together, strict=True):
        assert relative_error(batch, alone) < 1e-14
        assert batch.logged_losses == pytest.approx(alone.logged_losses, rel=1e-13)


def test_a_repeat_that_returns_an_earlier_repeats_result_is_a_mismatch() -> None:
    config = config_of(n=1000, iterations=500)
    seeds = [0, 1, 2]
    good = reply_for(config, seeds)
    assert rows_for(config, [good], "run", "host")["summary"][0]["status"] == "ok"
    stale = reply_for(config, seeds, [reference_fit(config.problem)] * 3)  # repeats 2 and 3 hand back repeat 1's
    rows = rows_for(config, [stale], "run", "host")
    summary = rows["summary"][0]
    assert summary["status"] == "mismatch" and not summary["ref_ok"]
    assert "(repeat 2 of process 1, from seed 1; 2 of 3)" in summary["reason"]
    assert [r["status"] for r in rows["raw"]] == ["ok", "mismatch", "mismatch"]
    assert [r["start_seed"] for r in rows["raw"]] == seeds


def test_the_replies_of_two_processes_make_one_configuration() -> None:
    config = config_of(n=1000, iterations=200)
    first, second = reply_for(config, [0, 1]), reply_for(config, [2, 3])
    second = replace(second, samples_s=(0.2, 0.2))
    rows = rows_for(config, [first, second], "run", "host")
    summary = rows["summary"][0]
    assert summary["status"] == "ok" and summary["repeats"] == 4 and summary["processes"] == 2
    assert summary["process_cv"] == pytest.approx(np.std([0.1, 0.2], ddof=1) / 0.15)
    assert summary["cv"] == 0.0  # no spread within either process
    assert [(r["process"], r["repeat"], r["start_seed"]) for r in rows["raw"]] == [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2),
        (1, 1, 3),
    ]
    timeout = Reply(id=2, status="timeout", reason="no result")
    failed = rows_for(config, [first, timeout], "run", "host")["summary"][0]
    assert failed["status"] == "timeout" and failed["reason"] == "process 2 of 2: no result"


def test_measure_resets_each_repeat_to_its_own_weights_outside_the_timed_call() -> None:
    calls: list[str] = []
    fit = Fit(
        lambda start: (calls.append(f"run {start}"), FitResult((start,) * 4, 0.0, []))[1],
        0.0,
        place=lambda w: calls.append(f"place {w}") or w,
        clear=lambda: calls.append("clear"),
    )
    calls.clear()
    measurement = measure(fit, lambda i: 10 + i, repeats=3)
    assert calls == [step for w in (10, 10, 11, 12) for step in ("clear", f"place {w}", f"run {w}")]
    assert [r.weights[0] for r in measurement.results] == [10, 11, 12]


def test_no_budget_cuts_the_repeats_below_the_minimum() -> None:
    fit = Fit(lambda _: FitResult((0.0,) * 4, 0.0, []), np.zeros(4))
    cut = measure(fit, lambda i: np.zeros(4), repeats=7, min_repeats=4, budget_s=1e-12)
    assert len(cut.samples_s) == 4 and "repeats cut from 7 to 4" in cut.note
    assert len(measure(fit, lambda i: np.zeros(4), repeats=7, min_repeats=1, budget_s=1e-12).samples_s) == 1


def test_numba_clears_its_logged_losses_before_each_call(monkeypatch) -> None:
    """A kernel that did nothing on its second call returns NaN losses, not the first call's."""
    backend = runnable_or_skip("numba", Variant("manual", "jit-loop"), "cpu")
    real = backend.kernels.tutorial_serial
    calls = []

    def once(*args):
        calls.append(1)
        return real(*args) if len(calls) == 1 else (args[2].copy(), math.nan)

    monkeypatch.setattr(backend.kernels, "tutorial_serial", once)
    problem = Problem(n=100, iterations=200)
    fit = backend.prepare(problem, Variant("manual", "jit-loop"), "cpu")
    assert fit().logged_losses == pytest.approx(reference_fit(problem).logged_losses)
    fit.reset(problem.initial_weights())
    assert all(math.isnan(loss) for loss in fit().logged_losses)


# --- the check's power -------------------------------------------------------------------------------------


def test_one_missing_iteration_moves_the_weights_by_one_step() -> None:
    problem = Problem(n=2000, iterations=2000)
    reference, short = one_iteration_short(problem)
    assert short.weights == pytest.approx(reference_fit(replace(problem, iterations=1999)).weights, rel=1e-12)
    assert relative_error(short, reference) == pytest.approx(3.9e-5, rel=0.01)  # the figure


@pytest.mark.parametrize(
    ("iterations", "dtype", "sees"),
    [(2000, "float32", True), (5000, "float32", False), (10_000, "float64", False), (2000, "float64", True)],
)
def test_check_power_says_whether_a_missing_iteration_would_show(iterations: int, dtype: str, sees: bool) -> None:
    assert (check_power(config_of(iterations=iterations, dtype=dtype)) >= 1) == sees


def test_a_configuration_whose_check_cannot_see_a_missing_iteration_is_marked() -> None:
    config = config_of(n=2000, iterations=10_000)
    summary = rows_for(config, [reply_for(config, [0, 1])], "run", "host")["summary"][0]
    assert summary["status"] == "ok" and summary["check_power"] < 1
    assert "the check cannot see a missing iteration here" in summary["note"]
    seen = config_of(n=2000, iterations=2000)
    summary = rows_for(seen, [reply_for(seen, [0, 1])], "run", "host")["summary"][0]
    assert summary["check_power"] > 1 and "missing iteration" not in summary["note"]


# --- explicit requests, budgets and presets ----------------------------------------------------------------


def sweep_of(*argv: str):
    return sweep_from(build_parser().parse_args(["run", *argv]))


def test_explicit_sizes_or_iterations_run_as_asked_unless_a_fit_budget_is_given() -> None:
    assert sweep_of().fit_budget_s == PRESETS["quick"].fit_budget_s
    assert sweep_of("--preset", "full").fit_budget_s == PRESETS["full"].fit_budget_s
    assert sweep_of("--iterations", "345").fit_budget_s is None
    assert sweep_of("--sizes", "1000").fit_budget_s is None
    assert sweep_of("--sizes", "1000", "--iterations", "345", "--fit-budget", "2").fit_budget_s == 2.0


def test_the_worker_does_not_shorten_a_loop_without_a_fit_budget_and_keeps_a_given_length() -> None:
    worker = Worker()
    config = config_of(n=1000, iterations=2000)
    worker.per_iteration_s[config.variant_key] = 1.0  # one second an iteration: far over any budget
    request = Request(1, config, repeats=5, budget_s=1.0, min_repeats=4)
    assert worker.timed_problem(config, request)[0].iterations == 2000  # no fit budget
    problem, (note,) = worker.timed_problem(config, replace(request, fit_budget_s=10.0))
    assert problem.iterations == 100 and "by the 0.25 s per-fit budget" in note  # 1 s over 4 repeats
    assert "still exceeds it: loops are not cut below one log interval" in note
    later = worker.timed_problem(config, replace(request, fit_budget_s=10.0, iterations_timed=300))[0]
    assert later.iterations == 300  # a later process times the loop the first one chose


@pytest.mark.parametrize("name", ["quick", "full"])
def test_the_presets_give_enough_samples(name: str) -> None:
    preset = PRESETS[name]
    assert preset.processes >= 2 and preset.min_repeats >= {"quick": 4, "full": 5}[name]
    assert preset.processes * preset.min_repeats >= 8  # what a verdict of compare needs


@pytest.mark.slow
def test_interleaved_rounds_through_the_command_line(tmp_path: Path, capsys) -> None:
    """Two backends, two processes: A B A B, every sample in raw.csv with its process, the loop the same in
    both; a budget too small for any repeat still leaves the preset's minimum in each process."""
    out = tmp_path / "run"
    argv = [
        "run",
        *NUMPY_AND_JAX_LOOPS,
        "--formulations",
        "tutorial",
        "--devices",
        "cpu",
        "--dtypes",
        "float64",
        "--no-probe",
        "--sizes",
        "200",
        "--iterations",
        "1000",
        "--repeats",
        "6",
        "--budget",
        "1e-9",
        "--fit-budget",
        "1e-9",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    order = [line.split("] ", 1)[1].split()[0] for line in printed.splitlines() if line.startswith("[")]
    assert order == ["numpy", "jax", "jax", "numpy", "jax", "jax"], printed
    summary, raw = results.read_csv(out), results.read_csv(out, "raw")
    minimum = PRESETS["quick"].min_repeats
    assert (summary["repeats"] == 2 * minimum).all() and (summary["processes"] == 2).all()
    assert (summary["iterations_timed"] == 100).all() and (raw["iterations_timed"] == 100).all()
    assert (raw.groupby([*results.KEY_COLUMNS, "process"]).size() == minimum).all()
    assert summary["process_cv"].notna().all()
