"""The fit across devices: blocks, one collective per iteration, agreement with the reference, faults.

The sweeps run through the real command line, runner, worker and rank processes at n = 10^5 with a non-round
iteration count: JAX over 1, 2 and 4 host devices in one process and over 2 processes x 2 devices
(jax.distributed on loopback), PyTorch's gloo ranks at world 1 and 2. No timing is asserted.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from backends.contract import Problem, Shard, Variant, block_bounds, linspace_block
from backends.reference import reference_fit
from bench import results
from bench.cli import main
from bench.config import Configuration, Sweep
from bench.protocol import Request
from bench.ranks import core_shares, free_port, run_group
from bench.rows import rows_for
from tests.availability import backend_or_skip
from tests.sweeps import bench_command
from tests.synthetic import NUMPY_LOOP

ROOT = Path(__file__).resolve().parent.parent
N = 100_000
ITERATIONS = 137


def configuration(backend: str, variant: Variant, world: int, dtype: str = "float64", n: int = N) -> Configuration:
    return Configuration(
        backend, variant.grad, variant.mode, "cpu", dtype, n, ITERATIONS, None, 0, 2, variant.formulation, world
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [4, 5, 777, 100_003])
def test_blocks_concatenate_to_linspace_bit_for_bit(n: int, dtype: str) -> None:
    full = np.linspace(-math.pi, math.pi, n, dtype=dtype)
    problem = Problem(n=n, dtype=dtype)
    for world in (1, 2, 3, 4, 7):
        bounds = [block_bounds(n, world, i) for i in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        blocks = [problem.x_and_y_block(*b) for b in bounds]
        x = np.concatenate([b[0] for b in blocks])
        assert x.dtype == full.dtype and x.tobytes() == full.tobytes()
        assert np.concatenate([b[1] for b in blocks]).tobytes() == np.sin(full).tobytes()
    assert linspace_block(n, n, n, dtype).size == 0


def test_core_shares_are_disjoint_until_the_cores_run_out() -> None:
    assert core_shares([0, 1, 2, 3], 2) == [[0, 1], [2, 3]]
    assert core_shares([4, 5], 2) == [[4], [5]]
    assert core_shares([0, 1], 4) == [[0], [1], [0], [1]]


def test_sweep_spreads_only_distributed_variants(monkeypatch) -> None:
    plain, spread = Variant("manual", "eager"), Variant("manual", "jit-loop", "tuned", distributed=True)
    sweep = Sweep(backends=("b",), devices=("cpu",), dtypes=("float64",), points=((1000, 10),), worlds=(1, 2, 4))
    configs = sweep.configurations({"b": (plain, spread)})
    assert [(c.mode, c.world) for c in configs] == [("eager", 1), ("jit-loop", 1), ("jit-loop", 2), ("jit-loop", 4)]
    assert len({c.key for c in configs}) == 4


def test_worlds_option_is_checked(capsys) -> None:
    assert main(["run", "--backends", "numpy", "--worlds", "0", "--out", "/nonexistent/x"]) == 2
    assert "a world must be a whole number of at least 1" in capsys.readouterr().err


def test_runs_before_the_world_axis_read_as_world_1(tmp_path: Path) -> None:
    row = {c: "" for c in results.SUMMARY_COLUMNS if c not in results.ADDED_COLUMNS}
    row.update(NUMPY_LOOP, n=1000, iterations=10, status="ok")
    pd.DataFrame([row]).to_csv(tmp_path / "summary.csv", index=False)
    summary = results.read_csv(tmp_path / "summary.csv")
    assert summary["world"].tolist() == [1] and summary["allreduce_us"].isna().all()


def jax_program_text(world: int) -> str:
    """The compiled HLO of JAX's fit across ``world`` host devices, from a fresh process that has them."""
    script = textwrap.dedent(f"""
        from backends.contract import Problem, Shard
        from backends.jax_backend import JaxBackend
        backend, problem = JaxBackend(), Problem(n=1000, iterations=7)
        program, args = backend.sharded_program(problem, "cpu", Shard({world}))
        with backend.settings(problem):
            print(program.lower(*args).compile().as_text())
    """)
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={world}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def computations(hlo: str) -> dict[str, str]:
    """Each computation of an HLO module's text by name (``%name (...) -> ... {`` up to its closing ``}``)."""
    found = {}
    for match in re.finditer(r"^(?:ENTRY )?%?([\w.\-]+) [^\n]*\{\n(.*?)^\}", hlo, flags=re.S | re.M):
        found[match.group(1)] = match.group(2)
    return found


