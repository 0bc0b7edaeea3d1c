"""The run's plots, as PNG files in its folder (matplotlib's Figure drawn by Agg: no pyplot, no display).

- ``time_per_iteration.png``: median microseconds per iteration against n, log-log, one line per variant,
  one panel per device and dtype; the band spans the fastest to the slowest repeat (raw.csv); the dotted
  grey line is the machine's floor (``floor_us``, from the probe), where the run has one.
- ``speedup.png``: the NumPy tutorial loop's time over each variant's, against n.
- ``first_call.png``: the first (warm-up, compiling) fit against the median timed fit, at one size.
- ``losses.png``: the logged losses against the exact reference's at one size, and their relative deviation
  against the tolerance: correctness made visible.

Where a size was timed with several iteration counts, the lines use the longest (its per-fit fixed costs
are spread over the most iterations). A variant keeps its colour (hue: backend, shade: grad), line style
(mode) and marker (grad) in every plot.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from rich.console import Console

from backends.contract import TUTORIAL_SIZE
from bench import results
from bench.config import CODE_COLUMNS
from bench.report import BASELINE_NAME, baseline_us
from bench.runs import Run, variant_label, variant_names

COLOURS = {
    "numpy": ("black", "dimgray"),
    "torch": ("tab:red", "tab:orange"),
    "jax": ("tab:blue", "tab:cyan"),
    "numba": ("tab:green", "tab:olive"),
    "cupy": ("tab:purple", "tab:pink"),
}
"""(manual, autodiff) colours of each backend: one hue family per backend."""
OTHER_COLOURS = ("tab:brown", "tab:gray")
LINES = {"eager": "-", "jit-step": "--", "jit-loop": "-."}
MARKERS = {"manual": "o", "autodiff": "s"}
DEVIATION_FLOOR = 1e-17
"""A relative deviation of exactly 0 is drawn here (log axis), below float64's resolution of 1.1e-16."""
DPI = 110
LEGEND_ENTRY_WIDTH = 2.5
"""Inches a legend entry takes at the small font size (marker and ``torch autodiff/jit-step``)."""


VARIANT = CODE_COLUMNS
"""The columns that name a variant (one line, one legend entry)."""


def style(backend: str, grad: str, mode: str, formulation: str = "tutorial") -> dict:
    """Colour by backend and grad, line style by mode, marker by grad (filled for manual, open for autodiff);
    the tuned formulation draws a thicker line with diamond markers."""
    colour = COLOURS.get(backend, OTHER_COLOURS)[grad != "manual"]
    tuned = formulation != "tutorial"
    return {
        "color": colour,
        "linestyle": LINES.get(mode, ":"),
        "marker": "D" if tuned else MARKERS.get(grad, "^"),
        "markerfacecolor": colour if grad == "manual" else "white",
        "markersize": 5,
        "linewidth": 2.8 if tuned else 1.5,
    }


def panels(frame: pd.DataFrame, title: str, width: float = 5.2, height: float = 4.0):
    """A figure with one panel per device (rows) and dtype (columns) of ``frame``: (figure, {(device, dtype):
    axes}); a device and dtype without data leaves its panel hidden."""
    devices, dtypes = sorted(frame["device"].unique()), sorted(frame["dtype"].unique())
    figure_width = max(7.0, width * len(dtypes) + 1.0)
    size = (figure_width, height * len(devices) + legend_height(frame, figure_width))
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(len(devices), len(dtypes), squeeze=False)
    figure.suptitle(title)
    present = set(zip(frame["device"], frame["dtype"], strict=True))
    grid = {}
    for i, device in enumerate(devices):
        for j, dtype in enumerate(dtypes):
            if (device, dtype) in present:
                grid[device, dtype] = axes[i][j]
                axes[i][j].set_title(f"{device}, {dtype}")
            else:
                axes[i][j].set_visible(False)
    return figure, grid


