"""A sweep survives crashes, hangs, out-of-memory and divergence, rejects bad input, and loses nothing.

Faults come from ``tests/faulty_backend.py``, loaded the way a user adds a framework (``ARRAYBENCH_BACKENDS``
or an entry point), and run through the real command line, runner and worker processes at tiny sizes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from backends import RegistryError, registry
from bench import results
from bench.cli import main
from tests.availability import gpu_here
from tests.sweeps import bench_command

ROOT = Path(__file__).resolve().parent.parent
FAULTY = "tests.faulty_backend:FaultyBackend"
TINY = ("--devices", "cpu", "--dtypes", "float64", "--repeats", "2", "--budget", "100", "--fit-budget", "none")
"""Small sweeps whose repeats and iterations no time budget can cut: what they record does not depend on timing."""
DETERMINED = [*results.KEY_COLUMNS, "status", "reason", "learning_rate", "repeats", "final_loss", "a", "b", "c", "d"]
"""Summary columns that do not depend on timing: equal between an interrupted-and-resumed and a whole run."""


def environment(pythonpath: str = str(ROOT), backends: str | None = FAULTY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ARRAYBENCH_BACKENDS"}
    env["PYTHONPATH"] = pythonpath
    if backends:
        env["ARRAYBENCH_BACKENDS"] = backends
    return env


def focused(args: tuple[str, ...]) -> list[str]:
    """A new ``run`` keeps to the tutorial formulation without the machine probe: these tests are about faults."""
    if args[:1] == ("run",) and "--resume" not in args and "--formulations" not in args:
        return [*args, "--formulations", "tutorial", "--no-probe"]
    return list(args)


def sweep_args(run: Path, backends: str, sizes: str, iterations: str, *more: str) -> tuple[str, ...]:
    """The arguments of ``bench run`` of ``backends`` at ``sizes`` and ``iterations`` into the folder ``run``, with
    :data:`TINY`'s settings and the ``more`` options the test is about."""
    return (
        "run",
        "--backends",
        backends,
        "--sizes",
        sizes,
        "--iterations",
        iterations,
        *more,
        "--out",
        str(run),
        *TINY,
    )


def bench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **options
) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a fresh process, as a user runs it; ``options``: more of subprocess.run's."""
    command = bench_command(*focused(args))
    return subprocess.run(
        command, cwd=ROOT, env=env or environment(), capture_output=True, text=True, timeout=timeout, **options
    )


