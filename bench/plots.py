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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from rich.console import Console

from backends.contract import TUTORIAL_SIZE
from bench import results
from bench.config import CODE_COLUMNS, VARIANT_COLUMNS
from bench.report import BASELINE_NAME, baseline_us
from bench.report import FRAMEWORKS as FRAMEWORK_NAMES
from bench.runs import Run, short_label, variant_label, variant_names

COLOURS = {
    "numpy": ("black", "dimgray"),
    "torch": ("tab:red", "tab:orange"),
    "jax": ("tab:blue", "tab:cyan"),
    "numba": ("tab:green", "tab:olive"),
    "cupy": ("tab:purple", "tab:pink"),
}
"""(manual, autodiff) colours of each backend: one hue family per backend."""
OTHER_COLOURS = ("tab:brown", "tab:gray")
LINES = {"eager": "-", "jit-step": "--", "jit-loop": "-.", "jit-loop-parallel": (0, (6, 1.5, 1, 1.5, 1, 1.5))}
"""A line style per mode; none is the floor's (:data:`FLOOR_LOOK`: a shaded area, not a line)."""
OTHER_LINE = (0, (1, 1))
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
        "linestyle": LINES.get(mode, OTHER_LINE),
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


def keep_limits(axes, draw) -> None:
    """``draw(axes)`` without changing the panel's y range (the floor's area starts far below the data)."""
    axes.autoscale_view()
    limits = axes.get_ylim()
    draw(axes)
    axes.set_ylim(limits[0] if limits[0] > 0 else None, limits[1])


def variant_legend(figure, frame: pd.DataFrame, extra: Sequence[tuple[Artist, str]] = ()) -> None:
    """One legend for the figure, below the panels, one entry per variant of ``frame``."""
    handles: list[Artist] = []
    labels: list[str] = []
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
    return ordered.drop_duplicates([*VARIANT_COLUMNS, "n"], keep="last").sort_values("n")


def save(figure, folder: Path, name: str) -> Path:
    path = folder / name
    figure.savefig(path, dpi=DPI)
    return path


FLOOR_LOOK: dict[str, Any] = {"facecolor": "0.85", "edgecolor": "0.45", "hatch": "///", "linewidth": 0.0}
"""The machine floor: a hatched grey area from the bottom of the panel up to ``floor_us`` (no run can be
below it), so it is never mistaken for a line."""


def draw_floor(axes, floor: pd.Series) -> None:
    """Shade the area under the floor (``floor_us`` against n) of one panel."""
    low = max(float(floor.min()) / 100, 1e-6)
    axes.fill_between(floor.index, low, floor.to_numpy(), zorder=0, **FLOOR_LOOK)


def floor_handle() -> Rectangle:
    return Rectangle((0, 0), 1, 1, **FLOOR_LOOK)


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
    for axes in grid.values():
        log_axes(axes, "n (points fitted)", "median time per iteration (µs)")
    for (device, dtype), floor in floors.items():
        keep_limits(grid[device, dtype], lambda axes, floor=floor: draw_floor(axes, floor))
    extra = [(floor_handle(), "machine floor (floor_us)")] if floors else []
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
        ok,
        "First call (warm-up: tracing, compiling, first touch) against a steady fit",
        width=6.0,
        height=1.2 + 0.32 * max(heights.values()),
    )
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
        gap_axes.annotate(
            "tolerance",
            (0.02, results.TOLERANCE[dtype]),
            xycoords=("axes fraction", "data"),
            va="bottom",
            color="tab:red",
            fontsize="small",
        )
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


MAX_LINES = 6
"""The most lines a panel of the per-framework figures draws (beyond that, lines cannot be told apart)."""
FRAMEWORK_MARKERS = {"numpy": "o", "torch": "s", "jax": "^", "numba": "D", "cupy": "v"}
OTHER_MARKERS = ("P", "X", "*", "h", "<", ">")


def framework_style(backend: str, index: int) -> dict:
    """One framework's line in :func:`plot_best_per_framework`: its hue, a solid line, its own marker."""
    colour = COLOURS.get(backend, (OTHER_COLOURS[index % 2],))[0]
    marker = FRAMEWORK_MARKERS.get(backend, OTHER_MARKERS[index % len(OTHER_MARKERS)])
    return {"color": colour, "linestyle": "-", "marker": marker, "markersize": 6, "linewidth": 2.0}


