"""``python -m bench compare`` on synthetic run folders with known answers: itself, one framework 1.5x slower,
another machine, too few samples, small and noisy changes, configurations in one run only or broken."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import cli, results
from bench.environment import PROJECT_ROOT
from tests.sweeps import bench_command
from tests.synthetic import write_configuration

ITERATIONS = 100
SAMPLES = 10
"""Samples per configuration: two worker processes of five repeats, the least that gets a verdict is 8."""
NOISE = np.random.default_rng(0).permutation(np.linspace(0.98, 1.02, SAMPLES))
"""+-2 % around 1 in a shuffled order, as a quiet machine gives."""
CONFIGURATIONS = [
    (backend, grad, mode, n)
    for backend, grad, mode in (("numpy", "manual", "eager"), ("jax", "manual", "jit-loop"))
    for n in (1_000, 10_000, 100_000, 1_000_000)
]
"""Eight configurations, four per framework."""
ENVIRONMENT = {
    "run_id": "synthetic",
    "host": "alpha",
    "cpu_model": "Example CPU 9000",
    "logical_cores": 2,
    "gpus": [],
    "packages": {"numpy": "2.4.6", "jax": "0.10.2"},
    "threads_requested": 2,
    "probe": {"seconds": 3.0},
}


def per_fit_seconds(backend: str, n: int) -> float:
    overhead_us, per_element_ns = {"numpy": (5.0, 2.0), "jax": (50.0, 0.5)}[backend]
    return (overhead_us + n * per_element_ns / 1e3) * ITERATIONS / 1e6


def write_run(
    folder: Path,
    *,
    scale: dict[str, float] | None = None,
    noise: np.ndarray = NOISE,
    statuses: dict[tuple, str] | None = None,
    only: list[tuple] | None = None,
    environment: dict | None = ENVIRONMENT,
) -> Path:
    """A run folder written with the project's CSV writer: ``scale`` multiplies a framework's seconds,
    ``statuses`` overrides ``ok`` for some configurations, ``only`` keeps some, ``environment`` (None: none)."""
    folder.mkdir(parents=True)
    for backend, grad, mode, n in only or CONFIGURATIONS:
        status = (statuses or {}).get((backend, n), "ok")
        samples = per_fit_seconds(backend, n) * (scale or {}).get(backend, 1.0) * noise
        write_configuration(folder, samples, ITERATIONS, status, backend=backend, grad=grad, mode=mode, n=n)
    if environment is not None:
        (folder / "environment.json").write_text(json.dumps({"schema_version": results.SCHEMA_VERSION, **environment}))
    return folder


def scaled_copy(run: Path, folder: Path, backend: str, factor: float) -> Path:
    """A copy of ``run`` whose raw seconds (and summary medians) of ``backend`` are multiplied by ``factor``."""
    shutil.copytree(run, folder)
    for kind, column in (("raw", "seconds"), ("summary", "median_s")):
        frame = results.read_csv(folder / results.FILES[kind], kind)
        frame.loc[frame["backend"] == backend, column] *= factor
        (folder / results.FILES[kind]).unlink()
        results.append_rows(folder, kind, frame.to_dict(orient="records"))
    return folder


def bench(*argv: str) -> subprocess.CompletedProcess:
    """``python -m bench ARGV`` in a fresh process, as a user runs it."""
    return subprocess.run(bench_command(*argv), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def run_cli(*argv: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``python -m bench ARGV`` in this process (the same ``main``; faster than :func:`bench`)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def compare_json(*argv: str, capsys: pytest.CaptureFixture | None = None) -> tuple[int, dict]:
    """``compare ARGV --format json``: in a fresh process, or in this one with ``capsys``."""
    if capsys is None:
        done = bench("compare", *argv, "--format", "json")
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        code, out, err = run_cli("compare", *argv, "--format", "json", capsys=capsys)
    assert err == ""
    return code, json.loads(out)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


# --- the three cases of the issue, through a real process ----------------------------------------------------


@pytest.mark.slow
def test_a_run_against_itself_reports_no_change(run: Path, capsys: pytest.CaptureFixture) -> None:
    done = bench("compare", str(run), str(run), "--fail-on-regression")
    assert done.returncode == 0, done.stderr
    assert "8 no change" in done.stdout and "environment.json: same machine and software" in done.stdout
    code, report = compare_json(str(run), str(run), "--fail-on-regression", capsys=capsys)
    assert code == 0 and report["counts"] == {"no change": 8} and report["regressions"] == 0
    assert {row["ratio"] for row in report["configurations"]} == {1.0}
    assert {row["p_value"] for row in report["configurations"]} == {1.0}


@pytest.mark.slow
def test_one_framework_one_and_a_half_times_slower_is_flagged_exactly(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    slower = scaled_copy(run, tmp_path / "jax-slower", "jax", 1.5)
    code, report = compare_json(str(run), str(slower))
    assert code == 0
    verdicts = {(row["backend"], row["n"]): row["verdict"] for row in report["configurations"]}
    assert verdicts == {
        (backend, n): "slower" if backend == "jax" else "no change" for backend, _, _, n in CONFIGURATIONS
    }
    assert all(row["ratio"] == pytest.approx(1.5) for row in report["configurations"] if row["backend"] == "jax")
    means = {row["backend"]: row for row in report["geometric_means"]}
    assert means["jax"]["geometric_mean"] == pytest.approx(1.5) and means["jax"]["slower"] == 4
    assert means["numpy"]["geometric_mean"] == pytest.approx(1.0) and means["numpy"]["no change"] == 4
    done = bench("compare", str(run), str(slower), "--fail-on-regression")
    assert done.returncode == 1
    assert "regression: 4 configurations reported slower" in done.stdout and "4 slower, 4 no change" in done.stdout
    code, out, _ = run_cli("compare", str(slower), str(run), "--fail-on-regression", capsys=capsys)
    assert code == 0 and "4 faster" in out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "what"),
    [
        pytest.param({"cpu_model": "Other CPU 1"}, "CPU 'Example CPU 9000' vs 'Other CPU 1'", id="cpu"),
        pytest.param({"gpus": [{"name": "NVIDIA H200"}]}, "GPUs none vs NVIDIA H200", id="gpu"),
    ],
)
def test_another_machine_is_refused_without_the_flag(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, change: dict, what: str
) -> None:
    other = write_run(tmp_path / "other", environment={**ENVIRONMENT, **change})
    done = bench("compare", str(run), str(other))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and what in done.stderr and "--allow-different-machines" in done.stderr
    code, out, _ = run_cli("compare", str(run), str(other), "--allow-different-machines", capsys=capsys)
    assert code == 0 and f"different machines, compared as asked: {what}" in out


# --- the rest in-process ---------------------------------------------------------------------------------------


def test_what_differs_between_the_environments_is_printed(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Another host of the same CPU model, newer numpy, one thread: not refused, every difference named."""
    changed = {**ENVIRONMENT, "host": "beta", "packages": {"numpy": "2.5.0", "jax": "0.10.2"}, "threads_requested": 1}
    other = write_run(tmp_path / "other", environment={**changed, "run_id": "another", "probe": {"seconds": 9.0}})
    code, out, _ = run_cli("compare", str(run), str(other), capsys=capsys)
    assert code == 0
    assert "  host: alpha -> beta" in out and "  packages.numpy: 2.4.6 -> 2.5.0" in out
    assert "  threads_requested: 2 -> 1" in out
    assert "run_id" not in out and "probe" not in out and "packages.jax" not in out