def default_interrupts() -> None:
    """Give the child Ctrl-C's default meaning: a test run in the background (``make test &``) inherits
    SIGINT ignored, and Python then rightly leaves it ignored, as a backgrounded ``bench run`` should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_bench(*args: str) -> subprocess.Popen:
    """``python -m bench ARGS`` started in a fresh process that Ctrl-C interrupts, its output piped."""
    return subprocess.Popen(
        bench_command(*focused(args)),
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_interrupts,
    )


def rows(folder: Path) -> dict[tuple, dict]:
    """The summary rows of a run, by (backend, n, iterations)."""
    summary = results.read_csv(folder)
    return {(r["backend"], r["n"], r["iterations"]): r for r in summary.to_dict("records")}


def status_line(out: str) -> str:
    return next(line for line in reversed(out.splitlines()) if line.startswith("status: "))


# --- faults during a sweep ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_each_fault_is_a_row_with_a_reason_and_the_sweep_goes_on(tmp_path):
    run = tmp_path / "run"
    done = bench(*sweep_args(run, "faulty,numpy", "5,6,7,8,9,11,12,16", "200", "--timeout", "6"))
    assert done.returncode == 1, done.stderr
    got = rows(run)
    expected = {
        5: ("timeout", ["no result within the 6 s timeout", "killed", "--timeout allows longer"]),
        6: ("failed", ["killed by SIGSEGV", "Fatal Python error: Segmentation fault", "string_at"]),
        7: ("failed", ["killed by SIGABRT", "Fatal Python error: Aborted", "faulty_backend.py"]),
        8: ("failed", ["exited with status 3", "faulty backend: giving up with exit status 3"]),
        9: ("failed", ["RuntimeError: faulty backend: kernel launch failed"]),
        11: ("diverged", ["loss is nan at iteration 199"]),
        12: ("failed", ["returned 3 weights and 2 logged losses, not 4 and 2"]),
        16: ("ok", []),
    }
    for n, (status, phrases) in expected.items():
        row = got[("faulty", n, 200)]
        assert row["status"] == status, (n, row["reason"])
        for phrase in phrases:
            assert phrase in row["reason"], (n, row["reason"])
    assert all(got[("numpy", n, 200)]["status"] == "ok" for n in expected)
    assert status_line(done.stdout) == "status: 9 ok, 5 failed, 1 timeout, 1 diverged"
    raw = results.read_csv(run, "raw")
    timed = set(zip(raw["backend"], raw["n"], strict=True))
    assert timed == {("faulty", 11), ("faulty", 16)} | {("numpy", n) for n in expected}


@pytest.mark.slow
def test_out_of_memory_is_oom_and_skips_the_larger_sizes_of_that_variant_only(tmp_path):
    run = tmp_path / "run"
    done = bench(*sweep_args(run, "faulty,numpy", "14,10,16", "100"))
    assert done.returncode == 1
    got = rows(run)
    assert got[("faulty", 14, 100)]["status"] == "ok"
    assert got[("faulty", 10, 100)]["status"] == "oom"
    assert "MemoryError: faulty backend: cannot allocate 8 GiB" in got[("faulty", 10, 100)]["reason"]
    assert got[("faulty", 16, 100)]["status"] == "skipped"
    assert "n=10 of this variant already ran out of memory" in got[("faulty", 16, 100)]["reason"]
    assert all(got[("numpy", n, 100)]["status"] == "ok" for n in (14, 10, 16))
    assert status_line(done.stdout) == "status: 4 ok, 1 skipped, 1 oom"


@pytest.mark.slow
def test_a_backend_that_returns_a_stale_result_on_later_repeats_is_a_mismatch(tmp_path):
    """n=15: the fit runs once in each process, then hands that result back: in each process, the repeat
    after the one from the warm-up's seed disagrees with its own reference."""
    run = tmp_path / "run"
    done = bench(*sweep_args(run, "faulty", "15,16", "200"))
    assert done.returncode == 1, done.stdout + done.stderr
    got = rows(run)
    assert got[("faulty", 16, 200)]["status"] == "ok"
    stale = got[("faulty", 15, 200)]
    assert stale["status"] == "mismatch" and "disagrees with the exact reference" in stale["reason"]
    assert "(repeat 2 of process 1, from seed 1; 2 of 4)" in stale["reason"]
    raw = results.read_csv(run, "raw")
    assert list(raw[raw["n"] == 15]["status"]) == ["ok", "mismatch", "ok", "mismatch"]


@pytest.mark.slow
def test_a_size_that_cannot_fit_is_skipped_with_the_estimate_and_exit_status_0(tmp_path):
    run = tmp_path / "run"
    huge = 10**13  # 10^13 float64 elements: about 900 TiB, more than any host has
    done = bench(*sweep_args(run, "faulty,numpy", f"16,20000,{huge}", "10"))
    assert done.returncode == 0, done.stdout
    got = rows(run)
    for backend in ("faulty", "numpy"):
        assert got[(backend, 16, 10)]["status"] == "ok"
        assert got[(backend, huge, 10)]["status"] == "skipped"
        assert (
            "needs about 873.1 TiB of host memory (12 arrays of n=10,000,000,000,000 float64)"
            in (got[(backend, huge, 10)]["reason"])
        )
    assert got[("numpy", 20000, 10)]["status"] == "ok"
    # The faulty backend says its device has 1 MiB free: the worker checks the device before it prepares.
    device_skip = got[("faulty", 20000, 10)]
    assert device_skip["status"] == "skipped"
    assert "needs about 1.8 MiB of cpu memory" in device_skip["reason"] and "1.0 MiB free" in device_skip["reason"]
    assert status_line(done.stdout) == "status: 3 ok, 3 skipped"


