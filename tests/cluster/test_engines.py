"""The engines for real (``make test-cluster``): submitit's local executor, a local Ray, and a single-node
SLURM with accounting (tests/cluster/slurm_node.sh starts it), each running the same 2-shard tiny sweep
through ``bench submit`` and merging it; the documented ``sbatch --array`` script on the same SLURM."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from bench import results, submit
from bench.cli import main
from bench.environment import PROJECT_ROOT
from tests.sweeps import TINY_TUTORIAL, bench_command

pytestmark = pytest.mark.cluster

SBATCH_SCRIPT = PROJECT_ROOT / "docs" / "examples" / "arraybench.sbatch"


def check_merged(folder: Path, machine: str) -> None:
    """The merged folder holds the tiny sweep's 4 configurations, each once and ok, from both shards."""
    summary = results.read_csv(folder)
    keys = Counter(summary[["machine", *results.KEY_COLUMNS]].itertuples(index=False, name=None))
    assert len(keys) == 4 and set(keys.values()) == {1}
    assert (summary["status"] == "ok").all() and set(summary["machine"]) == {machine}
    environment = json.loads((folder / "environment.json").read_text())
    assert set(summary["run_id"]) == {environment["run_id"]}  # one run now
    assert [m.get("shard_index") for m in environment["merged"]] == [0, 1]
    assert len({m["run_id"] for m in environment["merged"]}) == 2  # each shard its own run


def one_at_a_time(folder: Path, count: int = 2) -> None:
    """The shards' runs did not overlap: each wrote its first file after the one before wrote its last."""
    spans = sorted(
        (
            (folder / f"shard-{i}-of-{count}" / "sweep.json").stat().st_mtime,
            max(p.stat().st_mtime for p in (folder / f"shard-{i}-of-{count}").iterdir()),
        )
        for i in range(count)
    )
    assert all(later[0] >= earlier[1] - 0.01 for earlier, later in pairwise(spans)), spans


def test_submitit_local_executor_runs_two_shards(tmp_path: Path) -> None:
    import submitit

    executor = submitit.LocalExecutor(folder=tmp_path / "submitit" / "%j")
    executor.update_parameters(timeout_min=10)

    def engine(tasks, log):
        return submit.run_submitit(executor, tasks, log, "submitit-local", one_at_a_time=True)

    say: list[str] = []
    out = tmp_path / "submit"
    options = {"out": str(out), "machine": "submitit-local"}
    assert submit.submit("slurm", 2, TINY_TUTORIAL, options, say.append, engine=engine) == 0
    assert sum(bool(re.match(r"shard \d/2: submitit-local job \d+ ", line)) for line in say) == 2, say
    check_merged(out / "merged", "submitit-local")


def test_a_local_ray_runs_two_shards_one_per_node_at_a_time(tmp_path: Path, capsys) -> None:
    out = tmp_path / "submit"
    assert main(["submit", "--executor", "ray", "--shards", "2", "--out", str(out), "--", *TINY_TUTORIAL]) == 0
    log = (out / "submit.log").read_text()
    assert len(re.findall(r"shard \d/2: Ray task [0-9a-f]{16,} ", log)) == 2, log
    check_merged(out / "merged", "ray")
    one_at_a_time(out)


@pytest.fixture(scope="module")
def slurm() -> None:
    """A running SLURM: make test-cluster starts one with tests/cluster/slurm_node.sh."""
    if shutil.which("sbatch") is None or subprocess.run(["scontrol", "ping"], capture_output=True).returncode:
        pytest.fail(
            "no SLURM here: start one with tests/cluster/slurm_node.sh start (as root), or run make test-cluster"
        )


def sacct(job: str) -> dict[str, tuple[str, str, str]]:
    """State, start and end of each array task of ``job``, from SLURM's accounting."""
    listing = subprocess.run(
        ["sacct", "-n", "-X", "-j", job, "-o", "JobID,State,Start,End", "--parsable2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("|")[0]: tuple(line.split("|")[1:]) for line in listing.splitlines() if line}


def submit_to_slurm(out: Path, *options: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -m bench submit --executor slurm --shards 2 OPTIONS`` of the tiny sweep into ``out``, in a fresh
    process as a user runs it."""
    command = bench_command(
        "submit", "--executor", "slurm", "--shards", "2", *options, "--out", str(out), "--", *TINY_TUTORIAL
    )
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def test_bench_submit_on_a_real_slurm(slurm, tmp_path: Path) -> None:
    out = tmp_path / "submit"
    done = submit_to_slurm(out, "--time", "10", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = re.findall(r"shard (\d)/2: SLURM job (\d+_\d)", (out / "submit.log").read_text())
    assert [index for index, _ in jobs] == ["0", "1"], done.stdout
    array = {job.split("_")[0] for _, job in jobs}
    assert len(array) == 1  # one job array
    accounting = sacct(array.pop())
    assert {job: accounting[job][0] for _, job in jobs} == {job: "COMPLETED" for _, job in jobs}
    (start0, end0), (start1, end1) = (accounting[job][1:] for _, job in jobs)
    assert start1 >= end0 or start0 >= end1  # --exclusive: one shard on the node at a time
    check_merged(out / "merged", "slurm")
    print(done.stdout)


def test_the_documented_sbatch_array_script_on_a_real_slurm(slurm, tmp_path: Path) -> None:
    out = tmp_path / "plain"
    command = [
        "sbatch",
        "--parsable",
        "--wait",
        "--array=0-1",
        f"--output={tmp_path}/slurm-%A_%a.out",
        f"--export=ALL,PYTHON={sys.executable}",
        str(SBATCH_SCRIPT),
        str(out),
        *TINY_TUTORIAL,
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr + "".join(p.read_text() for p in tmp_path.glob("*.out"))
    job = done.stdout.strip().split(";")[0]
    assert set(sacct(job).values()) >= set() and {s for s, *_ in sacct(job).values()} == {"COMPLETED"}
    assert main(["merge", str(out / "shard-0-of-2"), str(out / "shard-1-of-2"), "--out", str(out / "merged")]) == 0
    summary = results.read_csv(out / "merged")
    assert len(summary) == 4 and (summary["status"] == "ok").all()


def test_a_resubmit_waits_for_the_earlier_jobs_still_in_slurm(slurm, tmp_path: Path) -> None:
    job = subprocess.run(
        ["sbatch", "--parsable", "--array=0-0", f"--output={tmp_path}/sleep-%A_%a.out", "--wrap", "sleep 60"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        log = tmp_path / "submit.log"
        log.write_text(f"2026-01-01T00:00:00Z shard 0/1: SLURM job {job}_0 (output: x)\n")
        alive = submit.slurm_jobs_alive(log)  # 12_0 running, or 12_[0] still pending
        assert alive and all(a.startswith(f"{job}_") for a in alive), alive
    finally:
        subprocess.run(["scancel", job], check=True)
    subprocess.run(["sleep", "2"], check=True)
    assert submit.slurm_jobs_alive(log) == []


def test_a_partition_slurm_refuses_is_one_line_and_exit_2(slurm, tmp_path: Path) -> None:
    out = tmp_path / "submit"
    done = submit_to_slurm(out, "--partition", "no-such-partition", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "SLURM refused the shards: " in done.stderr
    assert "Invalid partition name specified" in done.stderr and not out.exists()
