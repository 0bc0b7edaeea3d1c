"""Faults of the machine around a sweep, through the real command line: an output that cannot be written, a
disk that fills up, two runs on one folder, a folder that was tampered with, the kernel's out-of-memory
killer, a worker whose replies cannot be trusted, and metadata that must never be half-written.

Mounting a tmpfs and making a memory cgroup need root (CI and the development machine run the tests as
root); where they cannot be done, the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bench import results, runfolder
from tests.sweeps import bench_command
from tests.test_reliability import (  # noqa: F401 (whole_run is a fixture)
    ROOT,
    TINY,
    bench,
    default_interrupts,
    environment,
    files_under,
    rows,
    same_results,
    start_bench,
    status_line,
    sweep_args,
    whole_run,
)

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs the tests as root)")


@contextlib.contextmanager
def tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``mountpoint`` (``options``: ``size=32k``, ``ro``) for the block."""
    mountpoint.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def one_line_error(done: subprocess.CompletedProcess, status: int) -> str:
    assert done.returncode == status, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("python -m bench: error: "), done.stderr
    return done.stderr


# --- 1. an output that cannot be written -------------------------------------------------------------------


@pytest.fixture(params=["proc", "sys", "read-only mount", "under a file", "existing folder"])
def unwritable_out(request, tmp_path) -> Iterator[tuple[Path, str]]:
    """An ``--out`` that cannot be a new run folder, and the words that must say why."""
    if request.param == "proc":
        yield Path(f"/proc/arraybench-{uuid.uuid4().hex}"), "/proc is not a writable folder"
    elif request.param == "sys":
        yield Path(f"/sys/arraybench-{uuid.uuid4().hex}"), "/sys is not a writable folder"
    elif request.param == "read-only mount":
        if os.geteuid() != 0:
            pytest.skip("mounting a read-only tmpfs needs root (CI runs the tests as root)")
        with tmpfs(tmp_path / "ro", "ro,size=64k") as mount:
            yield mount / "deep" / "run", f"{mount} is not a writable folder (a read-only file system)"
    elif request.param == "under a file":
        (tmp_path / "a-file").write_text("")
        yield tmp_path / "a-file" / "run", f"{tmp_path / 'a-file'} is not a writable folder (it is a file)"
    else:
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("mine")
        yield tmp_path / "mine", "exists and is not a run folder; choose another --out"


@pytest.mark.slow
def test_an_unwritable_output_is_one_line_exit_2_before_any_work(unwritable_out, tmp_path):
    out, message = unwritable_out
    home = tmp_path / "home"  # the machine probe caches under ~/.cache: it must not have run
    home.mkdir()
    env = {k: v for k, v in environment(backends=None).items() if k != "ARRAYBENCH_CACHE"} | {"HOME": str(home)}
    before = files_under(tmp_path)
    command = bench_command("run", "--backends", "numpy", "--sizes", "16", "--iterations", "10", "--out", str(out))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    err = one_line_error(done, 2)
    assert message in err and done.stdout == ""
    assert files_under(tmp_path) == before and not out.joinpath("sweep.json").exists()
    if not str(out).startswith(str(tmp_path)):
        assert not out.exists()


# --- 2. a disk that fills up -------------------------------------------------------------------------------

FILLING = ("--backends", "numpy", "--sizes", ",".join(map(str, range(16, 36))), "--iterations", "100", *TINY)
"""20 quick configurations, about 1.5 kB of rows each: more than a 32 kB tmpfs holds beside the metadata."""


