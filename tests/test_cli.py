"""The command line: what it accepts and rejects, and what a tiny real sweep writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bench import results
from bench.cli import main
from bench.config import Configuration
from bench.stats import summarise
from bench.timing import affordable_iterations
from bench.worker import Worker
from tests.sweeps import NUMPY_FLOAT64


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--backends", "numpy,tensorflow", "unknown backend tensorflow; choose from numpy, torch, jax"),
        ("--grads", "symbolic", "unknown grad symbolic; choose from manual, autodiff"),
        ("--modes", "aot", "unknown mode aot"),
        ("--devices", "tpu", "unknown device tpu; choose from cpu, gpu"),
        ("--dtypes", "float16", "unknown dtype float16"),
        ("--sizes", "1000,0", "a size must be a whole number of at least 4, got '0'"),
        ("--sizes", "-5", "a size must be a whole number"),
        ("--sizes", "1.5", "a size must be a whole number"),
        ("--iterations", "ten", "an iteration count must be a whole number of at least 1, got 'ten'"),
        ("--repeats", "0", "repeats must be a whole number of at least 1"),
        ("--learning-rate", "-1e-6", "the learning rate must be a positive number"),
        ("--learning-rate", "fast", "the learning rate must be a positive number"),
        ("--preset", "huge", "invalid choice: 'huge'"),
    ],
)
def test_bad_options_get_one_line_and_exit_2(tmp_path: Path, capsys, option: str, value: str, message: str) -> None:
    out = tmp_path / "run"
    assert main(["run", f"{option}={value}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_sizes_accept_readable_spellings(tmp_path: Path) -> None:
    from bench.cli import build_parser, sweep_from

    args = build_parser().parse_args(["run", "--sizes", "1e3,10_000", "--iterations", "200"])
    assert sweep_from(args).points == ((1000, 200), (10_000, 200))


@pytest.mark.slow
def test_tiny_sweep_writes_every_file_with_the_documented_columns(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ARRAYBENCH_BACKENDS", "tests.missing_backend:MissingFramework")
    out = tmp_path / "run"
    argv = [
        "run",
        "--backends",
        "numpy,jax,missing",
        "--grads",
        "manual",
        "--modes",
        "eager,jit-loop",
        "--formulations",
        "tutorial",
        "--devices",
        "cpu,gpu",
        "--dtypes",
        "float32",
        "--sizes",
        "100,300",
        "--iterations",
        "100,200",
        "--repeats",
        "2",
        "--budget",
        "100",
        "--out",
        str(out),
    ]
    status = main(argv)
    printed = capsys.readouterr().out
    assert status == 0, printed

    summary = results.read_csv(out, "summary")
    raw = results.read_csv(out, "raw")
    losses = results.read_csv(out, "losses")
    assert list(summary.columns) == results.SUMMARY_COLUMNS
    assert list(raw.columns) == results.RAW_COLUMNS
    assert list(losses.columns) == results.LOSS_COLUMNS

    # numpy manual/eager and missing manual/eager (declared on the CPU only), jax manual/eager and manual/jit-loop
    # (declared on both devices): 6 (variant, device) x 4 (n, iterations) points; the CPU runs of numpy and jax are
    # ok, everything else skipped.
    assert len(summary) == 6 * 4
    ok = summary[summary["status"] == "ok"]
    assert len(ok) == 3 * 4 and set(ok["device"]) == {"cpu"}
    assert (ok["ref_ok"]).all() and (ok["ref_rel_err"] <= results.TOLERANCE["float32"]).all()
    # 2 worker processes (the preset's) x 2 repeats; each repeat from its own seed, checked on its own.
    assert (ok["repeats"] == 4).all() and (ok["processes"] == 2).all() and len(raw) == 4 * len(ok)
    assert ok["process_cv"].notna().all() and ok["cv"].notna().all() and (ok["check_power"] > 1).all()
    assert sorted(raw.groupby("process").size()) == [2 * len(ok)] * 2 and (raw["status"] == "ok").all()
    assert (raw.groupby(results.KEY_COLUMNS)["start_seed"].apply(sorted).map(tuple) == (0, 1, 2, 3)).all()
    assert len(losses) == 3 * 2 * (1 + 2)  # 1 logged loss at 100 iterations, 2 at 200
    missing = summary[summary["backend"] == "missing"]
    assert (missing["status"] == "skipped").all()
    assert missing["reason"].str.contains("not installed").all()
    gpu = summary[(summary["device"] == "gpu") & (summary["backend"] != "missing")]
    assert (gpu["status"] == "skipped").all() and gpu["reason"].str.len().gt(10).all()
    assert summary["run_id"].nunique() == 1 and summary["host"].notna().all()

    environment = json.loads((out / "environment.json").read_text())
    for key in ("cpu_model", "logical_cores", "memory_gib", "python", "packages", "git_commit", "workers"):
        assert key in environment
    [load] = environment["load_average"]
    assert len(load["before"]) == len(load["after"]) == 3  # 1-, 5- and 15-minute averages
    assert "numpy/cpu" in environment["workers"]
    assert "status: 12 ok, 12 skipped" in printed
    assert environment["schema_version"] == results.SCHEMA_VERSION
    assert json.loads((out / "sweep.json").read_text())["schema_version"] == results.SCHEMA_VERSION
    assert printed.strip().splitlines()[-1] == f"run folder: {out}"


def test_summary_statistics_on_known_samples() -> None:
    stats = summarise([1.0, 2.0, 3.0, 4.0, 10.0], iterations=100)
    assert stats["median_s"] == 3.0
    assert stats["min_s"] == 1.0
    assert stats["mean_s"] == 4.0
    assert stats["std_s"] == pytest.approx(pd.Series([1, 2, 3, 4, 10]).std())
    assert stats["iqr_s"] == 2.0
    assert stats["cv"] == pytest.approx(stats["std_s"] / 4.0)
    assert stats["us_per_iter"] == pytest.approx(3.0 / 100 * 1e6)
    one = summarise([0.5], iterations=1)
    assert math.isnan(one["std_s"]) and math.isnan(one["iqr_s"]) and math.isnan(one["cv"])  # no spread in one
    assert math.isnan(stats["process_cv"]) and stats["processes"] == 1


def test_process_cv_is_the_spread_of_the_process_medians_and_cv_the_spread_within() -> None:
    stats = summarise([1.0, 1.2, 1.1, 2.0, 2.2, 2.1], iterations=1, processes=[0, 0, 0, 1, 1, 1])
    assert stats["processes"] == 2 and stats["repeats"] == 6 and stats["median_s"] == pytest.approx(1.6)
    assert stats["process_cv"] == pytest.approx(pd.Series([1.1, 2.1]).std() / 1.6)
    assert stats["cv"] == pytest.approx(0.1 / stats["mean_s"])  # each process: std 0.1
    assert math.isnan(summarise([1.0, 2.0], iterations=1, processes=[0, 1])["cv"])  # one sample a process


@pytest.mark.parametrize(
    ("iterations", "per_iteration_s", "fit_budget_s", "expected"),
    [
        (2000, 0.001, 2.0, 2000),  # exactly on budget: untouched
        (2000, 0.005, 2.0, 400),  # 2 s / 5 ms = 400, a multiple of the log interval
        (2000, 0.007, 2.0, 200),  # 285 rounded down to whole log intervals
        (2000, 0.1, 2.0, 100),  # never below one log interval
        (20, 1.0, 2.0, 20),  # fewer iterations than one log interval: untouched
        (2000, 1.0, None, 2000),  # no budget
    ],
)
def test_affordable_iterations_on_known_numbers(
    iterations: int, per_iteration_s: float, fit_budget_s: float | None, expected: int
) -> None:
    assert affordable_iterations(iterations, per_iteration_s, fit_budget_s, log_interval=100) == expected


def test_the_fit_estimate_is_the_tiny_fit_or_a_smaller_size_scaled_up() -> None:
    worker = Worker()
    config = Configuration("numpy", "manual", "eager", "cpu", "float64", 100_000, 200, None, 0, 1)
    worker.per_iteration_s[config.variant_key] = 1e-5
    assert worker.estimated_per_iteration_s(config) == (1e-5, "a tiny fit took 0.01 ms per iteration")
    worker.timed_s[config.variant_key] = {1_000: 1e-4, 10_000: 1.5e-3, 1_000_000: 1.0}
    estimate, source = worker.estimated_per_iteration_s(config)  # the largest smaller size, scaled up
    assert estimate == pytest.approx(1.5e-2) and source == "1.5 ms per iteration at n=10000, scaled to n=100000"
    worker.timed_s[config.variant_key] = {10_000: 1e-8}  # the tiny fit's floor is larger
    assert worker.estimated_per_iteration_s(config)[0] == 1e-5


def test_a_fit_over_the_fit_budget_is_timed_over_fewer_iterations(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "run",
        *NUMPY_FLOAT64,
        "--devices",
        "cpu",
        "--sizes",
        "1000",
        "--iterations",
        "1000",
        "--repeats",
        "2",
        "--fit-budget",
        "1e-6",
        "--no-probe",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    row = results.read_csv(out, "summary").iloc[0]
    assert row["status"] == "ok" and row["iterations"] == 1000 and row["iterations_timed"] == 100
    assert "timed over 100 of 1000 iterations by the 1e-06 s per-fit budget" in row["note"]
    assert row["us_per_iter"] == pytest.approx(row["median_s"] / 100 * 1e6)
    losses = results.read_csv(out, "losses")
    assert list(losses["iteration"]) == [99] and losses["loss"].iloc[0] == pytest.approx(losses["reference_loss"][0])


def test_list_names_every_variant_and_why_it_cannot_run(capsys) -> None:
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    assert "numpy" in printed and "manual/eager on cpu: can run" in printed
    assert "on gpu:" in printed


def test_env_prints_the_fingerprint(capsys) -> None:
    assert main(["env"]) == 0
    fingerprint = json.loads(capsys.readouterr().out)
    assert fingerprint["logical_cores"] >= 1 and "numpy" in fingerprint["packages"]