def plot_best_per_framework(ok: pd.DataFrame, folder: Path) -> Path:
    """Per device and dtype: each framework's fastest variant at each n (one line a framework), over the
    machine floor's area; at most :data:`MAX_LINES` frameworks a panel."""
    points = longest_per_size(ok.assign(variant=variant_names(ok)))
    best = points.loc[points.groupby(["device", "dtype", "n", "backend"])["us_per_iter"].idxmin().to_numpy()]
    backends = list(dict.fromkeys(b for b in COLOURS if b in set(best["backend"])))
    backends += sorted(set(best["backend"]) - set(backends))
    backends = backends[:MAX_LINES]
    figure, grid = panels(best, "Each framework's fastest variant at each size (area: below the machine floor)")
    figure.set_figheight(figure.get_figheight() - legend_height(best, figure.get_figwidth()) + 0.8)
    for (device, dtype), rows in best.groupby(["device", "dtype"]):
        axes = grid[device, dtype]
        for i, backend in enumerate(backends):
            line = rows[rows["backend"] == backend].sort_values("n")
            if not line.empty:
                axes.plot(line["n"], line["us_per_iter"], **framework_style(backend, i))
        log_axes(axes, "n (points fitted)", "median time per iteration (µs)")
    for (device, dtype), floor in floor_lines(points).items():
        if (device, dtype) in grid:
            keep_limits(grid[device, dtype], lambda axes, floor=floor: draw_floor(axes, floor))
    handles: list[Artist] = [Line2D([], [], **framework_style(b, i)) for i, b in enumerate(backends)]
    labels = [FRAMEWORK_NAMES.get(b, b) for b in backends]
    handles.append(floor_handle())
    labels.append("machine floor (floor_us)")
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 7), fontsize="small")
    return save(figure, folder, "best_per_framework.png")