@pytest.mark.slow
def test_a_learning_rate_too_large_for_numpy_is_diverged_with_the_iteration(tmp_path):
    run = tmp_path / "run"
    done = bench(*sweep_args(run, "numpy", "1000", "300", "--learning-rate", "1"))
    assert done.returncode == 1
    row = rows(run)[("numpy", 1000, 300)]
    assert row["status"] == "diverged"
    assert "at iteration 99" in row["reason"] and "learning rate 1;" in row["reason"]
    assert status_line(done.stdout) == "status: 1 diverged"


@pytest.mark.slow
@pytest.mark.skipif(gpu_here(), reason="this machine has a GPU")
def test_a_gpu_asked_for_without_one_gives_skipped_rows_and_exit_status_0(tmp_path):
    """Only variants declared to exist on a GPU are planned there (not NumPy's, nor the faulty backend's); each is
    a skipped row with the reason."""
    run = tmp_path / "run"
    done = bench(
        "run",
        "--backends",
        "numpy,torch,faulty",
        "--devices",
        "gpu",
        "--grads",
        "manual",
        "--modes",
        "eager",
        "--dtypes",
        "float32",
        "--sizes",
        "16",
        "--iterations",
        "100",
        "--out",
        str(run),
    )
    assert done.returncode == 0, done.stderr
    got = rows(run)
    assert {row["status"] for row in got.values()} == {"skipped"}
    assert set(got) == {("torch", 16, 100)}
    assert "GPU" in got[("torch", 16, 100)]["reason"] or "not installed" in got[("torch", 16, 100)]["reason"]
    assert status_line(done.stdout) == "status: 1 skipped"


@pytest.mark.slow
def test_an_entry_point_backend_runs_in_the_workers_too(tmp_path):
    """The entry-point route: a package's metadata on the path names the faulty backend; no environment variable."""
    info = tmp_path / "site" / "arraybench_faulty-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: arraybench-faulty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[arraybench.backends]\nfaulty = {FAULTY}\n")
    env = environment(pythonpath=f"{tmp_path / 'site'}{os.pathsep}{ROOT}", backends=None)
    run = tmp_path / "run"
    done = bench(*sweep_args(run, "faulty", "6,16", "100"), env=env)
    got = rows(run)
    assert got[("faulty", 6, 100)]["status"] == "failed" and "SIGSEGV" in got[("faulty", 6, 100)]["reason"]
    assert got[("faulty", 16, 100)]["status"] == "ok"
    assert (done.returncode, status_line(done.stdout)) == (1, "status: 1 ok, 1 failed")


def test_the_environment_variable_names_backends_and_bad_entries_are_clear(monkeypatch):
    monkeypatch.setenv("ARRAYBENCH_BACKENDS", FAULTY)
    assert registry()["faulty"] == FAULTY
    for value, message in [
        ("tests.faulty_backend", "must look like module:Class"),
        ("no_such_module:Backend", "cannot import no_such_module:Backend (No module named 'no_such_module')"),
        ("tests.faulty_backend:NoSuchClass", "cannot import tests.faulty_backend:NoSuchClass"),
        ("tests.faulty_backend:faulty_fit", "is not a subclass of backends.contract.Backend"),
    ]:
        monkeypatch.setenv("ARRAYBENCH_BACKENDS", value)
        with pytest.raises(RegistryError, match="ARRAYBENCH_BACKENDS"):
            registry()
        with pytest.raises(RegistryError) as raised:
            registry()
        assert message in str(raised.value)


# --- interruption ------------------------------------------------------------------------------------------

INTERRUPTIBLE = ("--backends", "numpy,faulty", "--sizes", "13", "--iterations", "100,200,300,400", *TINY)
"""8 configurations: numpy's 4 are quick, then the faulty backend's 4 take 1.2 s each (n=13: slow fits), so a
signal sent once 5 have finished lands seconds before the sweep could end, even on a loaded machine."""


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    """The interruptible sweep, run without interruption."""
    run = tmp_path_factory.mktemp("whole") / "run"
    done = bench("run", *INTERRUPTIBLE, "--out", str(run))
    assert done.returncode == 0, done.stdout + done.stderr
    return run


