"""``python -m bench.gpu_check``: the one prepared check for a machine with a CUDA GPU.

In one go, in a few minutes (meant for a lent GPU machine: ``PYTHONPATH=. python3 -m bench.gpu_check``, no
install step, no network):

1. the GPU tests (``pytest -m gpu tests``: those marked ``gpu``, which skip without a GPU) with
   ``ARRAYBENCH_REQUIRE_GPU=1``, so a GPU case that would be skipped fails instead;
2. a sweep of every GPU variant (PyTorch, JAX, CuPy; float32 and float64; n = 10^3 to 10^7, preset
   ``gpu-check``) and a sweep of the CPU variants to compare with (each framework's tuned eager and
   whole-loop variants, Numba's parallel one too: NumPy, Numba, PyTorch, JAX);
3. the full report of both together (speed tables, scaling fits, the GPU-vs-CPU crossovers), the GPU's own
   time (CUDA events) beside the host's, and the fastest variant of each device at each point against the
   GPU's read floor (:func:`gpu_read_us`).

The run folders go under ``results/gpu-check-<time>/``; when ``$OUT`` is set (on a lent machine), a
tarball of them and the combined summary.csv are also written there after each step. Exit status: 0 when
everything passed, 1 when a test or a configuration failed, 2 when there is no GPU here (unless
``--force``, which runs everything anyway so that the check itself can be tried on a CPU-only machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from backends import BackendUnavailable, load_backend
from bench import cli, results
from bench.environment import PROJECT_ROOT, gpus
from bench.report import print_sections, report_sections, significant, speedup_text
from bench.runs import variant_label, variant_names

GPU_BACKENDS = "torch,jax,cupy"
CPU_BACKENDS = "numpy,torch,jax,numba"
CPU_MODES = "eager,jit-loop,jit-loop-parallel"
CPU_FORMULATIONS = "tuned"
"""On the CPU, what each framework does best: the tuned eager and whole-loop compiled variants. The
tutorial's forms are ``make bench``'s business: at 10^6 and 10^7 the NumPy tutorial loop alone would take
minutes, and torch.compile per step and size minutes more (docs/notes/2026-11-26-h200.md)."""
PRESET = "gpu-check"


def sweeps(folder: Path, sizes: str | None) -> dict[str, list[str]]:
    """The ``python -m bench run`` command lines of the check: name -> arguments."""
    common = ["run", "--preset", PRESET, *(["--sizes", sizes] if sizes else [])]
    cpu = ["--backends", CPU_BACKENDS, "--devices", "cpu", "--modes", CPU_MODES, "--formulations", CPU_FORMULATIONS]
    return {
        "gpu": [*common, "--backends", GPU_BACKENDS, "--devices", "gpu", "--out", str(folder / "gpu")],
        "cpu": [*common, *cpu, "--out", str(folder / "cpu")],
    }


def run_tests(require_gpu: bool) -> int:
    """The GPU tests in a child pytest (the CPU cases are CI's), pytest-benchmark's at one size; its exit status."""
    env = {
        **os.environ,
        "ARRAYBENCH_REQUIRE_GPU": "1" if require_gpu else "0",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    }
    options = "-q -rs -p no:cacheprovider -m gpu --benchmark-disable --fit-sizes=1000 tests"
    command = [sys.executable, "-m", "pytest", *options.split()]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=False).returncode


def combined_summary(folder: Path) -> pd.DataFrame | None:
    """The summary rows of every finished run folder under ``folder``, or None."""
    frames = [results.read_csv(path) for path in sorted(folder.glob("*/summary.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else None


def print_device_times(summary: pd.DataFrame, console: Console) -> None:
    """Host clock against the GPU's own clock (CUDA events) for the GPU rows that have both."""
    rows = summary[(summary["status"] == "ok") & summary["gpu_median_s"].notna()]
    if rows.empty:
        return
    table = Table(title="GPU rows: host clock against CUDA events, us per iteration")
    for column in ("variant", "dtype", "n", "host", "CUDA events"):
        table.add_column(column, justify="left" if column in ("variant", "dtype") else "right")
    for row in rows.itertuples():
        table.add_row(
            variant_label(row.backend, row.grad, row.mode, row.formulation),
            row.dtype,
            f"{row.n:,}",
            f"{row.us_per_iter:,.1f}",
            f"{row.us_per_iter * row.gpu_median_s / row.median_s:,.1f}",
        )
    console.print(table)


GPU_READ_BURST = 20
"""Reductions captured back to back in one CUDA graph, whose replay is timed."""


def gpu_read_us(points: list[tuple[str, int]], rounds: int = 7) -> dict[tuple[str, int], float]:
    """(dtype, n) -> microseconds the GPU takes to read x and y once: one ``torch.sum`` over 2 n elements of
    that dtype, :data:`GPU_READ_BURST` of them captured in a CUDA graph and replayed between two CUDA events,
    median of ``rounds`` replays.

    The GPU's floor for one iteration of the fit, as the CPU's is to read x and y once (bench/roofline.py):
    the arithmetic (16 operations per element) is far below the GPU's rate, so reading is the bound. The
    graph takes the host's launch cost away, as the fastest GPU variants do; at small n what is left is one
    kernel's time on the GPU against data in its L2 cache, as the fit's own iterations see it. (Launched one
    by one from Python, the reductions would time the host's launch cost, not the GPU's.) Empty without
    PyTorch on CUDA."""
    try:
        torch_backend = load_backend("torch")
    except BackendUnavailable:
        return {}
    start = torch_backend.device_timer("gpu")  # CUDA events, as around the GPU fits
    if start is None:
        return {}
    import torch  # importable: the backend loaded it

    floors = {}
    for dtype, n in points:
        data = torch.rand(2 * n, dtype=getattr(torch, dtype), device="cuda")
        data.sum()  # warm-up: the reduction kernel loaded, the data in place
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(GPU_READ_BURST):
                data.sum()
        graph.replay()
        replays = []
        for _ in range(rounds):
            stop = start()
            graph.replay()
            replays.append(stop() * 1e6 / GPU_READ_BURST)
        floors[(dtype, n)] = statistics.median(replays)
        del graph, data
    return floors


def best_by_device(summary: pd.DataFrame, gpu_read: dict[tuple[str, int], float]) -> pd.DataFrame:
    """For each (dtype, n, iterations): the fastest ok variant on the CPU and on the GPU, the GPU's speed-up
    over the CPU's best, and the GPU's best against its read floor (:func:`gpu_read_us`)."""
    ok = summary[summary["status"] == "ok"].assign(variant=variant_names)
    rows = []
    for (dtype, n, iterations), point in ok.groupby(["dtype", "n", "iterations"], sort=True):
        row = {"dtype": dtype, "n": n, "iterations": iterations}
        for device in ("cpu", "gpu"):
            on_device = point[point["device"] == device]
            best = on_device.loc[on_device["us_per_iter"].idxmin()] if not on_device.empty else None
            row[f"{device}_best"] = best["variant"] if best is not None else None
            row[f"{device}_us"] = best["us_per_iter"] if best is not None else float("nan")
        row["gpu_speedup"] = row["cpu_us"] / row["gpu_us"]
        row["gpu_read_us"] = gpu_read.get((dtype, n), float("nan"))
        row["gpu_x_floor"] = row["gpu_us"] / row["gpu_read_us"]
        rows.append(row)
    return pd.DataFrame(rows)


def print_best_by_device(best: pd.DataFrame, console: Console) -> None:
    """The table of :func:`best_by_device`: what the GPU buys at each point, and how far it is from its limit."""
    table = Table(title="Fastest on each device, us per iteration; GPU read floor = one read of x and y")
    headers = (
        "dtype",
        "n",
        "iterations",
        "fastest on the CPU",
        "us",
        "fastest on the GPU",
        "us",
        "GPU speed-up",
        "GPU read floor",
        "GPU x floor",
    )
    for header in headers:
        table.add_column(
            header, justify="left" if header in ("dtype", "fastest on the CPU", "fastest on the GPU") else "right"
        )

    def cell(value: float, text=significant) -> str:
        return "-" if pd.isna(value) else text(value)

    for row in best.itertuples():
        table.add_row(
            row.dtype,
            f"{row.n:,}",
            f"{row.iterations:,}",
            str(row.cpu_best or "-"),
            cell(row.cpu_us),
            str(row.gpu_best or "-"),
            cell(row.gpu_us),
            cell(row.gpu_speedup, speedup_text),
            cell(row.gpu_read_us),
            cell(row.gpu_x_floor),
        )
    console.print(table)


def export(folder: Path, out: Path | None) -> None:
    """Write the run folders (one tarball) and the combined summary to ``out``, if set."""
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "gpu-check-runs.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    summary = combined_summary(folder)
    if summary is not None:
        summary.to_csv(out / "summary.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="comma-separated n instead of the preset's 10^3 to 10^7")
    parser.add_argument("--skip-tests", action="store_true", help="run the sweeps only")
    parser.add_argument("--force", action="store_true", help="run even without a GPU (GPU cases then skip)")
    args = parser.parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

    found = gpus()
    if not found and not args.force:
        print(
            "gpu-check: no NVIDIA GPU here (nvidia-smi is missing or lists none); run it on a GPU machine, "
            "or pass --force to try the check anyway",
            file=sys.stderr,
        )
        return 2
    for gpu in found:
        console.print(f"GPU: {gpu}")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    folder = cli.RESULTS_DIR / time.strftime("gpu-check-%Y%m%dT%H%M%SZ", time.gmtime())
    commands = sweeps(folder, args.sizes)
    for arguments in commands.values():  # bad --sizes: one line and exit 2, before any work
        try:
            cli.sweep_from(cli.build_parser().parse_args(arguments))
        except cli.UsageError as error:
            print(f"gpu-check: error: {error}", file=sys.stderr)
            return 2

    statuses = {}
    if not args.skip_tests:
        console.rule("GPU tests")
        statuses["tests"] = run_tests(require_gpu=not args.force)
    for name, arguments in commands.items():
        console.rule(f"{name} sweep: python -m bench {' '.join(arguments)}")
        statuses[name] = cli.main(arguments)
        export(folder, out)

    summary = combined_summary(folder)
    if summary is not None:
        console.rule("GPU against CPU")
        print_sections(report_sections(summary), console)  # speed, first call, scaling, crossovers
        print_device_times(summary, console)
        best = best_by_device(summary, gpu_read_us(sorted(set(zip(summary["dtype"], summary["n"], strict=True)))))
        print_best_by_device(best, console)
        best.to_csv(folder / "best_by_device.csv", index=False)
        export(folder, out)
    copied = f", copied to {out}" if out else ""
    console.print(f"gpu-check: exit statuses {statuses} (0 is good); run folders in {folder}{copied}")
    return 0 if not any(statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