@pytest.mark.slow
@AS_ROOT
def test_a_full_disk_stops_the_sweep_with_whole_rows_and_resume_completes_it(tmp_path):
    whole = tmp_path / "whole"
    assert bench("run", *FILLING, "--out", str(whole)).returncode == 0
    with tmpfs(tmp_path / "disk", "size=32k") as disk:
        run = disk / "run"
        done = bench("run", *FILLING, "--out", str(run))
        err = one_line_error(done, 3)
        assert f"no space left on the disk writing {run}/" in err and "bytes free on its file system" in err
        assert f"finish with: python -m bench run --resume {run}" in err
        for name in results.FILES.values():  # a failed append was cut back: whole lines only
            data = (run / name).read_bytes()
            assert not data or data.endswith(b"\n"), name
        finished = results.read_csv(run)
        assert 1 <= len(finished) < 20
        determined = [*results.KEY_COLUMNS, "status", "final_loss", "a", "b", "c", "d"]
        expected = results.read_csv(whole)[determined].head(len(finished))
        pd.testing.assert_frame_equal(finished[determined], expected)
        raw = results.read_csv(run, "raw", may_be_empty=True)
        for key in runfolder.keys_of(finished):
            assert runfolder.keys_of(raw).count(key) == 2 * 2, key  # 2 worker processes x 2 repeats

        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)  # space freed
        resumed = bench("run", "--resume", str(run))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"arraybench: {20 - len(finished)} configurations" in resumed.stdout
        assert status_line(resumed.stdout) == "status: 20 ok"
        pd.testing.assert_frame_equal(results.read_csv(run)[determined], results.read_csv(whole)[determined])
        keys = [*results.KEY_COLUMNS, "repeat"]
        pd.testing.assert_frame_equal(results.read_csv(run, "raw")[keys], results.read_csv(whole, "raw")[keys])


@pytest.mark.slow
@AS_ROOT
def test_a_disk_too_full_for_the_metadata_leaves_nothing_half_written(tmp_path):
    """environment.json is written to a temporary file and renamed: a full disk leaves none of it."""
    with tmpfs(tmp_path / "disk", "size=4k") as disk:
        run = disk / "run"
        err = one_line_error(bench("run", *FILLING, "--out", str(run)), 3)
        assert f"no space left on the disk writing {run / 'environment.json'}" in err
        assert "nothing was run" in err and list(disk.iterdir()) == []


