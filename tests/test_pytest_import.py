"""``pytest --benchmark-only`` on a tiny selection of fits, then ``python -m bench import-pytest-benchmark``.

The benchmarks run in a subprocess, as a user runs them: NumPy's fit (checked, timed, grouped; declared for the
CPU only, so no GPU configuration of it is planned) and a deliberately wrong backend, whose benchmark must fail the
reference check and import as ``mismatch``, and whose variant is declared for a GPU too, so that its GPU
configurations are skipped with their reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import results
from bench.cli import main
from bench.environment import PROJECT_ROOT

ROUNDS = 3
WRONG_BACKEND = '''
from dataclasses import replace

from backends.contract import Fit
from backends.numpy_backend import NumpyBackend


class WrongBackend(NumpyBackend):
    """NumPy's fit with its first coefficient off by 0.01: the reference check must catch it."""

    name = "wrong"
    variants = tuple(replace(v, devices=("cpu", "gpu")) for v in NumpyBackend.variants)

    def prepare(self, problem, variant, device):
        fit = super().prepare(problem, variant, device)

        def wrong_fit(initial):
            fit.reset(initial)
            result = fit()
            return replace(result, weights=(result.weights[0] + 0.01, *result.weights[1:]))

        return Fit(wrong_fit, problem.initial_weights())
'''


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """The output of the subprocess and the path of its pytest-benchmark JSON."""
    folder = tmp_path_factory.mktemp("pytest-benchmark")
    (folder / "wrong_backend.py").write_text(textwrap.dedent(WRONG_BACKEND))
    out = folder / "out.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(folder), os.environ.get("PYTHONPATH", "")]),
        "ARRAYBENCH_BACKENDS": "wrong_backend:WrongBackend",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/benchmarks/test_fit.py",
        "-k",
        "(numpy or wrong) and tutorial",
        "-p",
        "no:cacheprovider",
        "-rs",
        "--benchmark-only",
        f"--benchmark-json={out}",
        "--fit-sizes=100,16",
        "--fit-iterations=2",
        f"--fit-rounds={ROUNDS}",
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    return done, out


@pytest.mark.slow
def test_benchmarks_check_time_group_and_skip(benchmark_run) -> None:
    done, out = benchmark_run
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # the wrong backend's benchmarks fail, NumPy's pass
    assert "4 failed, 4 passed, 4 skipped" in output, output
    assert "disagrees with the exact reference" in output
    assert "wrong has no gpu device here" in output
    tables = [line for line in output.splitlines() if line.lstrip("-").startswith(" benchmark 'cpu")]
    assert [t.split("'")[1] for t in tables] == [
        f"cpu {dtype} n={n} iterations=2" for dtype in ("float32", "float64") for n in (16, 100)
    ]
    data = json.loads(out.read_text())
    numpy_bench = next(b for b in data["benchmarks"] if b["extra_info"]["backend"] == "numpy")
    info = numpy_bench["extra_info"]
    for key in (
        "backend",
        "grad",
        "mode",
        "device",
        "dtype",
        "n",
        "iterations",
        "us_per_iter",
        "first_call_s",
        "ref_rel_err",
        "backend_version",
        "threads",
    ):
        assert key in info
    assert info["status"] == "ok" and info["first_call_s"] > 0
    assert numpy_bench["stats"]["rounds"] == ROUNDS and info["samples_s"] == numpy_bench["stats"]["data"]


@pytest.mark.slow
def test_import_gives_a_run_folder(benchmark_run, tmp_path: Path) -> None:
    _, out = benchmark_run
    folder = tmp_path / "run"
    assert main(["import-pytest-benchmark", str(out), "--out", str(folder)]) == 1  # the mismatches
    summary = results.read_csv(folder)
    assert list(summary.columns) == results.SUMMARY_COLUMNS
    raw = results.read_csv(folder, "raw")
    assert list(raw.columns) == results.RAW_COLUMNS
    assert dict(summary.groupby("backend")["status"].agg(set)) == {"numpy": {"ok"}, "wrong": {"mismatch"}}
    assert len(summary) == 8 and len(raw) == 8 * ROUNDS
    data = json.loads(out.read_text())
    medians = {
        (b["extra_info"]["backend"], b["extra_info"]["dtype"], b["extra_info"]["n"]): b["stats"]["median"]
        for b in data["benchmarks"]
    }
    for row in summary.itertuples():
        assert row.median_s == pytest.approx(medians[(row.backend, row.dtype, row.n)], rel=1e-12)
    environment = json.loads((folder / "environment.json").read_text())
    assert environment["run_id"] == summary["run_id"].iloc[0]
    assert {"cpu_model", "packages", "git_commit", "workers", "pytest_benchmark"} <= set(environment)


@pytest.mark.parametrize(
    "content",
    [
        "not json at all\n",
        '{"benchmarks": "none"}',
        '{"machine_info": {}, "benchmarks": []}',
        '{"machine_info": {}, "benchmarks": [{"fullname": "test_other", "extra_info": {}}]}',
        "run_id,backend\nx,numpy\n",
    ],
    ids=["text", "no-machine-info", "empty", "foreign-benchmark", "csv"],
)
def test_import_rejects_other_files(content: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "in.json"
    source.write_text(content)
    folder = tmp_path / "run"
    assert main(["import-pytest-benchmark", str(source), "--out", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m bench: error: ") and error.count("\n") == 1, error
    assert not folder.exists()