def same_results(run: Path, whole: Path) -> None:
    """``run`` holds the same configurations, statuses, weights, losses and repeats as ``whole``."""
    pd.testing.assert_frame_equal(results.read_csv(run)[DETERMINED], results.read_csv(whole)[DETERMINED])
    losses = [c for c in results.LOSS_COLUMNS if c != "run_id"]
    pd.testing.assert_frame_equal(results.read_csv(run, "losses")[losses], results.read_csv(whole, "losses")[losses])
    raw = [*results.KEY_COLUMNS, "status", "process", "repeat", "start_seed"]
    pd.testing.assert_frame_equal(results.read_csv(run, "raw")[raw], results.read_csv(whole, "raw")[raw])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_an_interrupted_sweep_keeps_what_finished_and_resume_completes_it(tmp_path, whole_run, sig):
    run = tmp_path / "run"
    sweep = start_bench("run", *INTERRUPTIBLE, "--out", str(run))
    summary = run / "summary.csv"
    deadline = time.monotonic() + 60
    while not (summary.exists() and summary.read_text().count("\n") >= 6):  # header + 5 finished
        assert sweep.poll() is None and time.monotonic() < deadline, "the sweep ended before it was interrupted"
        time.sleep(0.05)
    workers = psutil.Process(sweep.pid).children(recursive=True)
    sweep.send_signal(sig)
    out, _ = sweep.communicate(timeout=30)
    assert sweep.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    if sig != signal.SIGKILL:
        assert f"finish with: python -m bench run --resume {run}" in out.decode()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "a worker outlived its runner"

    finished = results.read_csv(run)
    assert 5 <= len(finished) < 8
    whole = results.read_csv(whole_run)
    pd.testing.assert_frame_equal(finished[DETERMINED], whole[DETERMINED].head(len(finished)))
    for kind in ("raw", "losses"):
        keys = set(results.read_csv(run, kind)[results.KEY_COLUMNS].itertuples(index=False))
        assert set(finished[results.KEY_COLUMNS].itertuples(index=False)) <= keys

    assert (run / ".lock").is_file()  # the lock file of the stopped run: its lock died with it, it blocks nobody
    resumed = bench("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"arraybench: {8 - len(finished)} configurations" in resumed.stdout
    assert status_line(resumed.stdout) == "status: 8 ok"
    same_results(run, whole_run)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="workers die with their runner through Linux's prctl")
def test_a_hung_worker_dies_with_its_killed_runner(tmp_path):
    sweep = start_bench(*sweep_args(tmp_path / "run", "faulty", "5", "100", "--timeout", "60"))
    deadline = time.monotonic() + 30
    while not (workers := psutil.Process(sweep.pid).children(recursive=True)):
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.05)
    sweep.kill()
    sweep.communicate(timeout=30)
    _, alive = psutil.wait_procs(workers, timeout=10)
    for worker in alive:
        worker.kill()
    assert not alive, "a hung worker outlived its killed runner"