@pytest.mark.slow
@AS_ROOT
def test_a_disk_too_full_for_resume_s_repair_is_one_line_and_loses_nothing(tmp_path):
    """--resume first drops the raw and loss rows of a configuration that never reached summary.csv (a run
    killed between its writes) by rewriting the file into a temporary one: a disk too full for that is exit 3,
    one line, and the folder as it was; with space freed the same --resume completes the run."""
    sweep = ("--backends", "numpy", "--sizes", "16,17,18", "--iterations", "100", *TINY)
    whole = tmp_path / "whole"
    assert bench("run", *sweep, "--out", str(whole)).returncode == 0
    with tmpfs(tmp_path / "disk", "size=1m") as disk:
        run = disk / "run"
        shutil.copytree(whole, run)
        summary = (run / "summary.csv").read_bytes()
        (run / "summary.csv").write_bytes(summary[: summary.rstrip(b"\n").rfind(b"\n") + 1])  # the last one unfinished
        before = {path.name: path.read_bytes() for path in run.iterdir()}
        with (disk / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
            while filler.write(b"x" * 4096):  # until the disk is full
                pass
        err = one_line_error(bench("run", "--resume", str(run)), 3)
        assert f"no space left on the disk writing {run}/" in err
        assert f"finish with: python -m bench run --resume {run}" in err
        after = {path.name: path.read_bytes() for path in run.iterdir()}
        assert {name: data for name, data in after.items() if name != ".lock"} == {
            name: data for name, data in before.items() if name != ".lock"
        }  # no temporary file left, every file as it was

        (disk / "filler").unlink()
        resumed = bench("run", "--resume", str(run))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "arraybench: 1 configurations" in resumed.stdout and status_line(resumed.stdout) == "status: 3 ok"
        determined = [*results.KEY_COLUMNS, "status", "final_loss", "a", "b", "c", "d"]
        pd.testing.assert_frame_equal(results.read_csv(run)[determined], results.read_csv(whole)[determined])


def test_metadata_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "environment.json"
    runfolder.write_json(path, {"run_id": "first"})
    assert json.loads(path.read_text()) == {"run_id": "first"}

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(results.DiskFull, match="no space left on the disk writing"):
        runfolder.write_json(path, {"run_id": "second", "big": "x" * 10_000})
    assert json.loads(path.read_text()) == {"run_id": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["environment.json"]  # no temporary file left


def test_a_failed_append_is_cut_back_to_where_it_started(tmp_path, monkeypatch):
    row = {c: 1 for c in results.SUMMARY_COLUMNS} | {"status": "ok"}
    results.append_rows(tmp_path, "summary", [row])
    before = (tmp_path / "summary.csv").read_bytes()
    real_write = os.write

    def fsync(fd: int) -> None:
        real_write(fd, b"half a ro")  # what a short write before ENOSPC leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(results.DiskFull):
        results.append_rows(tmp_path, "summary", [row])
    assert (tmp_path / "summary.csv").read_bytes() == before


# --- 3. one writer per folder ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_run_on_a_folder_being_written_is_refused_and_the_first_is_unharmed(tmp_path):
    run = tmp_path / "run"
    slow = ("--backends", "faulty", "--sizes", "13", "--iterations", "100,200,300,400,500,600,700,800", *TINY)
    first = start_bench("run", *slow, "--out", str(run))
    deadline = time.monotonic() + 60
    while not ((run / "summary.csv").exists() and (run / "summary.csv").read_text().count("\n") >= 2):
        assert first.poll() is None and time.monotonic() < deadline, "the first run ended too soon"
        time.sleep(0.05)
    for argv in (("run", "--resume", str(run)), ("run", *slow, "--out", str(run))):
        err = one_line_error(bench(*argv), 2)
        assert f"{run} is being written by another run (pid {first.pid} on " in err, err
        assert first.poll() is None, "the first run ended before the second was refused: the test proves nothing"
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and status_line(out.decode()) == "status: 8 ok"
    assert len(results.read_csv(run)) == 8 and len(results.read_csv(run, "raw")) == 8 * 2 * 2  # 2 processes x 2


# --- 4. a folder that was tampered with --------------------------------------------------------------------


def foreign_run(folder: Path) -> str:
    summary = pd.read_csv(folder / "summary.csv")
    summary.loc[len(summary) - 1, "run_id"] = "20000101T000000Z-elsewhere"
    summary.to_csv(folder / "summary.csv", index=False)
    return "summary.csv: rows of another run (run_id 20000101T000000Z-elsewhere, not "


def foreign_sweep(folder: Path) -> str:
    for name in ("summary.csv", "raw.csv"):
        frame = pd.read_csv(folder / name)
        frame.loc[frame["iterations"] == 400, "iterations"] = 999
        frame.to_csv(folder / name, index=False)
    return "summary.csv: rows of another sweep (2 configurations not in sweep.json, the first: backend=numpy"


def twice(folder: Path) -> str:
    lines = (folder / "summary.csv").read_text().splitlines(keepends=True)
    (folder / "summary.csv").write_text("".join([*lines, lines[1]]))
    return "summary.csv: line 10: configuration backend=numpy grad=manual mode=eager"


def no_raw_rows(folder: Path) -> str:
    raw = pd.read_csv(folder / "raw.csv")
    raw[raw["iterations"] != 100].to_csv(folder / "raw.csv", index=False)
    return "summary.csv: line 2: backend=numpy grad=manual mode=eager formulation=tutorial device=cpu"


TAMPERED = {
    "another run": foreign_run,
    "another sweep": foreign_sweep,
    "a key twice": twice,
    "no raw rows": no_raw_rows,
}


@pytest.mark.slow
@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_folder_is_refused_by_resume_and_report_and_left_alone(tmp_path, whole_run, tamper):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(whole_run, run)
    message = tamper(run)
    before = {name: info for name, info in files_under(run).items() if name != runfolder.LOCK}
    for argv in (("run", "--resume", str(run)), ("report", str(run))):
        err = one_line_error(bench(*argv), 2)
        assert f"{run}/" in err and message in err, (argv, err)
    assert {name: info for name, info in files_under(run).items() if name != runfolder.LOCK} == before


# --- 5. the kernel's out-of-memory killer ------------------------------------------------------------------

LIMIT_BYTES = 512 * 2**20


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A memory cgroup limited to LIMIT_BYTES (v2's memory.max, else v1's memory.limit_in_bytes); its
    ``cgroup.procs``. Skipped with the reason where neither can be made."""
    name = f"arraybench-test-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup")
    tried = []
    candidates = []
    control = v2 / "cgroup.subtree_control"
    if control.is_file() and "memory" in control.read_text().split():
        candidates.append((v2 / name, "memory.max"))
    candidates.append((Path("/sys/fs/cgroup/memory") / name, "memory.limit_in_bytes"))
    for folder, limit in candidates:
        try:
            folder.mkdir()
        except OSError as error:
            tried.append(f"{folder}: {error.strerror}")
            continue
        try:
            (folder / limit).write_text(str(LIMIT_BYTES))
        except OSError as error:
            folder.rmdir()
            tried.append(f"{folder / limit}: {error.strerror}")
            continue
        try:
            yield folder / "cgroup.procs"
        finally:
            deadline = time.monotonic() + 10
            while (folder / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
                time.sleep(0.1)
            folder.rmdir()
        return
    pytest.skip(f"no memory cgroup can be made here ({'; '.join(tried) or 'no cgroup v1 or v2 memory controller'})")


@pytest.mark.slow
def test_a_worker_the_oom_killer_ends_is_oom_with_the_evidence_and_larger_sizes_are_skipped(tmp_path, memory_cgroup):
    run = tmp_path / "run"

    def enter_cgroup() -> None:
        default_interrupts()
        memory_cgroup.write_text(str(os.getpid()))

    done = bench(*sweep_args(run, "faulty", "16,17,24", "100"), timeout=300, preexec_fn=enter_cgroup)
    assert done.returncode == 1, done.stdout + done.stderr
    got = rows(run)
    assert got[("faulty", 16, 100)]["status"] == "ok"
    oom = got[("faulty", 17, 100)]
    assert oom["status"] == "oom", oom["reason"]
    assert "worker killed by SIGKILL from the kernel's out-of-memory killer" in oom["reason"]
    assert "oom_kill" in oom["reason"] or "kernel log: " in oom["reason"], oom["reason"]
    skipped = got[("faulty", 24, 100)]
    assert skipped["status"] == "skipped" and "n=17 of this variant already ran out of memory" in skipped["reason"]
    assert status_line(done.stdout) == "status: 1 ok, 1 skipped, 1 oom"


# --- 6. a worker whose replies cannot be trusted -----------------------------------------------------------


@pytest.mark.slow
def test_a_lying_worker_gives_failed_rows_and_the_sweep_goes_on_with_a_fresh_one(tmp_path):
    run = tmp_path / "run"
    done = bench(*sweep_args(run, "faulty", "18,19,20,21,16", "100"))
    assert done.returncode == 1, done.stdout + done.stderr
    got = rows(run)
    expected = {
        18: ("failed", "a broken reply from the worker: the reply is not JSON"),
        19: ("failed", "a broken reply from the worker: the reply answers request 0, not the current request 2"),
        20: ("failed", "a broken reply from the worker: the reply: weights is [['"),
        21: ("ok", ""),  # chatter on stdout, Python's and fd 1's, goes to stderr: harmless
        16: ("ok", ""),
    }
    for n, (status, phrase) in expected.items():
        row = got[("faulty", n, 100)]
        assert row["status"] == status and phrase in str(row["reason"]), (n, row["reason"])
    assert status_line(done.stdout) == "status: 2 ok, 3 failed"