@pytest.mark.slow
def test_jax_program_has_one_all_reduce_inside_the_loop_body() -> None:
    """Not the moments reduced once and a 4x4 iteration: the collective sits in the scan's while body."""
    hlo = jax_program_text(2)
    bodies = re.findall(r"while\([^\n]*body=%?([\w.\-]+)", hlo)
    assert len(bodies) == 1
    parts = computations(hlo)
    assert hlo.count(" all-reduce(") == 1
    assert parts[bodies[0]].count(" all-reduce(") == 1


def test_torch_calls_all_reduce_once_per_iteration(monkeypatch) -> None:
    backend_or_skip("torch")
    import torch

    from backends.torch_backend import TorchBackend

    backend = TorchBackend()
    shard = Shard(1, coordinator=f"127.0.0.1:{free_port()}")
    backend.join(shard, "cpu", 60)
    try:
        calls = []
        real = backend.dist.all_reduce
        monkeypatch.setattr(backend.dist, "all_reduce", lambda tensor: calls.append(tensor.numel()) or real(tensor))
        problem = Problem(n=1000, iterations=37)
        result = backend.prepare_shard(problem, Variant("manual", "eager", "tuned"), "cpu", shard)()
        assert calls == [5] * 37
        assert np.allclose(result.weights, reference_fit(problem).weights, rtol=0, atol=1e-12)
    finally:
        torch.distributed.destroy_process_group()


def bench_run(tmp_path: Path, backend: str, *args: str, env: dict | None = None) -> pd.DataFrame:
    """The summary of ``python -m bench run`` of ``backend`` with ``args`` (one repeat on the CPU), in a fresh
    process, into the folder named after the backend."""
    folder = tmp_path / backend
    command = bench_command(
        "run", "--backends", backend, "--devices", "cpu", "--repeats", "1", "--no-probe", "--out", str(folder), *args
    )
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert (folder / "summary.csv").is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return results.read_csv(folder / "summary.csv")


GRID = ("--sizes", str(N), "--iterations", str(ITERATIONS), "--dtypes", "float32,float64")
ACROSS_WORLDS = ("--worlds", "1,2,4", "--formulations", "tuned", "--grads", "manual")
"""The tuned formulation with manual gradients (the variants that run across devices) at worlds 1, 2 and 4."""


@pytest.mark.slow
def test_jax_across_1_2_and_4_host_devices_agrees_with_the_reference(tmp_path: Path) -> None:
    backend_or_skip("jax")
    summary = bench_run(tmp_path, "jax", *ACROSS_WORLDS, "--modes", "jit-loop", *GRID)
    assert sorted(zip(summary["world"], summary["dtype"], summary["status"], strict=True)) == [
        (w, dtype, "ok") for w in (1, 2, 4) for dtype in ("float32", "float64")
    ], summary[["world", "dtype", "status", "reason"]].to_string()
    spread = summary[summary["world"] > 1]
    assert (spread["allreduce_us"] > 0).all() and (spread["local_us"] > 0).all()
    assert spread["note"].str.contains("in 1 processes").all()


@pytest.mark.slow
def test_torch_gloo_ranks_agree_with_the_reference_and_skip_beyond_the_cores(tmp_path: Path) -> None:
    backend_or_skip("torch")
    summary = bench_run(tmp_path, "torch", *ACROSS_WORLDS, "--modes", "eager", "--threads", "2", *GRID)
    table = summary[["world", "dtype", "status", "reason"]].to_string()
    by_world = summary.groupby("world")["status"].agg(set).to_dict()
    assert by_world[1] == {"ok"} and by_world[2] == {"ok"}, table
    cores = len(os.sched_getaffinity(0))
    assert by_world[4] == ({"skipped"} if cores < 4 else {"ok"}), table
    four = summary[summary["world"] == 4]
    assert cores >= 4 or four["reason"].str.contains(f"more than the {cores} usable cores").all(), table
    assert (summary[summary["world"] == 2]["allreduce_us"] > 0).all()


@pytest.mark.slow
def test_jax_across_two_processes_of_two_devices_agrees_with_the_reference() -> None:
    """The multi-host path: jax.distributed on loopback, each process driving two host devices."""
    backend_or_skip("jax")
    from backends.jax_backend import JaxBackend

    config = configuration("jax", Variant("manual", "jit-loop", "tuned"), 4)
    reply = run_group(JaxBackend(), Request(7, config, 1, math.inf, timeout_s=240), processes=2)
    assert reply.status == "ran" and reply.id == 7, reply.reason
    assert "4 devices in 2 processes" in reply.note
    row = rows_for(config, [reply], "run", "host")["summary"][0]
    assert row["status"] == "ok", row["reason"]


