"""The floor formula on numbers worked out by hand, the machine probe's figures on a tiny run, and the
probe's instruction mixes against the tuned kernel's generated code."""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from bench import probe, roofline
from bench.config import Configuration
from bench.runner import cpu_working_sets
from tests.availability import backend_or_skip

PROBE = {
    "read": [
        {"threads": 1, "bytes": 16_384, "gb_per_s": 100.0},
        {"threads": 1, "bytes": 1_048_576, "gb_per_s": 40.0},
        {"threads": 2, "bytes": 16_384, "gb_per_s": 10.0},
        {"threads": 2, "bytes": 1_048_576, "gb_per_s": 80.0},
    ],
    "arithmetic": [
        {"threads": 1, "dtype": "float64", "mix": "fused", "vector_bits": 512, "gelem_per_s": 0.5},
        {"threads": 1, "dtype": "float64", "mix": "powers", "vector_bits": 512, "gelem_per_s": 0.8},
        {"threads": 2, "dtype": "float64", "mix": "fused", "vector_bits": 512, "gelem_per_s": 1.6},
        {"threads": 1, "dtype": "float32", "mix": "fused", "vector_bits": 512, "gelem_per_s": 1.6},
        {"threads": 2, "dtype": "float32", "mix": "fused", "vector_bits": 512, "gelem_per_s": 3.2},
    ],
}


def test_floor_is_the_larger_of_memory_and_arithmetic_time() -> None:
    # n = 1000 float64: 16,000 bytes; at 0.5e9 elements/s the arithmetic takes 2 us.
    assert roofline.bytes_per_iteration(1000, 8) == 16_000
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=16.0, gelem_per_s=1e9) == pytest.approx(1.0)  # memory
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=1e9, gelem_per_s=0.5) == pytest.approx(2.0)  # arithmetic
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=8.0, gelem_per_s=0.5) == pytest.approx(2.0)
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=4.0, gelem_per_s=0.5) == pytest.approx(4.0)


def test_achieved_bandwidth() -> None:
    # 10^6 float32 elements: 8 MB per iteration; in 1 ms that is 8 GB/s.
    assert roofline.achieved_gb_per_s(1_000_000, 4, us_per_iter=1000.0) == pytest.approx(8.0)


def test_bandwidth_is_interpolated_in_log_size_and_held_beyond_the_ends() -> None:
    points = [(1024, 100.0), (4096, 50.0)]
    assert roofline.bandwidth_at(2048, points) == pytest.approx(75.0)  # halfway in log2
    assert roofline.bandwidth_at(100, points) == 100.0
    assert roofline.bandwidth_at(1 << 30, points) == 50.0
    with pytest.raises(ValueError):
        roofline.bandwidth_at(2048, [])


def test_machine_floor_takes_the_best_thread_count_allowed_and_the_fastest_mix() -> None:
    # n = 1024 float64: 16,384 bytes (the first probe point); 1 thread at the faster mix, 0.8e9 elements/s:
    # max(16384 / 100e9, 1024 / 0.8e9) s = 1.28 us; 2 threads: max(1.6384, 0.64) us.
    assert roofline.machine_floor_us(PROBE, 1024, "float64", 8, threads=2) == pytest.approx(1.28)
    # n = 65536 float64: 1 MiB. 1 thread: max(26.2, 81.92) us; 2 threads: max(13.1, 40.96) us.
    assert roofline.machine_floor_us(PROBE, 65_536, "float64", 8, threads=2) == pytest.approx(40.96)
    assert roofline.machine_floor_us(PROBE, 65_536, "float64", 8, threads=1) == pytest.approx(81.92)
    # Two threads at 1.6e9 measured, but one thread's 0.8e9 powers rate scaled to two is as fast: max(13.1,
    # 40.96) us; a busy probe's two-thread figure (0.1e9) does not raise the floor.
    busy = {**PROBE, "arithmetic": [*PROBE["arithmetic"][:2], {**PROBE["arithmetic"][2], "gelem_per_s": 0.1}]}
    assert roofline.machine_floor_us(busy, 65_536, "float64", 8, threads=2) == pytest.approx(40.96)
    assert math.isnan(roofline.machine_floor_us(None, 1024, "float64", 8, threads=2))
    assert math.isnan(roofline.machine_floor_us({"error": "no numba"}, 1024, "float64", 8, threads=2))
    older = {**PROBE, "arithmetic": [{"threads": 1, "dtype": "float64", "gflop_per_s": 70.0}]}
    assert math.isnan(roofline.machine_floor_us(older, 1024, "float64", 8, threads=1))  # another measure