@pytest.mark.slow
def test_resume_drops_a_cut_line_and_rows_of_an_unfinished_configuration(tmp_path, whole_run):
    """A runner killed in mid-write: the last summary row never came, and summary.csv ends in half a line."""
    run = tmp_path / "run"
    shutil.copytree(whole_run, run)
    summary = (run / "summary.csv").read_text().splitlines(keepends=True)
    (run / "summary.csv").write_text("".join(summary[:-1]) + summary[-1][:25])
    with pytest.raises(results.ResultsError, match="truncated"):
        results.read_csv(run)
    resumed = bench("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "arraybench: 1 configurations" in resumed.stdout
    same_results(run, whole_run)


# --- bad input ---------------------------------------------------------------------------------------------

RUN = ("run", "--backends", "numpy", "--sizes", "16", "--iterations", "10")
BAD_INPUT = {
    "unknown backend": (["--backends", "numpy,nosuch"], "unknown backend nosuch; choose from numpy, torch, jax"),
    "empty backend": (["--backends", ""], "unknown backend ''; choose from numpy, torch, jax"),
    "unknown grad": (["--grads", "manaul"], "unknown grad manaul; choose from manual, autodiff"),
    "unknown mode": (["--modes", "fast"], "unknown mode fast; choose from eager, jit-step, jit-loop"),
    "unknown device": (["--devices", "tpu"], "unknown device tpu; choose from cpu, gpu"),
    "unknown dtype": (["--dtypes", "float16"], "unknown dtype float16; choose from float32, float64"),
    "unknown preset": (["--preset", "huge"], "invalid choice: 'huge' (choose from 'full', 'gpu-check', 'quick')"),
    "unknown option": (["--colour", "red"], "unrecognized arguments: --colour red"),
    "size zero": (["--sizes", "0"], "a size must be a whole number of at least 4, got '0'"),
    "size negative": (["--sizes", "16,-100"], "a size must be a whole number of at least 4, got '-100'"),
    "size fraction": (["--sizes", "100.5"], "a size must be a whole number of at least 4, got '100.5'"),
    "size word": (["--sizes", "lots"], "a size must be a whole number of at least 4, got 'lots'"),
    "size empty": (["--sizes", ""], "a size must be a whole number of at least 4, got ''"),
    "iterations zero": (["--iterations", "0"], "an iteration count must be a whole number of at least 1, got '0'"),
    "iterations negative": (["--iterations", "-5"], "an iteration count must be a whole number of at least 1"),
    "iterations fraction": (["--iterations", "2.5"], "an iteration count must be a whole number of at least 1"),
    "iterations word": (["--iterations", "many"], "an iteration count must be a whole number of at least 1"),
    "learning rate zero": (["--learning-rate", "0"], "the learning rate must be a positive number, got '0'"),
    "learning rate negative": (["--learning-rate", "-0.5"], "the learning rate must be a positive number"),
    # argparse reads "-1e-6" as an option, not a negative number: still one line, but its own words.
    "learning rate -1e-6": (["--learning-rate", "-1e-6"], "argument --learning-rate: expected one argument"),
    "learning rate word": (["--learning-rate", "fast"], "the learning rate must be a positive number, got 'fast'"),
    "learning rate nan": (["--learning-rate", "nan"], "the learning rate must be a positive number, got 'nan'"),
    "learning rate inf": (["--learning-rate", "inf"], "the learning rate must be a positive number, got 'inf'"),
    "repeats zero": (["--repeats", "0"], "repeats must be a whole number of at least 1, got '0'"),
    "repeats negative": (["--repeats", "-3"], "repeats must be a whole number of at least 1, got '-3'"),
    "timeout zero": (["--timeout", "0"], "the timeout must be a positive number of seconds, got '0'"),
    "timeout word": (["--timeout", "soon"], "the timeout must be a positive number of seconds, got 'soon'"),
    "budget negative": (["--budget", "-1"], "the budget must be a positive number of seconds, got '-1'"),
    "fit budget zero": (["--fit-budget", "0"], "the fit budget must be a positive number of seconds, or none, got '0'"),
    "fit budget word": (["--fit-budget", "brief"], "the fit budget must be a positive number of seconds, or none"),
    "threads zero": (["--threads", "0"], "threads must be a whole number of at least 1, got '0'"),
    "seed negative": (["--seed", "-1"], "the seed must be a whole number of at least 0, got '-1'"),
    "nothing selected": (["--grads", "autodiff"], "no configuration to run: no variant has a grad in autodiff"),
}


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def rejected(argv: list[str], folder: Path, capsys) -> str:
    """Run the command line in-process; check exit status 2, one line on stderr and nothing written."""
    before = files_under(folder)
    results_before = files_under(ROOT / "results") if (ROOT / "results").exists() else None
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("python -m bench: error: "), err
    assert files_under(folder) == before
    assert (files_under(ROOT / "results") if (ROOT / "results").exists() else None) == results_before
    return err


@pytest.mark.parametrize(("extra", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_a_bad_option_is_one_line_exit_status_2_and_nothing_written(tmp_path, capsys, extra, message):
    err = rejected([*RUN, *extra, "--out", str(tmp_path / "run")], tmp_path, capsys)
    assert message in err


def test_an_output_folder_that_exists_or_cannot_be_written_is_refused(tmp_path, capsys, whole_run):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    err = rejected([*RUN, "--out", str(other)], tmp_path, capsys)
    assert f"output folder {other} exists and is not a run folder; choose another --out" in err

    err = rejected([*RUN, "--out", str(whole_run)], whole_run, capsys)
    assert f"holds a run already; finish it with --resume {whole_run}" in err

    (tmp_path / "a-file").write_text("")
    err = rejected([*RUN, "--out", str(tmp_path / "a-file" / "run")], tmp_path, capsys)
    assert f"{tmp_path / 'a-file'} is not a writable folder" in err
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        err = rejected([*RUN, "--out", str(locked / "deep" / "run")], tmp_path, capsys)
        assert f"{locked} is not a writable folder" in err


def test_resume_of_what_is_not_a_run_is_refused(tmp_path, capsys, whole_run, monkeypatch):
    err = rejected(["run", "--resume", str(tmp_path / "missing")], tmp_path, capsys)
    assert "not a run folder (a run folder holds sweep.json and environment.json)" in err
    err = rejected(["run", "--resume", str(tmp_path)], tmp_path, capsys)
    assert "not a run folder" in err
    err = rejected(["run", "--resume", str(whole_run), "--sizes", "16"], whole_run, capsys)
    assert "--resume finishes a run with the settings it was started with; drop --sizes" in err

    damaged = tmp_path / "damaged"
    shutil.copytree(whole_run, damaged)
    (damaged / "sweep.json").write_text("{not json")
    err = rejected(["run", "--resume", str(damaged)], tmp_path, capsys)
    assert "damaged sweep.json or environment.json" in err

    monkeypatch.delenv("ARRAYBENCH_BACKENDS", raising=False)  # the run used the faulty backend
    err = rejected(["run", "--resume", str(whole_run)], whole_run, capsys)
    assert "the run used backend faulty, unknown here (known: numpy, torch, jax, numba, cupy)" in err


def test_a_bad_backend_variable_is_one_line_exit_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARRAYBENCH_BACKENDS", "no_such_module:Backend")
    err = rejected([*RUN, "--out", str(tmp_path / "run")], tmp_path, capsys)
    assert "ARRAYBENCH_BACKENDS: cannot import no_such_module:Backend" in err


def test_bad_input_through_the_real_command_line(tmp_path):
    """The same check in a fresh process: ``python -m bench`` itself exits with status 2."""
    for extra, message in (BAD_INPUT["unknown backend"], BAD_INPUT["size zero"], (["--backends"], "expected one")):
        done = bench(*RUN, *extra, "--out", str(tmp_path / "run"))
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and message in done.stderr
    assert list(tmp_path.iterdir()) == []


# --- reading results ---------------------------------------------------------------------------------------


def test_read_csv_names_what_is_wrong_with_a_results_file(tmp_path, whole_run):
    good = (whole_run / "summary.csv").read_text()
    cases = {
        "missing.csv": (None, "no such file"),
        "empty.csv": ("", "is empty"),
        "header.csv": (good.splitlines(keepends=True)[0], "holds no rows"),
        "cut.csv": (good[: len(good) // 2], "truncated (its last line is incomplete)"),
        "short.csv": (good.splitlines(keepends=True)[0] + "run,numpy,manual\n", "truncated or damaged"),
        "foreign.csv": ("name,score\nada,3\n", "not an arraybench summary.csv (missing columns: run_id"),
        "binary.csv": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe\n", "not a readable CSV"),
        "status.csv": (good.replace(",ok,", ",great,", 1), "unknown status great"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(results.ResultsError) as raised:
            results.read_csv(path)
        assert str(path) in str(raised.value) and message in str(raised.value), name


@pytest.mark.slow
def test_the_readme_example_backend_runs_and_agrees_with_the_reference(tmp_path):
    """The minimal backend of docs/adding-a-backend.md, "A backend of your own", loaded through ARRAYBENCH_BACKENDS."""
    readme = (ROOT / "docs" / "adding-a-backend.md").read_text()
    code = readme.split("```python\n# my_backends.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_backends.py").write_text(code)
    env = environment(f"{tmp_path}{os.pathsep}{ROOT}", "my_backends:PurePythonBackend")
    run = tmp_path / "run"
    done = bench(*sweep_args(run, "purepython", "50", "300"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(run)[("purepython", 50, 300)]["status"] == "ok"
