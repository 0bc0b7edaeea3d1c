"""The project's tooling: the ``arraybench`` command, the registered markers, the benchmark plugin's reach."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench.environment import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_the_arraybench_command_is_the_cli(capsys: pytest.CaptureFixture) -> None:
    """``[project.scripts] arraybench`` names ``bench.cli:main``, which answers ``--help``."""
    module, function = PYPROJECT["project"]["scripts"]["arraybench"].split(":")
    main = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "run,runs,list" in capsys.readouterr().out.replace("|", ",").replace(" ", "")


def test_markers_are_registered_and_strict() -> None:
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    assert {line.split(":")[0] for line in options["markers"]} >= {"gpu", "slow"}


def child_pytest(tests: Path, *options: str) -> list[str]:
    """The command of a pytest of the file ``tests`` alone in a fresh process, rooted in its folder and without
    the cache, with the plugins and selections in ``options``."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(tests.parent),
        *options,
        str(tests),
    ]


CHILD_TESTS = """
import os


def test_without_benchmarks():
    assert "ARRAYBENCH_THREADS" not in os.environ


def test_with_a_benchmark(fit_config):
    assert os.environ["ARRAYBENCH_THREADS"] == "1"
    assert len(os.sched_getaffinity(0)) == 1
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("selected", "outcome"),
    [("test_without_benchmarks", "1 passed"), ("test_with_a_benchmark and numpy", "passed")],
)
def test_the_benchmark_plugin_changes_threads_only_when_benchmarks_are_collected(
    tmp_path: Path, selected: str, outcome: str
) -> None:
    """A session without a ``fit_config`` test keeps its environment and affinity; one with keeps neither."""
    (tmp_path / "test_child.py").write_text(CHILD_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "ARRAYBENCH_THREADS"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    command = child_pytest(
        tmp_path / "test_child.py",
        "-p",
        "tests.benchmarks.plugin",
        "--fit-threads=1",
        "--fit-sizes=1000",
        "-k",
        selected,
    )
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcome in done.stdout and "failed" not in done.stdout


GPU_CHILD_TESTS = """
import pytest

import tests.availability as availability

if PRETEND_A_GPU:
    availability.gpu_here = lambda: True


@pytest.mark.gpu
def test_needs_a_gpu():
    pytest.skip("this framework sees no CUDA device")


def test_skips_on_any_machine():
    pytest.skip("not here")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pretend_a_gpu", "require_gpu", "outcome"),
    [
        pytest.param(False, False, "2 skipped", id="no-gpu"),
        pytest.param(False, True, "1 skipped, 1 error", id="no-gpu-required"),  # failed in setup: an error
        pytest.param(True, False, "2 skipped", id="gpu-test-skips-in-body"),
        pytest.param(True, True, "1 failed, 1 skipped", id="gpu-test-skips-in-body-required"),
    ],
)
def test_a_gpu_tests_skip_fails_where_a_gpu_is_required(
    tmp_path: Path, pretend_a_gpu: bool, require_gpu: bool, outcome: str
) -> None:
    """Without a GPU a ``gpu`` test skips by its mark; under ARRAYBENCH_REQUIRE_GPU=1 its skip, by the mark or in
    its body, fails; a test not marked ``gpu`` skips either way. ``-m gpu`` selects only the marked one."""
    (tmp_path / "test_child.py").write_text(GPU_CHILD_TESTS.replace("PRETEND_A_GPU", str(pretend_a_gpu)))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "ARRAYBENCH_REQUIRE_GPU": "1" if require_gpu else "0"}
    command = child_pytest(
        tmp_path / "test_child.py", "-rs", "-p", "tests.availability", "-c", str(PROJECT_ROOT / "pyproject.toml")
    )
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert outcome in done.stdout and "warning" not in done.stdout, done.stdout + done.stderr
    if require_gpu:
        assert "required here, but cannot run" in done.stdout or "skipped where a GPU is required" in done.stdout
    selected = subprocess.run([*command, "-m", "gpu"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert "1 deselected" in selected.stdout, selected.stdout