def test_probe_figures_are_positive_and_plausible() -> None:
    backend_or_skip("numba")
    figures = probe.measure(threads=2, sizes=(16 * 1024, 1 << 20), target_s=0.002, rounds=1, arithmetic_rounds=1)
    assert {row["bytes"] for row in figures["read"]} == {16 * 1024, 1 << 20}
    for row in figures["read"]:
        # One thread: from a busy shared core to any cache there is. Several threads on a tiny working set
        # measure the start of a parallel region, which a loaded machine can stretch to milliseconds: only
        # positive (the floor takes the best thread count, so such a figure never lowers the floor).
        low = 0.05 if row["threads"] == 1 else 0.0
        assert low < row["gb_per_s"] < 10_000, row
    assert {row["dtype"] for row in figures["arithmetic"]} == {"float64", "float32"}
    assert {row["mix"] for row in figures["arithmetic"]} == {mix.name for mix in roofline.MIXES}
    for row in figures["arithmetic"]:
        assert 0.001 < row["gelem_per_s"] < 10_000, row  # a shared core at its worst to any CPU there is
    assert figures["version"] == probe.PROBE_VERSION


def test_probe_reuses_a_fresh_cache_and_ignores_a_stale_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARRAYBENCH_CACHE", str(tmp_path))
    facts = {"host": "h", "cpu_model": "c", "packages": {"numba": "0"}}
    path = tmp_path / f"probe-{probe.cache_key(facts, 2)}.json"
    path.write_text(json.dumps({**PROBE, "measured_at": time.time()}))
    assert probe.probe(2, facts)["cached"] is True

    calls = []
    monkeypatch.setattr(probe.subprocess, "run", lambda *a, **k: calls.append(a) or _Done())
    path.write_text(json.dumps({**PROBE, "measured_at": time.time() - 2 * probe.CACHE_SECONDS}))
    fresh = probe.probe(2, facts)
    assert calls and fresh["cached"] is False and fresh["read"] == PROBE["read"]
    assert probe.cache_key(facts, 2) != probe.cache_key(facts, 1)


