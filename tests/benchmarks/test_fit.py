"""The fit of every backend, variant, device, dtype and size, timed by pytest-benchmark.

Each benchmark follows the runner's timing rules (bench/timing.py) and checks its result as the runner does:

1. the variant is warmed up once per session on the worker's tiny problem, per backend, variant (with its
   formulation), device and dtype, as in the worker (bench.worker.warm_up_once);
2. ``prepare`` runs untimed;
3. the first fit is timed on its own with bench.timing.timed_call, as ``first_call_s`` (it compiles), and is
   kept out of pytest-benchmark's statistics;
4. pytest-benchmark then times ``--fit-rounds`` rounds of one synchronised fit each (pedantic mode, no
   warm-up rounds of its own);
5. every round starts from its own initial weights (seed + round, set by pytest-benchmark's untimed ``setup``)
   and is checked against its own exact float64 reference (bench.rows.reference_check): a disagreement fails
   the benchmark, except an ``expected-mismatch`` (within the bound its backend declares), which is an xfail
   with the declaration's reason.

``extra_info`` carries the configuration and the worker's reply (samples, first call, weights, losses,
threads), from which ``python -m bench import-pytest-benchmark`` rebuilds the runner's CSV rows.
With ``--benchmark-disable`` each benchmark runs and checks one fit, untimed: a quick correctness test.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.contract import Backend, FitResult
from backends.reference import reference_fits
from bench.config import Configuration
from bench.rows import reference_check
from bench.stats import summarise
from bench.timing import Measurement, timed_call
from bench.worker import ran_reply, warm_up_once
from tests.benchmarks.plugin import group_name


def test_fit(
    benchmark, fit_config: Configuration, fit_backend: Backend, fit_rounds: int, warmed_variants: dict[tuple, float]
) -> None:
    config, backend = fit_config, fit_backend
    benchmark.group = group_name(config)
    if benchmark.enabled:  # with --benchmark-disable (make test): no warm-up, one untimed fit, checked
        warm_up_once(warmed_variants, backend, config)
    fit = backend.prepare(config.problem, config.variant, config.device)
    if benchmark.enabled:
        first_call_s, _ = timed_call(fit)
    seeds: list[int] = []
    results: list[FitResult] = []

    def reset() -> None:  # untimed, before each round: the round's own initial weights, outputs cleared
        seeds.append(config.seed + len(seeds))
        fit.reset(replace(config.problem, seed=seeds[-1]).initial_weights())

    def timed_fit() -> FitResult:
        results.append(fit())
        return results[-1]

    benchmark.pedantic(timed_fit, setup=reset, rounds=fit_rounds, iterations=1, warmup_rounds=0)
    starts = [replace(config.problem, seed=seed).initial_weights() for seed in seeds]
    checks = [
        reference_check(config, result, reference)
        for result, reference in zip(results, reference_fits(config.problem, starts), strict=True)
    ]
    # the worst round's: an unexpected disagreement before an expected one
    worst = {"ok": 0, "expected-mismatch": 1}
    status, reason, rel_err, loss_err = max(checks, key=lambda check: worst.get(check[0], 2))
    if benchmark.enabled:
        samples_s = list(benchmark.stats.stats.data)
        benchmark.extra_info.update(
            {
                **config.to_dict(),
                **ran_reply(backend, Measurement(first_call_s, samples_s, results), config.iterations, seeds).to_dict(),
                "us_per_iter": summarise(samples_s, config.iterations)["us_per_iter"],
                "ref_rel_err": rel_err,
                "loss_rel_err": loss_err,
                "status": status,
            }
        )
    if status == "expected-mismatch":
        pytest.xfail(reason)  # declared by the backend (backends.contract.Expected), as the runner reads it
    assert status == "ok", reason