def test_a_run_without_environment_is_compared_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old, new = write_run(tmp_path / "old", environment=None), write_run(tmp_path / "new")
    code, out, _ = run_cli("compare", str(old), str(new), capsys=capsys)
    assert code == 0 and f"no environment.json in {old}: the machines are not compared" in out


def test_too_few_samples_give_no_verdict(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = write_run(tmp_path / "old", noise=NOISE[:5])
    new = write_run(tmp_path / "new", noise=NOISE[:7], scale={"jax": 1.5, "numpy": 1.5})
    code, out, _ = run_cli("compare", str(old), str(new), "--fail-on-regression", capsys=capsys)
    assert code == 0 and "8 too few samples" in out and "5/7" in out


@pytest.mark.parametrize(
    ("noise", "scale"),
    [
        pytest.param(NOISE, 1.03, id="significant-but-3%"),
        pytest.param(np.array([1.0, 3.0, 0.5, 2.5, 0.6, 1.8, 0.7, 2.2, 1.1, 0.9]), 1.2, id="20%-but-noisy"),
    ],
)
def test_small_and_noisy_changes_are_not_regressions(
    tmp_path: Path, capsys: pytest.CaptureFixture, noise: np.ndarray, scale: float
) -> None:
    old = write_run(tmp_path / "old", noise=noise)
    new = write_run(tmp_path / "new", noise=np.roll(noise, 3), scale={"jax": scale, "numpy": scale})
    code, out, _ = run_cli("compare", str(old), str(new), "--fail-on-regression", capsys=capsys)
    assert code == 0 and "8 no change" in out


def test_only_changed_sorted_by_ratio_and_markdown(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    new = write_run(tmp_path / "new", scale={"jax": 1.5, "numpy": 0.7})
    _, report = compare_json(str(run), str(new), capsys=capsys)
    ratios = [row["ratio"] for row in report["configurations"]]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] == pytest.approx(1.5)
    numpy_same = scaled_copy(new, tmp_path / "numpy-same", "numpy", 1 / 0.7)
    code, out, _ = run_cli("compare", str(run), str(numpy_same), "--only-changed", "--format", "md", capsys=capsys)
    assert code == 0
    table_rows = [line for line in out.splitlines() if line.startswith("| jax") or line.startswith("| numpy")]
    assert len(table_rows) == 4 + 2 and all("slower" in row for row in table_rows[:4])
    assert "### per framework: geometric mean of new/old" in out and "| numpy | 1.000 | 4 | 0 | 0 | 4 |" in out


def test_configurations_in_one_run_only_and_broken_ones_are_listed(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    fewer = [c for c in CONFIGURATIONS if c[-1] != 1_000]
    new = write_run(tmp_path / "new", only=fewer, statuses={("jax", 1_000_000): "mismatch"})
    code, out, _ = run_cli("compare", str(run), str(new), "--fail-on-regression", capsys=capsys)
    assert code == 1
    assert "only in old: numpy manual/eager cpu float64: n=1,000 it=100" in out
    assert "broken: ok -> mismatch" in out and "2 only in old" in out and "1 broken" in out
    assert "regression: 1 configurations" in out
    _, report = compare_json(str(run), str(new), capsys=capsys)
    assert report["configurations"][0]["verdict"] == "broken"


# --- bad input: one line, exit 2 ------------------------------------------------------------------------------


def test_truncated_raw_csv_is_refused(run: Path, capsys: pytest.CaptureFixture) -> None:
    raw = run / "raw.csv"
    raw.write_text(raw.read_text()[:-20])
    code, out, err = run_cli("compare", str(run), str(run), capsys=capsys)
    assert code == 2 and out == "" and "raw.csv: truncated" in err


def test_raw_csv_of_another_run_is_refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = write_run(tmp_path / "other", only=CONFIGURATIONS[:2])
    shutil.copy(other / "raw.csv", run / "raw.csv")
    code, _, err = run_cli("compare", str(run), str(run), capsys=capsys)
    assert code == 2 and "raw.csv lacks the samples of 6 ok configurations" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--threshold", "the minimum effect must be a fraction"),
        ("--min-effect", "the minimum effect must be"),
        ("--fdr", "the false discovery rate must be a fraction"),
    ],
)
def test_bad_numbers_are_refused(run: Path, capsys: pytest.CaptureFixture, option: str, message: str) -> None:
    code, out, err = run_cli("compare", str(run), str(run), option, "10%", capsys=capsys)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_pooled_samples_are_every_row_of_raw_csv(run: Path) -> None:
    """Two processes of five repeats each are ten samples of one configuration, seconds per iteration."""
    from bench.compare import match_columns, pooled_samples
    from bench.runs import load_run

    loaded = load_run(str(run), run.parent)
    samples = pooled_samples(loaded, match_columns(loaded, loaded))
    raw = pd.read_csv(run / "raw.csv")
    assert len(samples) == 8 and {len(s) for s in samples.values()} == {SAMPLES}
    key = ("jax", "manual", "jit-loop", "tutorial", "cpu", "float64", 1_000, ITERATIONS, 1)
    assert samples[key] == pytest.approx(raw[(raw["backend"] == "jax") & (raw["n"] == 1_000)]["seconds"] / ITERATIONS)
