"""Does the harness distort what it measures? The runner's median against a bare in-process timing.

``python -m bench.overhead`` times the same fits two ways, alternating them for a few rounds so that drift
of the machine hits both alike: through a real worker process, exactly as ``bench run`` does, and with a bare
``perf_counter_ns`` loop in a plain Python process (the same environment and thread settings, none of the
harness). Each round starts both processes afresh, so what differs from one process to the next (where a
framework's buffers land in memory moves a small JAX fit noticeably) falls on both sides alike. It prints
the ratio of the medians for a small and a large size.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from bench.config import Configuration
from bench.protocol import Request
from bench.runner import WorkerProcess, worker_environment

CASES = [
    Configuration("numpy", "manual", "eager", "cpu", "float64", 1_000, 200, None, 0, 2),
    Configuration("numpy", "manual", "eager", "cpu", "float64", 1_000_000, 20, None, 0, 2),
    Configuration("jax", "manual", "jit-loop", "cpu", "float64", 1_000, 2_000, None, 0, 2),
    Configuration("jax", "manual", "jit-loop", "cpu", "float64", 1_000_000, 20, None, 0, 2),
]


BARE = """
import json, sys
from backends import load_backend
from bench.config import Configuration
from bench.timing import timed_call
config, repeats = Configuration(**json.loads(sys.argv[1])), int(sys.argv[2])
fit = load_backend(config.backend).prepare(config.problem, config.variant, config.device)
fit()
print(json.dumps([timed_call(fit)[0] for _ in range(repeats)]))
"""
"""A fresh Python process that prepares one fit, runs it once, then times it with nothing but the clock
(:func:`bench.timing.timed_call`, the clock the worker uses too)."""


def bare_samples(config: Configuration, repeats: int) -> list[float]:
    """Seconds of ``repeats`` fits timed by a bare loop in a fresh process, with the worker's environment."""
    done = subprocess.run(
        [sys.executable, "-c", BARE, json.dumps(config.to_dict()), str(repeats)],
        env=worker_environment(config.threads),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def runner_samples(config: Configuration, repeats: int) -> list[float]:
    """Seconds of ``repeats`` fits timed by a real worker process, as ``bench run`` times them."""
    worker = WorkerProcess(config.threads)
    try:
        reply = worker.request(Request(1, config, repeats, budget_s=1e9, min_repeats=repeats), 600)
    finally:
        worker.close()
    return list(reply.samples_s)


def main(rounds: int = 5, repeats: int = 7) -> None:
    print("configuration | runner median | bare median | runner / bare")
    for config in CASES:
        runner, bare = [], []
        for _ in range(rounds):
            runner += runner_samples(config, repeats)
            bare += bare_samples(config, repeats)
        r, b = statistics.median(runner), statistics.median(bare)
        print(f"{config.label()} | {r * 1e3:.3f} ms | {b * 1e3:.3f} ms | {r / b:.3f}")


if __name__ == "__main__":
    main()