def faulty_environment(tag: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARRAYBENCH_BACKENDS": "tests.faulty_backend:FaultyBackend"}
    env["ARRAYBENCH_TEST_TAG"] = tag
    return env


def leftover_processes(tag: str) -> list[psutil.Process]:
    """Processes still alive that inherited this test's tag (a worker or rank that outlived the sweep)."""
    left = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("ARRAYBENCH_TEST_TAG") == tag:
                left.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return left


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "status", "words"),
    [(14, "failed", "rank 1 of 2 exited with status 3"), (15, "timeout", "rank 1 at File")],
)
def test_a_dead_or_hung_rank_ends_its_group_and_the_sweep_goes_on(
    tmp_path: Path, n: int, status: str, words: str
) -> None:
    backend_or_skip("torch")
    tag = uuid.uuid4().hex
    summary = bench_run(
        tmp_path,
        "faulty",
        "--worlds",
        "2",
        "--sizes",
        f"{n},44",
        "--iterations",
        "137",
        "--dtypes",
        "float64",
        "--timeout",
        "20",
        env=faulty_environment(tag),
    )
    rows = summary.set_index("n")
    assert rows.loc[n, "status"] == status and words in rows.loc[n, "reason"], rows.loc[n, "reason"]
    if status == "timeout":
        assert "faulty_backend.py" in rows.loc[n, "reason"]
    assert rows.loc[44, "status"] == "ok", rows.loc[44, "reason"]
    assert leftover_processes(tag) == []


def synthetic_summary() -> pd.DataFrame:
    """World 1, 2 and 4 rows of one variant at two sizes, with times that follow T1(n / world) + A."""
    rows = []
    for n in (100_000, 1_000_000):
        for world in (1, 2, 4):
            local = 10 + n / world * 1e-3
            allreduce = 0.0 if world == 1 else 20.0 * world
            row = {c: math.nan for c in results.SUMMARY_COLUMNS}
            row.update(
                backend="jax",
                grad="manual",
                mode="jit-loop",
                formulation="tuned",
                form="horner-reduce",
                device="cpu",
                dtype="float64",
                n=n,
                iterations=100,
                world=world,
                threads=2,
                status="ok",
                us_per_iter=local + allreduce,
                allreduce_us=allreduce if world > 1 else math.nan,
                local_us=local if world > 1 else math.nan,
            )
            rows.append(row)
    return pd.DataFrame(rows)


def test_scaling_sections_read_the_rows_and_warn_when_devices_share_cores(tmp_path: Path) -> None:
    from bench.world_scaling import crossover_sizes, one_device, plot_strong_scaling, world_sections

    summary = synthetic_summary()
    assert set(one_device(summary)["world"]) == {1}
    strong, weak, crossover = world_sections(summary)
    at_a_million = [row for row in strong.rows if row[1] == "1,000,000"]
    assert [row[3] for row in at_a_million] == ["1", "2", "4"]
    t1, t2 = 10 + 1000.0, 10 + 500.0 + 40
    assert at_a_million[1][5] == f"{t1 / t2:.2f}x" and at_a_million[1][6] == f"{t1 / t2 / 2:.0%}"
    assert "World 4 exceeds the 2 cores" in strong.note and "World 4" in weak.note
    # Weak: world 2 at 10^6 holds 500,000 per device; one device's time there is the group's own (local_us).
    weak_row = next(row for row in weak.rows if row[1] == "500,000")
    assert weak_row[2:5] == ["2", "1,000,000", "100"] and weak_row[-1] == "the group"
    assert weak_row[7] == f"{(10 + 500.0) / (10 + 500.0 + 40):.0%}"
    assert [row[1] for row in crossover.rows] == ["2", "4"]
    # o = 10 us, e = 1e-3 us per element, A = 40 us at world 2: pays from n = 40 / (1e-3 / 2) = 80,000.
    pays, efficient = crossover_sizes(10, 1e-3, 40, 2)
    assert pays == pytest.approx(80_000) and efficient == pytest.approx((0.8 * 10 + 1.8 * 40) / 1e-4)
    assert crossover.rows[0][3] == "80,000"
    assert plot_strong_scaling(summary, tmp_path) == tmp_path / "strong_scaling.png"
    assert world_sections(one_device(summary)) == []
