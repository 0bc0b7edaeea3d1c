"""The machine probe: what this machine's memory and arithmetic can do, measured in a few seconds.

Measured with Numba kernels, in a child process started like a worker (same thread settings and cores), for
one thread and for all the run's threads:

- **read bandwidth** at working sets from cache-resident (16 KiB) to well beyond the last-level cache
  (256 MiB), and at the exact working set of each of the run's CPU configurations (``2 n itemsize``): a dot
  product of two arrays, each half the working set (the fit reads x and y, two arrays). With several threads,
  each pass over the data is one parallel region, as an iteration of a parallel fit is, so the figure includes
  what starting that region costs (which is why one thread wins on small working sets). The run's own working
  sets are measured because bandwidth falls off a cliff where a working set outgrows a cache: interpolating
  across it overstates the bandwidth (figures of one machine: docs/notes/2026-11-26-dev-vm.md).
- **arithmetic rate** per dtype, in elements of one iteration per second: the iteration's own vector
  instruction mixes (:data:`bench.roofline.MIXES`: the tuned kernel's, and the precomputed powers'), at
  every vector width the CPU has, over arrays resident in L1 with independent accumulator chains
  (:mod:`bench.probe_kernels`), so the figure is what this CPU's execution units allow for exactly this
  arithmetic: which pipes an add or a multiply-add may use differs between CPUs (on AMD Zen 4 adds have
  pipes of their own; on many Intel cores they share the multiply-add ports). With several threads, each
  runs its own copy on its own data at the same time. The floor takes the fastest mix and width.

Results are cached for a day per machine and software fingerprint (``~/.cache/arraybench``, or
``$ARRAYBENCH_CACHE``), so consecutive runs do not pay for it again; ``bench run --no-probe`` skips it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PROBE_VERSION = 6
"""Bumped whenever the kernels or the ladder change, so cached figures of older probes are not reused."""

LADDER = tuple(16 * 1024 * 4**k for k in range(8))
"""Working-set sizes in bytes: 16 KiB, 64 KiB, ... 256 MiB, four times apart. The largest is beyond most
last-level caches, and beyond the largest working set of the full preset (160 MB at n = 10^7 in float64);
a larger one would cost more to allocate (first touch) than all the measurements."""

ARITHMETIC_ROUNDS = 9
"""Timings per arithmetic figure (of about :data:`ARITHMETIC_TARGET_S` each), the best kept: on a shared
machine a slow spell of a core (another process's time slice) shows as a slower timing, never a faster one,
and short timings are more likely to fall between two such spells."""

ARITHMETIC_TARGET_S = 0.002

DTYPES = ("float64", "float32")

CACHE_SECONDS = 24 * 3600
TIMEOUT_S = 120.0


def _passes_for(run, target_s: float) -> int:
    """How many passes of ``run(passes)`` take about ``target_s`` (after one untimed call that compiles)."""
    run(1)
    passes = 1
    while True:
        elapsed = _timed(run, passes)
        if elapsed >= target_s / 4 or passes >= 2**24:
            return max(1, round(passes * target_s / max(elapsed, 1e-9)))
        passes *= 4


def _timed(run, passes: int) -> float:
    start = time.perf_counter()
    run(passes)
    return time.perf_counter() - start


def _together(kernel, count: int, passes: int) -> float:
    """Seconds for ``count`` threads each running ``kernel.run(passes)`` on its own data, all at once (ctypes
    releases the GIL), from a common start to the last one's end."""
    data = [kernel.data() for _ in range(count)]
    if count == 1:
        return _timed(lambda p: kernel.run(p, data[0]), passes)
    start = threading.Barrier(count + 1)

    def work(own):
        start.wait()
        kernel.run(passes, own)

    threads = [threading.Thread(target=work, args=(own,)) for own in data]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def best_of_rounds(figures: dict, rounds: int) -> dict:
    """The least seconds of ``rounds`` timings of each figure, ``{key: (warm, timed)}``, the rounds going over
    every figure in turn: one slow spell of a shared core then spoils one timing of several figures rather
    than every timing of one. ``warm()`` runs untimed right before each timing (it brings the figure's data
    back into the caches that the figures before evicted, as the fit finds its data on every iteration but
    the first); ``timed()`` returns the seconds of the timed part."""
    best = dict.fromkeys(figures, math.inf)
    for _ in range(rounds):
        for key, (warm, timed) in figures.items():
            warm()
            best[key] = min(best[key], timed())
    return best


def arithmetic_rows(counts: Iterable[int], target_s: float, rounds: int) -> list[dict]:
    """Elements per second of every mix at every vector width, per dtype and thread count, each the best of
    ``rounds`` timings of about ``target_s``."""
    from bench.probe_kernels import mix_kernels

    figures, elements = {}, {}
    for dtype in DTYPES:
        for kernel in mix_kernels(dtype):
            data = kernel.data()
            passes = _passes_for(lambda p, kernel=kernel, data=data: kernel.run(p, data), target_s)
            for count in counts:
                key = (count, dtype, kernel.mix.name, kernel.bits)
                figures[key] = (lambda: None, lambda k=kernel, c=count, p=passes: _together(k, c, p))
                elements[key] = count * passes * kernel.elements
    return [
        {"threads": count, "dtype": dtype, "mix": mix, "vector_bits": bits, "gelem_per_s": elements[key] / s / 1e9}
        for key, s in best_of_rounds(figures, rounds).items()
        for count, dtype, mix, bits in [key]
    ]


def sizes_to_measure(working_sets: Iterable[int]) -> tuple[int, ...]:
    """The ladder and the run's own working sets up to the ladder's top (beyond it, the top's bandwidth holds)."""
    return tuple(sorted({*LADDER, *(size for size in working_sets if 0 < size <= max(LADDER))}))


def measure(
    threads: int,
    sizes: tuple[int, ...] = LADDER,
    target_s: float = 0.003,
    rounds: int = 9,
    arithmetic_rounds: int = ARITHMETIC_ROUNDS,
) -> dict:
    """Read bandwidth at each working-set size and the arithmetic rate per dtype, for 1 and ``threads`` threads;
    each read figure is the best of ``rounds`` timings of about ``target_s`` seconds, each arithmetic one of
    ``arithmetic_rounds`` (or ``rounds`` if more) of at most :data:`ARITHMETIC_TARGET_S`.

    Runs in this process; :func:`probe` runs it in a worker-like child process.
    """
    import numba

    from bench.probe_kernels import read, read_parallel

    started = time.perf_counter()
    # numba sets its config's names through globals() at import, which mypy cannot see
    counts = sorted({1, min(threads, numba.config.NUMBA_NUM_THREADS)})  # type: ignore[attr-defined]
    half = max(sizes) // 2 // 8
    a, b = np.full(half, 1.0), np.full(half, 1e-9)
    figures, volume = {}, {}
    for count in counts:
        numba.set_num_threads(count)
        parts = np.zeros(count)
        for size in sorted(sizes):
            x, y = a[: size // 16], b[: size // 16]

            def run(p, x=x, y=y, count=count, parts=parts):
                return read(x, y, p) if count == 1 else read_parallel(x, y, p, parts)

            def warm(run=run, count=count):
                numba.set_num_threads(count)
                run(1)

            passes = _passes_for(run, target_s)
            figures[count, size] = (warm, lambda run=run, passes=passes: _timed(run, passes))
            volume[count, size] = size * passes
    read_rows = [
        {"threads": count, "bytes": size, "gb_per_s": volume[count, size] / s / 1e9}
        for (count, size), s in best_of_rounds(figures, rounds).items()
    ]
    return {
        "version": PROBE_VERSION,
        "seconds": round(time.perf_counter() - started, 2),
        "read": read_rows,
        "arithmetic": arithmetic_rows(counts, min(target_s, ARITHMETIC_TARGET_S), max(rounds, arithmetic_rounds)),
    }


def cache_key(facts: dict, threads: int, sizes: tuple[int, ...] = LADDER) -> str:
    """A hash of what can change the probe's figures: the machine, its software, the threads, the probe and the
    working sets it measures."""
    wanted = ("host", "cpu_model", "logical_cores", "usable_cores", "memory_gib", "os", "python")
    subset = {k: facts.get(k) for k in wanted}
    subset["packages"] = {k: facts.get("packages", {}).get(k) for k in ("numpy", "numba")}
    subset.update(threads=threads, version=PROBE_VERSION, sizes=list(sizes))
    return hashlib.sha256(json.dumps(subset, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("ARRAYBENCH_CACHE", Path.home() / ".cache" / "arraybench"))


def probe(threads: int, facts: dict, working_sets: Iterable[int] = (), use_cache: bool = True) -> dict:
    """The probe's figures for this machine, at the ladder's and the run's ``working_sets`` (bytes): from the
    day-old cache if there is one, else measured now in a child process. Never raises: a probe that cannot run
    returns ``{"error": reason}``."""
    sizes = sizes_to_measure(working_sets)
    path = cache_dir() / f"probe-{cache_key(facts, threads, sizes)}.json"
    if use_cache and path.is_file():
        try:
            cached = json.loads(path.read_text())
            if time.time() - cached["measured_at"] < CACHE_SECONDS:
                return {**cached, "cached": True}
        except (ValueError, KeyError, OSError):
            pass
    from bench.runner import worker_environment

    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.probe", str(threads), *map(str, sizes)],
            capture_output=True,
            text=True,
            env=worker_environment(threads),
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"the probe did not finish within {TIMEOUT_S:g} s"}
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-2:])
        return {"error": f"the probe failed (exit status {done.returncode}): {tail}"[:500]}
    result = {**json.loads(done.stdout), "measured_at": time.time(), "threads_requested": threads}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    except OSError:
        pass  # an unwritable cache costs a re-measure next time, nothing more
    return {**result, "cached": False}


def main() -> None:
    from bench.worker import pin_threads

    threads, *sizes = map(int, sys.argv[1:])
    pin_threads(threads)
    try:
        from backends.numba_backend import widest_vectors

        widest_vectors()  # the read kernels get the vectors the tuned fit gets
        import numba  # noqa: F401
    except ImportError as error:
        print(f"numba is not installed ({error})", file=sys.stderr)
        raise SystemExit(3) from error
    print(json.dumps(measure(threads, tuple(sizes) or LADDER)))


if __name__ == "__main__":
    main()
