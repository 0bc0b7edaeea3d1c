"""The floor formula on numbers worked out by hand, and the machine probe's figures on a tiny run."""

from __future__ import annotations

import json
import math
import time

import pytest

from bench import probe, roofline
from bench.config import Configuration
from bench.runner import cpu_working_sets

PROBE = {
    "read": [
        {"threads": 1, "bytes": 16_384, "gb_per_s": 100.0},
        {"threads": 1, "bytes": 1_048_576, "gb_per_s": 40.0},
        {"threads": 2, "bytes": 16_384, "gb_per_s": 10.0},
        {"threads": 2, "bytes": 1_048_576, "gb_per_s": 80.0},
    ],
    "arithmetic": [
        {"threads": 1, "dtype": "float64", "gflop_per_s": 16.0},
        {"threads": 2, "dtype": "float64", "gflop_per_s": 32.0},
        {"threads": 1, "dtype": "float32", "gflop_per_s": 32.0},
        {"threads": 2, "dtype": "float32", "gflop_per_s": 64.0},
    ],
}


def test_floor_is_the_larger_of_memory_and_arithmetic_time() -> None:
    # n = 1000 float64: 16,000 bytes and 11,000 operations; 4 GFLOP/s as BLAS counts is 2e9 operations/s.
    assert roofline.bytes_per_iteration(1000, 8) == 16_000
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=16.0, gflop_per_s=1e9) == pytest.approx(1.0)  # memory
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=1e9, gflop_per_s=4.0) == pytest.approx(5.5)  # arithmetic
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=4.0, gflop_per_s=4.0) == pytest.approx(5.5)
    assert roofline.floor_us(1000, 8, bandwidth_gb_per_s=2.0, gflop_per_s=4.0) == pytest.approx(8.0)


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


def test_machine_floor_takes_the_best_thread_count_allowed() -> None:
    # n = 1024 float64: 16,384 bytes (the first probe point), 11,264 operations; 16 GFLOP/s = 8e9 operations/s.
    # 1 thread: max(16384 / 100e9, 11264 / 8e9) s = 1.408 us; 2 threads: max(1.6384, 0.704) us.
    assert roofline.machine_floor_us(PROBE, 1024, "float64", 8, threads=2) == pytest.approx(1.408)
    # n = 65536 float64: 1 MiB, 720,896 operations. 1 thread: max(26.2, 90.1) us; 2 threads: max(13.1, 45.1) us.
    assert roofline.machine_floor_us(PROBE, 65_536, "float64", 8, threads=2) == pytest.approx(45.056)
    assert roofline.machine_floor_us(PROBE, 65_536, "float64", 8, threads=1) == pytest.approx(90.112)
    assert math.isnan(roofline.machine_floor_us(None, 1024, "float64", 8, threads=2))
    assert math.isnan(roofline.machine_floor_us({"error": "no numba"}, 1024, "float64", 8, threads=2))


def test_probe_figures_are_positive_and_plausible() -> None:
    pytest.importorskip("numba")
    figures = probe.measure(threads=2, sizes=(16 * 1024, 1 << 20), target_s=0.002, rounds=1)
    assert {row["bytes"] for row in figures["read"]} == {16 * 1024, 1 << 20}
    for row in figures["read"]:
        # One thread: from a busy shared core to any cache there is. Several threads on a tiny working set
        # measure the start of a parallel region, which a loaded machine can stretch to milliseconds: only
        # positive (the floor takes the best thread count, so such a figure never lowers the floor).
        low = 0.05 if row["threads"] == 1 else 0.0
        assert low < row["gb_per_s"] < 10_000, row
    assert {row["dtype"] for row in figures["arithmetic"]} == {"float64", "float32"}
    for row in figures["arithmetic"]:
        assert 0.01 < row["gflop_per_s"] < 100_000, row
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


class _Done:
    returncode = 0
    stdout = json.dumps(PROBE)
    stderr = ""
