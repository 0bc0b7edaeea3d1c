"""``bench submit --executor local``: shards one after another, merged; a failed shard kept apart and re-run
alone; what submit refuses before any work. (submitit, SLURM and Ray: tests/cluster, ``make test-cluster``.)"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from bench import results, submit
from bench.cli import main
from tests.sweeps import TINY

NO_THREADS = [o for i, o in enumerate(TINY) if "--threads" not in TINY[max(i - 1, 0) : i + 1]]


def configurations(folder: Path) -> Counter:
    summary = results.read_csv(folder)
    return Counter(summary[["machine", *results.KEY_COLUMNS]].itertuples(index=False, name=None))


@pytest.mark.slow
def test_a_local_three_shard_submit_merges_to_the_unsharded_configurations(tmp_path: Path, capsys) -> None:
    whole = tmp_path / "whole"
    assert main(["run", *TINY, "--machine", "here", "--out", str(whole)]) == 0
    out = tmp_path / "submit"
    argv = ["submit", "--executor", "local", "--shards", "3", "--machine", "here", "--out", str(out), "--", *TINY]
    assert main(argv) == 0
    merged = configurations(out / "merged")
    assert merged == configurations(whole) and set(merged.values()) == {1}
    log = (out / "submit.log").read_text()
    assert "0 finished already, 3 to run" in log and "merged 3 shards (8 configurations)" in log
    assert all((out / f"shard-{i}-of-3" / "sweep.json").is_file() for i in range(3))


@pytest.mark.slow
def test_a_failed_shard_is_named_kept_apart_and_rerun_alone(tmp_path: Path, capsys) -> None:
    out = tmp_path / "submit"

    def breaks_shard_1(tasks, log):
        """The local engine, except that shard 1 gets an option bench run refuses (a real failing run)."""
        broken = [
            submit.Task(t.target, t.folder, (*t.argv, "--repeats", "0")) if t.target.index == 1 else t for t in tasks
        ]
        return {task: outcome for task, outcome in zip(tasks, submit.run_local(broken, log, {}).values(), strict=True)}

    options = {"out": str(out), "machine": "here"}
    say = []
    assert submit.submit("local", 3, TINY, options, say.append, engine=breaks_shard_1) == 1
    failed = [line for line in say if " failed: " in line]
    assert len(failed) == 1 and failed[0].startswith("shard 1/3 failed: bench run exited with status 2")
    assert not (out / "shard-1-of-3").exists() and not (out / "merged").exists()
    done = {i: (out / f"shard-{i}-of-3" / "summary.csv").stat().st_mtime_ns for i in (0, 2)}

    say.clear()
    assert submit.submit("local", 3, TINY, options, say.append) == 0
    assert "2 finished already, 1 to run" in say[0] and say[1].startswith("shard 1/3: running here")
    assert {i: (out / f"shard-{i}-of-3" / "summary.csv").stat().st_mtime_ns for i in (0, 2)} == done
    assert len(configurations(out / "merged")) == 8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--executor", "local", "--shards", "2"], "bench submit wants the bench run options after --"),
        (["--executor", "local", "--shards", "0", "--", *TINY], "--shards must be a whole number of at least 1"),
        (["--executor", "local", "--shards", "2", "--", *TINY, "--shard", "0/2"], "--shard is set by bench submit"),
        (["--executor", "local", "--shards", "2", "--", *NO_THREADS], "--shard 0/2 needs --threads"),
        (["--executor", "local", "--shards", "9", "--", *TINY], "the sweep has 4 series"),
        (["--executor", "pbs", "--shards", "2", "--", *TINY], "invalid choice: 'pbs'"),
    ],
)
def test_submit_refuses_bad_input_before_any_work(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    out = tmp_path / "submit"
    assert main(["submit", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(("executor", "module", "extra"), [("slurm", "submitit", "slurm"), ("ray", "ray", "ray")])
def test_a_missing_engine_is_one_line_and_exit_2(
    tmp_path: Path, capsys, monkeypatch, executor: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the package were not installed
    out = tmp_path / "submit"
    assert main(["submit", "--executor", executor, "--shards", "2", "--out", str(out), "--", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pip install 'arraybench[{extra}]'" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_submit_folder_of_another_sweep_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "submit"
    assert main(["submit", "--executor", "local", "--shards", "2", "--out", str(out), "--", *TINY]) == 0
    assert main(["submit", "--executor", "local", "--shards", "3", "--out", str(out), "--", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a submit of another sweep, shard count or machine" in err