def legend_columns(figure_width: float) -> int:
    return max(1, int(figure_width // LEGEND_ENTRY_WIDTH))


def legend_height(frame: pd.DataFrame, figure_width: float) -> float:
    """Inches to leave below the panels for the variant legend of ``frame``."""
    variants = frame.groupby(VARIANT).ngroups + 1  # + 1: a possible extra entry
    return 0.3 + 0.22 * math.ceil(variants / legend_columns(figure_width))


def variant_legend(figure, frame: pd.DataFrame, extra: list[tuple[Line2D, str]] = ()) -> None:
    """One legend for the figure, below the panels, one entry per variant of ``frame``."""
    handles, labels = [], []
    for variant, _ in frame.groupby(VARIANT, sort=True):
        handles.append(Line2D([], [], **style(*variant)))
        labels.append(variant_label(*variant))
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    figure.legend(
        handles, labels, loc="outside lower center", ncols=legend_columns(figure.get_figwidth()), fontsize="small"
    )


def log_axes(axes, xlabel: str, ylabel: str) -> None:
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="major", alpha=0.35)
    axes.grid(True, which="minor", alpha=0.12)


def longest_per_size(ok: pd.DataFrame) -> pd.DataFrame:
    """Per variant, device, dtype and n, the row with the most iterations."""
    ordered = ok.sort_values("iterations")
    return ordered.drop_duplicates([*VARIANT, "device", "dtype", "n"], keep="last").sort_values("n")


def save(figure, folder: Path, name: str) -> Path:
    path = folder / name
    figure.savefig(path, dpi=DPI)
    return path


FLOOR_LOOK = {"color": "0.35", "linestyle": ":", "linewidth": 2.5}


def floor_lines(rows: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    """The machine's floor (``floor_us``) against n for each (device, dtype) that has one."""
    known = rows.dropna(subset=["floor_us"])
    return {key: part.groupby("n")["floor_us"].min() for key, part in known.groupby(["device", "dtype"])}


def plot_time(ok: pd.DataFrame, raw: pd.DataFrame, folder: Path) -> Path:
    """Median us per iteration against n, with the band from the fastest to the slowest repeat."""
    per_repeat = raw.assign(us=results.seconds_per_iteration(raw) * 1e6)
    spread = per_repeat.groupby(results.KEY_COLUMNS)["us"].agg(["min", "max"])
    points = longest_per_size(ok).join(spread, on=results.KEY_COLUMNS)
    figure, grid = panels(points, "Time per iteration against problem size (band: fastest to slowest repeat)")
    for (*variant, device, dtype), rows in points.groupby([*VARIANT, "device", "dtype"]):
        axes, look = grid[device, dtype], style(*variant)
        axes.plot(rows["n"], rows["us_per_iter"], **look)
        axes.fill_between(rows["n"], rows["min"], rows["max"], color=look["color"], alpha=0.15, linewidth=0)
    floors = floor_lines(points)
    for (device, dtype), floor in floors.items():
        grid[device, dtype].plot(floor.index, floor.to_numpy(), zorder=0, **FLOOR_LOOK)
    for axes in grid.values():
        log_axes(axes, "n (points fitted)", "median time per iteration (µs)")
    extra = [(Line2D([], [], **FLOOR_LOOK), "machine floor (floor_us)")] if floors else []
    variant_legend(figure, points, extra)
    return save(figure, folder, "time_per_iteration.png")


def plot_speedup(ok: pd.DataFrame, folder: Path) -> Path | None:
    """The NumPy tutorial loop's time over each variant's (same dtype, n and iterations; CPU baseline)."""
    baseline = baseline_us(ok)
    base = pd.Series(
        [baseline.get((d, n, it), math.nan) for d, n, it in zip(ok["dtype"], ok["n"], ok["iterations"], strict=True)],
        index=ok.index,
    )
    points = longest_per_size(ok.assign(speedup=base / ok["us_per_iter"]).dropna(subset=["speedup"]))
    if points.empty:
        return None
    figure, grid = panels(points, f"Speedup over the NumPy tutorial loop ({BASELINE_NAME}, CPU)")
    for (*variant, device, dtype), rows in points.groupby([*VARIANT, "device", "dtype"]):
        grid[device, dtype].plot(rows["n"], rows["speedup"], **style(*variant))
    for axes in grid.values():
        axes.axhline(1.0, color="grey", linewidth=1, zorder=0)
        log_axes(axes, "n (points fitted)", "speedup (NumPy loop time / variant time)")
    variant_legend(figure, points)
    return save(figure, folder, "speedup.png")


def representative(rows: pd.DataFrame) -> tuple[int, int]:
    """The (n, iterations) to show for a panel: the one most variants have, then the most iterations, then
    the n nearest the tutorial's 2000."""
    counts = rows.groupby(["n", "iterations"]).size()
    return max(counts.index, key=lambda p: (counts[p], p[1], -abs(math.log(p[0] / TUTORIAL_SIZE))))


def plot_first_call(ok: pd.DataFrame, folder: Path) -> Path:
    """Horizontal bars per variant: the first fit (with compilation) against the median timed fit."""
    ok = ok.assign(variant=variant_names(ok))
    heights = {key: rows["variant"].nunique() for key, rows in ok.groupby(["device", "dtype"])}
    figure, grid = panels(
        ok, "First call (warm-up: tracing, compiling, first touch) against a steady fit",
        width=6.0, height=1.2 + 0.32 * max(heights.values()),
    )  # fmt: skip
    for (device, dtype), rows in ok.groupby(["device", "dtype"]):
        n, iterations = representative(rows)
        rows = rows[(rows["n"] == n) & (rows["iterations"] == iterations)].sort_values("variant", ascending=False)
        axes, where = grid[device, dtype], np.arange(len(rows))
        axes.barh(where + 0.2, rows["first_call_s"], height=0.4, color="tab:orange", label="first call")
        axes.barh(where - 0.2, rows["median_s"], height=0.4, color="tab:gray", label="median timed fit")
        axes.set_yticks(where, rows["variant"])
        axes.set_xscale("log")
        axes.set_xlabel(f"seconds per fit of {iterations:,} iterations")
        axes.set_title(f"{device}, {dtype}, n = {n:,}")
        axes.grid(True, axis="x", which="both", alpha=0.3)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in ("tab:orange", "tab:gray")]
    figure.legend(handles, ["first call", "median timed fit"], loc="outside lower center", ncols=2, fontsize="small")
    return save(figure, folder, "first_call.png")


def plot_losses(losses: pd.DataFrame, folder: Path) -> Path:
    """Top: logged losses and the exact reference's. Bottom: relative deviation, against the tolerance."""
    groups = sorted(set(zip(losses["device"], losses["dtype"], strict=True)))
    figure_width = 5.2 * len(groups) + 1.0
    figure = Figure(figsize=(figure_width, 7.5 + legend_height(losses, figure_width)), layout="constrained")
    axes = figure.subplots(2, len(groups), squeeze=False, sharex="col")
    figure.suptitle("Logged loss against the exact float64 reference (one size per panel)")
    for j, (device, dtype) in enumerate(groups):
        rows = losses[(losses["device"] == device) & (losses["dtype"] == dtype)]
        n, iterations = representative(rows)
        rows = rows[(rows["n"] == n) & (rows["iterations"] == iterations)]
        loss_axes, gap_axes = axes[0][j], axes[1][j]
        reference = rows.drop_duplicates("iteration").sort_values("iteration")
        loss_axes.plot(reference["iteration"], reference["reference_loss"], color="0.75", linewidth=6, zorder=0)
        for variant, curve in rows.groupby(VARIANT):
            curve = curve.sort_values("iteration")
            look = style(*variant)
            loss_axes.plot(curve["iteration"], curve["loss"], **look)
            gap = (curve["loss"] - curve["reference_loss"]).abs() / curve["reference_loss"].abs()
            gap_axes.plot(curve["iteration"], gap.clip(lower=DEVIATION_FLOOR), **look)
        gap_axes.axhline(results.TOLERANCE[dtype], color="tab:red", linewidth=1)
        gap_axes.annotate("tolerance", (0.02, results.TOLERANCE[dtype]), xycoords=("axes fraction", "data"),
                          va="bottom", color="tab:red", fontsize="small")  # fmt: skip
        loss_axes.set_title(f"{device}, {dtype}, n = {n:,}, {iterations:,} iterations")
        loss_axes.set_yscale("log")
        loss_axes.set_ylabel("loss (sum of squared errors)")
        gap_axes.set_yscale("log")
        gap_axes.set_ylabel(f"|loss - reference| / reference\n(0 drawn at {DEVIATION_FLOOR:g})")
        gap_axes.set_xlabel("iteration")
        for a in (loss_axes, gap_axes):
            a.grid(True, alpha=0.3)
    reference_handle = Line2D([], [], color="0.75", linewidth=6)
    variant_legend(figure, losses, [(reference_handle, "exact reference")])
    return save(figure, folder, "losses.png")


def write_plots(run: Run) -> tuple[list[Path], list[str]]:
    """Write every plot of ``run`` into its folder; return the files and notes on plots not drawn."""
    ok = run.summary[run.summary["status"] == "ok"]
    if ok.empty:
        raise results.ResultsError(f"{run.folder}: no ok configuration to plot")
    written, notes = [plot_time(ok, run.read("raw"), run.folder), plot_first_call(ok, run.folder)], []
    speedup = plot_speedup(ok, run.folder)
    if speedup is None:
        notes.append("speedup.png not drawn: the run has no ok NumPy tutorial loop on the CPU to compare with")
    else:
        written.append(speedup)
    if (run.folder / results.FILES["losses"]).exists():
        written.append(plot_losses(run.read("losses"), run.folder))
    else:
        notes.append("losses.png not drawn: no losses.csv (losses are logged every 100 iterations)")
    return written, notes


def command_plot(run: Run, console: Console) -> int:
    """``bench plot``: write the plots and name the files."""
    written, notes = write_plots(run)
    for path in written:
        console.print(f"wrote {path}", markup=False)
    for note in notes:
        console.print(note, markup=False)
    return 0