def test_probe_measures_the_runs_own_working_sets_up_to_the_ladders_top(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARRAYBENCH_CACHE", str(tmp_path))
    commands = []
    monkeypatch.setattr(probe.subprocess, "run", lambda command, **_: commands.append(command) or _Done())
    probe.probe(2, {"host": "h"}, working_sets={8_000, 160_000_000, 10**10})
    measured = {int(size) for size in commands[0][commands[0].index("bench.probe") + 2 :]}
    assert measured == {*probe.LADDER, 8_000, 160_000_000}
    assert probe.cache_key({}, 2, probe.sizes_to_measure([8_000])) != probe.cache_key({}, 2)


def test_cpu_working_sets_are_the_bytes_of_x_and_y() -> None:
    cpu = dict(grad="manual", mode="eager", device="cpu", iterations=10, learning_rate=None, seed=0, threads=2)
    configs = [
        Configuration("numpy", **cpu, dtype="float32", n=1000),
        Configuration("numpy", **cpu, dtype="float64", n=1000),
        Configuration("torch", **{**cpu, "device": "gpu"}, dtype="float64", n=10**6),
    ]
    assert cpu_working_sets(configs) == {8_000, 16_000}


def test_a_measured_working_set_gives_its_own_bandwidth_not_an_interpolation() -> None:
    cliff = [(64 << 20, 48.0), (160_000_000, 24.0), (256 << 20, 22.0)]
    assert roofline.bandwidth_at(160_000_000, cliff) == 24.0
    assert roofline.bandwidth_at(160_000_000, [cliff[0], cliff[2]]) > 30  # what interpolation alone would say


def hot_loop_mix(assembly: str) -> tuple[dict[str, int], set[str]]:
    """The vector multiply-adds, multiplies and adds (subtractions included) of the innermost loop with the
    most multiply-adds in x86 assembly (AT&T syntax, as LLVM prints it), and the vector registers they use.

    A loop is the code from a label to a later jump back to it; of the loops with the most multiply-adds
    (an outer loop holds its inner loop's), the shortest.
    """
    lines = assembly.splitlines()
    labels = {m[1]: i for i, line in enumerate(lines) if (m := re.match(r"^(\.LBB\w+):", line))}
    loops = []
    for end, line in enumerate(lines):
        target = re.match(r"^\s+j\w+\s+(\.LBB\w+)", line)
        if target and labels.get(target[1], end) < end:
            loops.append(lines[labels[target[1]] + 1 : end])
    patterns = {"fma": r"vfn?m(add|sub)(132|213|231)p[sd]", "mul": r"vmulp[sd]", "add": r"v(add|sub)p[sd]"}

    def count(body):
        found = {kind: 0 for kind in patterns}
        registers = set()
        for line in body:
            for kind, pattern in patterns.items():
                if re.match(rf"^\s+{pattern}\s", line):
                    found[kind] += 1
                    registers |= set(re.findall(r"%([xyz]mm)\d+", line))
        return found, registers

    counted = [(*count(body), len(body)) for body in loops]
    most = max(found["fma"] for found, _, _ in counted)
    found, registers, _ = min((c for c in counted if c[0]["fma"] == most), key=lambda c: c[2])
    return found, registers


def per_vector(found: dict[str, int], mix: roofline.Mix) -> int:
    """How many vectors one trip of the loop handles if its counts are that many times the mix's, else 0."""
    trips = found["fma"] // mix.fma
    same = found == {"fma": trips * mix.fma, "mul": trips * mix.mul, "add": trips * mix.add}
    return trips if trips and same else 0


WIDEST_REGISTER = {128: "xmm", 256: "ymm", 512: "zmm"}

KERNEL_ASSEMBLY = """
import json, sys
from backends.numba_backend import widest_vectors
widest_vectors()  # as a worker does before Numba is imported
import numba, numpy as np
from backends import numba_kernels
sums = numba_kernels._block_sums
copy = numba.njit(**{**sums.targetoptions, "cache": False})(sums.py_func)  # cached code cannot be inspected
out = {}
for dtype in (np.float64, np.float32):
    x = np.linspace(0.5, 1.0, 4096).astype(dtype)
    copy(x, x, *(dtype(0.5),) * 4)
    out[np.dtype(dtype).name] = copy.inspect_asm(copy.signatures[-1])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def kernel_assembly() -> dict[str, str]:
    """The tuned Numba kernel's generated code per dtype, compiled in a child process as a worker compiles it."""
    backend_or_skip("numba")
    done = subprocess.run([sys.executable, "-c", KERNEL_ASSEMBLY], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86 assembly")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_probes_fused_mix_is_the_tuned_kernels_generated_code(kernel_assembly, dtype) -> None:
    from bench.probe_kernels import host_target, vector_widths

    found, registers = hot_loop_mix(kernel_assembly[dtype])
    assert per_vector(found, roofline.FUSED), f"{found} is not a multiple of {roofline.FUSED}"
    widest = max(vector_widths(host_target()[1]))
    assert registers == {WIDEST_REGISTER[widest]}, "the kernel is not at the widest vectors the probe measures"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86 assembly")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_probes_arithmetic_kernels_issue_their_mix_at_their_width(dtype) -> None:
    backend_or_skip("numba")  # llvmlite, numba's compiler
    from bench.probe_kernels import CHAINS, mix_kernels

    kernels = mix_kernels(dtype)
    assert {(kernel.mix, kernel.bits) for kernel in kernels} >= {(mix, 128) for mix in roofline.MIXES}
    for kernel in kernels:
        found, registers = hot_loop_mix(kernel.assembly)
        assert per_vector(found, kernel.mix) == CHAINS, (kernel.mix, kernel.bits, found)
        assert registers == {WIDEST_REGISTER[kernel.bits]}, (kernel.mix, kernel.bits, registers)
        data = kernel.data()
        kernel.run(2, data)
        assert np.isfinite(data[1]).all() and data[1].any()


class _Done:
    returncode = 0
    stdout = json.dumps(PROBE)
    stderr = ""


def test_hot_loop_counts_catch_a_mix_that_drifted() -> None:
    loop = ["vfmadd213pd %zmm1, %zmm2, %zmm3"] * 5 + ["vmulpd %zmm1, %zmm2, %zmm4"] * 2 + ["vaddpd %zmm1, %zmm5, %zmm5"]
    assembly = "\n".join(["f:", ".LBB0_1:", *(f"\t{line}" for line in loop), "\tjne\t.LBB0_1", "\tretq"])
    found, registers = hot_loop_mix(assembly)
    assert found == {"fma": 5, "mul": 2, "add": 1} and registers == {"zmm"}
    assert per_vector(found, roofline.FUSED) == 0  # 1 add where the mix has 4
    assert per_vector({"fma": 10, "mul": 4, "add": 8}, roofline.FUSED) == 2


def test_check_floor_fails_on_a_row_under_the_threshold(tmp_path, capsys) -> None:
    from bench import check_floor

    row = dict(backend="numba", grad="manual", mode="jit-loop", formulation="tuned", dtype="float64", n=100)
    rows = [
        {**row, "status": "ok", "us_per_iter": 1.0, "floor_us": 0.5, "x_floor": 2.0},
        {**row, "mode": "jit-loop-parallel", "status": "ok", "us_per_iter": 2.0, "floor_us": 0.5, "x_floor": 4.0},
        {**row, "n": 1000, "status": "ok", "us_per_iter": 0.9, "floor_us": 1.0, "x_floor": 0.9},
        {**row, "n": 1000, "status": "failed", "us_per_iter": math.nan, "floor_us": math.nan, "x_floor": math.nan},
    ]
    path = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert check_floor.main(["--summary", str(path)]) == 1
    out = capsys.readouterr().out
    assert "n=1000 numba manual/jit-loop tuned: x_floor 0.900" in out and "FAILED" in out
    assert check_floor.main(["--summary", str(path), "--threshold", "0.85"]) == 0
    table, under, passed = check_floor.verdict(pd.DataFrame(rows[:2]), 0.95)
    assert passed and not under and "jit-loop tuned" in table[1] and "2.000" in table[1]  # the fastest of n=100
    assert not check_floor.verdict(pd.DataFrame(rows[3:]), 0.95)[2]  # nothing to check is no pass


def test_one_threads_bandwidth_is_at_least_its_best_at_a_larger_working_set() -> None:
    dip = [(16_384, 200.0), (65_536, 50.0), (262_144, 100.0), (1 << 20, 30.0)]  # 50: a slow spell
    assert roofline.at_least_as_fast_as_larger(dip) == [
        (16_384, 200.0),
        (65_536, 100.0),
        (262_144, 100.0),
        (1 << 20, 30.0),
    ]
    # n = 4096 float64 reads 65,536 bytes: at 100 GB/s (not the dip's 50) 0.655 us, over the arithmetic's 0.41.
    probe_record = {
        "read": [{"threads": 1, "bytes": b, "gb_per_s": r} for b, r in dip],
        "arithmetic": [{"threads": 1, "dtype": "float64", "gelem_per_s": 10.0}],
    }
    assert roofline.machine_floor_us(probe_record, 4096, "float64", 8, threads=1) == pytest.approx(0.65536)