def variant_panels(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One framework's rows split into panels of at most :data:`MAX_LINES` variants: by formulation, then
    (where a formulation has more) by grad."""
    found = []
    for formulation, part in rows.groupby("formulation", sort=False):
        if part.groupby(VARIANT).ngroups <= MAX_LINES:
            found.append((formulation, part))
            continue
        for grad, by_grad in part.groupby("grad"):
            found.append((f"{formulation}, {grad}", by_grad))
    return found


def plot_variants(ok: pd.DataFrame, folder: Path) -> list[Path]:
    """``variants_<backend>.png``: each framework's own variants, one panel per device, dtype and formulation
    (and grad where needed), so that no panel holds more than :data:`MAX_LINES` lines."""
    written = []
    points = longest_per_size(ok)
    floors = floor_lines(points)
    for backend, rows in points.groupby("backend", sort=False):
        rows = rows.sort_values("formulation", key=lambda f: f != "tutorial")
        layout = [
            (device, dtype, name, part)
            for (device, dtype), by_type in rows.groupby(["device", "dtype"])
            for name, part in variant_panels(by_type)
        ]
        columns = max(sum(1 for d, t, _, _ in layout if (d, t) == key) for key in {(d, t) for d, t, _, _ in layout})
        keys = sorted({(d, t) for d, t, _, _ in layout})
        width = max(7.0, 4.6 * columns + 1.0)
        figure = Figure(figsize=(width, 3.8 * len(keys) + legend_height(rows, width)), layout="constrained")
        axes_grid = figure.subplots(len(keys), columns, squeeze=False)
        figure.suptitle(f"{FRAMEWORK_NAMES.get(backend, backend)}: every variant (area: below the machine floor)")
        used: set[tuple[str, str, str]] = set()  # (device, dtype, panel name)
        for device, dtype, name, part in layout:
            i = keys.index((device, dtype))
            j = sum(1 for (a, b, c) in used if (a, b) == (device, dtype))
            used.add((device, dtype, name))
            axes = axes_grid[i][j]
            axes.set_title(f"{device}, {dtype}, {name}")
            for variant, line in part.groupby(VARIANT):
                line = line.sort_values("n")  # one line from small n to large, whatever order the rows came in
                axes.plot(line["n"], line["us_per_iter"], **style(*variant))
            log_axes(axes, "n (points fitted)", "median time per iteration (µs)")
            if (device, dtype) in floors:
                keep_limits(axes, lambda a, floor=floors[device, dtype]: draw_floor(a, floor))
        for i, key in enumerate(keys):
            for j in range(sum(1 for d, t, _ in used if (d, t) == key), columns):
                axes_grid[i][j].set_visible(False)
        variant_legend(figure, rows, [(floor_handle(), "machine floor (floor_us)")] if floors else [])
        written.append(save(figure, folder, f"variants_{backend}.png"))
    return written


def tutorial_point(ok: pd.DataFrame) -> tuple[int, int] | None:
    """The tutorial's own point, n = 2000 (its 2000 iterations where measured, else the most iterations)."""
    at = ok[ok["n"] == TUTORIAL_SIZE]
    if at.empty:
        return None
    iterations = sorted(set(at["iterations"]), key=lambda it: (it == TUTORIAL_SIZE, it))[-1]
    return TUTORIAL_SIZE, int(iterations)


def plot_speedup_at_tutorial(ok: pd.DataFrame, folder: Path) -> Path | None:
    """Bars at the tutorial's point: each framework's best variant and its best tutorial-formulation
    variant, as a speedup over the NumPy tutorial loop (same dtype, on the CPU). None without that point."""
    point = tutorial_point(ok)
    baseline = baseline_us(ok)
    if point is None:
        return None
    at = ok[(ok["n"] == point[0]) & (ok["iterations"] == point[1])].assign(variant=variant_names)
    at = at[[(dtype, *point) in baseline.index for dtype in at["dtype"]]]
    if at.empty:
        return None
    at = at.assign(speedup=[baseline[(d, *point)] for d in at["dtype"]] / at["us_per_iter"])
    bars: dict[tuple[str, str], list[tuple[str, str, pd.Series]]] = {}  # (backend, "best" or "tutorial", row)
    for (device, dtype, backend), rows in at.groupby(["device", "dtype", "backend"]):
        fastest = rows.loc[rows["us_per_iter"].idxmin()]
        tutorial = rows[rows["formulation"] == "tutorial"]
        chosen = [("best", fastest)]
        if not tutorial.empty:
            plain = tutorial.loc[tutorial["us_per_iter"].idxmin()]
            if plain["variant"] != fastest["variant"]:
                chosen.append(("tutorial", plain))
        bars.setdefault((device, dtype), []).extend((backend, kind, row) for kind, row in chosen)
    most = max(len(v) for v in bars.values())
    figure, grid = panels(
        at,
        f"Speedup over the NumPy tutorial loop at n = {point[0]:,}, {point[1]:,} iterations",
        width=6.4,
        height=1.4 + 0.36 * most,
    )
    for (device, dtype), found in bars.items():
        top = {b: max(r["speedup"] for b2, _, r in found if b2 == b) for b, _, _ in found}
        found.sort(key=lambda b: (top[b[0]], b[1] == "best"))  # frameworks by their best, its bars together
        axes = grid[device, dtype]
        where = np.arange(len(found))
        colours = [to_rgba(COLOURS.get(b, OTHER_COLOURS)[0], 1.0 if k == "best" else 0.4) for b, k, _ in found]
        speedups = [row["speedup"] for _, _, row in found]
        axes.barh(where, speedups, color=colours)
        axes.set_yticks(where, [f"{short_label(row['variant'])}" for _, _, row in found], fontsize="small")
        for y, value in zip(where, speedups, strict=True):
            axes.annotate(
                f" {value:,.0f}x" if value >= 10 else f" {value:.1f}x", (value, y), va="center", fontsize="small"
            )
        axes.set_xscale("log")
        axes.axvline(1.0, color="grey", linewidth=1)
        axes.set_xlabel("speedup (NumPy tutorial loop's time / this time)")
        axes.grid(True, axis="x", which="both", alpha=0.3)
        axes.set_xlim(0.5, max(speedups) * 3)
    handles = [Rectangle((0, 0), 1, 1, color="0.3"), Rectangle((0, 0), 1, 1, color="0.3", alpha=0.45)]
    figure.legend(
        handles,
        ["framework's fastest variant", "its fastest tutorial-formulation variant"],
        loc="outside lower center",
        ncols=2,
        fontsize="small",
    )
    return save(figure, folder, "speedup_at_tutorial.png")


def write_plots(run: Run) -> tuple[list[Path], list[str]]:
    """Write every plot of ``run`` into its folder; return the files and notes on plots not drawn."""
    from bench.world_scaling import one_device, plot_strong_scaling

    ok = one_device(run.summary[run.summary["status"] == "ok"])
    if ok.empty:
        raise results.ResultsError(f"{run.folder}: no ok configuration to plot")
    written = [plot_best_per_framework(ok, run.folder), *plot_variants(ok, run.folder)]
    notes = []
    tutorial = plot_speedup_at_tutorial(ok, run.folder)
    if tutorial is None:
        notes.append(
            f"speedup_at_tutorial.png not drawn: no ok NumPy tutorial loop at n = {TUTORIAL_SIZE:,} on the CPU"
        )
    else:
        written.append(tutorial)
    written += [plot_time(ok, run.read("raw"), run.folder), plot_first_call(ok, run.folder)]
    speedup = plot_speedup(ok, run.folder)
    if speedup is None:
        notes.append("speedup.png not drawn: the run has no ok NumPy tutorial loop on the CPU to compare with")
    else:
        written.append(speedup)
    if (run.folder / results.FILES["losses"]).exists():
        written.append(plot_losses(run.read("losses"), run.folder))
    else:
        notes.append("losses.png not drawn: no losses.csv (losses are logged every 100 iterations)")
    if (strong := plot_strong_scaling(run.summary, run.folder)) is not None:
        written.append(strong)
    return written, notes


def command_plot(run: Run, console: Console) -> int:
    """``bench plot``: write the plots and name the files."""
    written, notes = write_plots(run)
    for path in written:
        console.print(f"wrote {path}", markup=False)
    for note in notes:
        console.print(note, markup=False)
    return 0
