"""The floor check: does any configuration run faster than the machine's floor says it can?

Runs ``bench run`` on the tuned formulation of every framework given, on the CPU, at the full preset's sizes
(10^2 to 10^7) in float32 and float64, then reads the run's summary: for each size and dtype the fastest
variant's ``x_floor`` (its time over ``floor_us``), and every row under the threshold. ``floor_us`` is meant
to be a lower bound (:mod:`bench.roofline`), so a row under 0.95 means the model is wrong on this machine, or
the probe ran in a slow spell: run it on a quiet machine. The probe is measured afresh for the check (never
taken from the day-long cache, which may hold a busier or a quieter moment); the load average before and
after is printed.

Exit status 0: every ok row at or above the threshold; 1: a row under it, or nothing that could be checked
(no ok row, no floor); 2: bad arguments.

    python -m bench.check_floor [--iterations N] [--out results/check-floor-...] [--threshold 0.95]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.config import CODE_COLUMNS
from bench.runs import variant_label

FULL_SIZES = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
"""The full preset's sizes (``bench.config.PRESETS["full"]``)."""

RUN_OPTIONS = (
    *("--formulations", "tuned", "--devices", "cpu", "--repeats", "5"),
    *("--processes", "1", "--budget", "2", "--fit-budget", "0.4"),
)
"""Five timed fits per configuration in one worker process (the bound needs no spread between processes)
within 2 s, each fit's loop shortened to about 0.4 s (at 10^7 NumPy takes tens of milliseconds an
iteration): the whole check takes a few minutes on 2 quiet cores."""


def iterations_for(n: int) -> int:
    """2000 iterations below 10^6 (so a fit of microseconds per iteration is timed over milliseconds), 200
    from 10^6 on (which the per-fit budget may shorten to 10, one logging interval)."""
    return 2000 if n < 1_000_000 else 200


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.check_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,torch,jax,numba")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--sizes", default=",".join(map(str, FULL_SIZES)))
    parser.add_argument("--iterations", type=int, help="iterations per fit (2000 below n = 10^6, 200 from it)")
    parser.add_argument("--threshold", type=float, default=0.95, help="least x_floor allowed (0.95)")
    parser.add_argument("--out", help="run folder to create (default: results/check-floor-<time>)")
    parser.add_argument("--summary", action="append", help="check this summary.csv instead of running (repeatable)")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(size) for size in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes must be comma-separated whole numbers, got {args.sizes!r}")
    if (args.iterations is not None and args.iterations < 1) or args.threshold <= 0 or min(args.sizes) < 4:
        parser.error("--iterations must be at least 1, --threshold positive, and every size at least 4")
    return args


def load() -> str:
    """The 1-minute load average and the cores this process may use, in words."""
    return f"load average {os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} cores"


def verdict(summary: pd.DataFrame, threshold: float) -> tuple[list[str], list[str], bool]:
    """The fastest variant per (dtype, n) as lines of a table, the lines of the rows under ``threshold``, and
    whether the check passed (at least one ok row with a floor, none under the threshold)."""
    rows = summary[(summary["status"] == "ok") & summary["x_floor"].notna()]
    table = [f"{'dtype':8} {'n':>9}  {'fastest variant':38} {'us/iter':>10} {'floor_us':>10} {'x_floor':>8}"]
    for (dtype, n), part in rows.groupby(["dtype", "n"]):
        best = part.loc[part["us_per_iter"].idxmin()]
        table.append(
            f"{dtype:8} {n:>9}  {variant_label(*best[CODE_COLUMNS]):38} {best['us_per_iter']:>10.4g}"
            f" {best['floor_us']:>10.4g} {best['x_floor']:>8.3f}"
        )
    under = [
        f"{row['dtype']} n={row['n']} {variant_label(*row[CODE_COLUMNS])}: x_floor {row['x_floor']:.3f}"
        f" ({row['us_per_iter']:.4g} us/iter, floor {row['floor_us']:.4g} us)"
        for _, row in rows[rows["x_floor"] < threshold].iterrows()
    ]
    return table, under, not rows.empty and not under


def run(args: argparse.Namespace, folder: Path) -> list[Path]:
    """``bench run`` once per iteration count, into subfolders of ``folder``; their summaries."""
    groups: dict[int, list[int]] = {}
    for n in args.sizes:
        groups.setdefault(args.iterations or iterations_for(n), []).append(n)
    summaries = []
    for iterations, sizes in groups.items():
        out = folder / f"it{iterations}"
        command = [sys.executable, "-m", "bench", "run", "--backends", args.backends, "--dtypes", args.dtypes]
        command += ["--sizes", ",".join(map(str, sizes)), "--iterations", str(iterations), *RUN_OPTIONS]
        command += ["--out", str(out)]
        before = load()
        print(f"check-floor: {before}; {' '.join(command[1:])}", flush=True)
        fresh = {**os.environ, "ARRAYBENCH_CACHE": str(folder / "probe-cache")}  # this run's probe, not a cached one
        status = subprocess.run(command, env=fresh).returncode
        print(f"check-floor: bench run exited with status {status}; {load()} (before: {before})", flush=True)
        if status in (0, 1):  # 1: some configuration not ok; the ok ones are still checked
            summaries.append(out / "summary.csv")
    return summaries


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.summary:
        summaries = [Path(path) for path in args.summary]
    else:
        folder = Path(args.out or f"results/check-floor-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        summaries = run(args, folder)
    if not summaries:
        print("check-floor: FAILED: no run finished")
        return 1
    summary = pd.concat([pd.read_csv(path) for path in summaries], ignore_index=True)
    table, under, passed = verdict(summary, args.threshold)
    print("\n".join(table))
    others = summary[summary["status"] != "ok"]
    if not others.empty:
        print(f"not ok (not checked): {len(others)} rows: " + ", ".join(sorted(set(others["status"]))))
    if under:
        print(f"check-floor: FAILED: {len(under)} rows under {args.threshold:g}x their floor:")
        print("\n".join(f"  {line}" for line in under))
    elif not passed:
        print("check-floor: FAILED: no ok row with a floor to check (was the probe skipped?)")
    else:
        lowest = summary.loc[summary["status"] == "ok", "x_floor"].min()
        print(f"check-floor: passed: no ok row under {args.threshold:g}x its floor (lowest {lowest:.3f})")
    print("probe figures: " + ", ".join(str(path.parent / "environment.json") for path in summaries))
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
