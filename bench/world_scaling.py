"""Scaling across devices: strong (n fixed, world 1..W) and weak (n / world fixed) per variant, and where
more devices stop paying, as report sections and a plot.

Every figure comes from the ``ok`` rows. Strong scaling compares a variant's time at ``world`` devices with
its own time at world 1 and the same n: speedup ``T1(n) / Tw(n)``, efficiency ``speedup / world``. Weak
scaling compares ``Tw(n)`` with one device's time at n / world: the world-1 row at that size where the sweep
has it, otherwise the ``local_us`` the group measured itself; efficiency ``T1(n / world) / Tw(n)``. The model
beside them is ``T1(n / world) + T_allreduce`` (``local_us + allreduce_us``). The crossover solves the model
``Tw(n) = o + e n / world + A`` against ``T1(n) = o + e n`` (o, e: the world-1 scaling fit of
:mod:`bench.scaling`; A: the measured ``allreduce_us``): more devices pay from ``n = A / (e (1 - 1 / world))``
on, and reach 90 % efficiency from ``n = ((0.9 world - 1) o + 0.9 world A) / (0.1 e)``.

Where world exceeds the cores a configuration had (host devices or rank processes sharing cores), the
figures measure the overhead of the collective and of sharing, not speed: the sections say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.config import POINT_COLUMNS, VARIANT_COLUMNS
from bench.report import Section, significant
from bench.runs import variant_label
from bench.scaling import fit_variants

if TYPE_CHECKING:
    from matplotlib.lines import Line2D

EFFICIENT = 0.9
"""The efficiency the crossover table gives a size for."""


STRONG = Section(
    "Strong scaling: n fixed, spread over world devices (us per iteration)",
    [
        "variant",
        "n",
        "iterations",
        "world",
        "us per iter",
        "speedup",
        "efficiency",
        "allreduce us",
        "1 device at n/world us",
        "model us",
    ],
    note="Speedup = the variant's time on one device at the same n / its time across world devices; efficiency ="
    " speedup / world. Model = one device at n / world + the all-reduce alone (measured by the group).",
    label_columns=4,
)

WEAK = Section(
    "Weak scaling: n / world fixed per device (us per iteration)",
    [
        "variant",
        "n per device",
        "world",
        "n",
        "iterations",
        "us per iter",
        "1 device us",
        "efficiency",
        "one device from",
    ],
    note="Efficiency = one device's time at n / world / the time across world devices at n. One device's time is"
    " the world-1 row at n / world where the sweep has one, else the group's own timing of one device.",
    label_columns=5,
)

CROSSOVER = Section(
    "Across devices: from which n more devices pay (model from the one-device fit and the all-reduce)",
    [
        "variant",
        "world",
        "allreduce us",
        "faster than 1 device from n",
        f"{EFFICIENT:.0%} efficient from n",
        "measured faster at n",
    ],
    note="Model: Tw(n) = o + e n / world + A against T1(n) = o + e n, with o and e the one-device scaling fit"
    " (overhead, per-element cost) and A the median measured all-reduce.",
    label_columns=2,
)


def one_device(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of fits on one device (what every other table of the report compares)."""
    return summary[summary["world"] == 1]


def label(key: tuple) -> str:
    """``backend grad/mode [tuned] device dtype`` of a :data:`bench.scaling.VARIANT_COLUMNS` key."""
    backend, grad, mode, formulation, device, dtype = key
    return f"{variant_label(backend, grad, mode, formulation)} {device} {dtype}"


def spread_rows(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``ok`` rows of the variants timed across devices: (world 1 rows, world > 1 rows)."""
    ok = summary[(summary["status"] == "ok") & (summary["us_per_iter"] > 0)]
    spread = ok[ok["world"] > 1]
    keys = set(spread[VARIANT_COLUMNS].itertuples(index=False, name=None))
    timed_across = np.array([k in keys for k in ok[VARIANT_COLUMNS].itertuples(index=False, name=None)], dtype=bool)
    single = ok[(ok["world"] == 1).to_numpy() & timed_across]
    return single, spread


def shared_cores_note(spread: pd.DataFrame) -> str:
    """The warning for rows whose world exceeds the cores the configuration had."""
    shared = spread[spread["world"] > spread["threads"]]
    if shared.empty:
        return ""
    worlds = ", ".join(str(w) for w in sorted(shared["world"].unique()))
    cores = ", ".join(str(c) for c in sorted(shared["threads"].unique()))
    return (
        f" World {worlds} exceeds the {cores} cores these configurations had: the devices share cores, so these"
        " figures measure the overhead of the collective and of sharing, not speed."
    )


def begin_section(summary: pd.DataFrame, template: Section):
    """What each scaling table starts from: the one-device rows, the rows across devices, an empty copy of
    ``template`` (its note ending with :func:`shared_cores_note`) and the one-device time per (variant, n,
    iterations)."""
    single, spread = spread_rows(summary)
    note = template.note + shared_cores_note(spread)
    section = Section(template.title, template.header, note=note, label_columns=template.label_columns)
    return single, spread, section, single.set_index([*VARIANT_COLUMNS, *POINT_COLUMNS])["us_per_iter"]


def strong_section(summary: pd.DataFrame) -> Section:
    _, spread, section, base = begin_section(summary, STRONG)
    for (*key, n, iterations), rows in spread.groupby([*VARIANT_COLUMNS, *POINT_COLUMNS], sort=True):
        key = tuple(key)
        t1 = base.get((*key, n, iterations))
        if t1 is not None:
            section.rows.append(
                [label(key), f"{n:,}", f"{iterations:,}", "1", significant(t1), "1.0x", "100%", "-", "-", "-"]
            )
        for row in rows.sort_values("world").itertuples():
            speedup = t1 / row.us_per_iter if t1 is not None else float("nan")
            section.rows.append(
                [
                    label(key),
                    f"{n:,}",
                    f"{iterations:,}",
                    str(row.world),
                    significant(row.us_per_iter),
                    "-" if t1 is None else f"{speedup:.2f}x",
                    "-" if t1 is None else f"{speedup / row.world:.0%}",
                    significant(row.allreduce_us),
                    significant(row.local_us),
                    significant(row.local_us + row.allreduce_us),
                ]
            )
    return section


def weak_section(summary: pd.DataFrame) -> Section:
    _, spread, section, base = begin_section(summary, WEAK)
    for row in spread.sort_values([*VARIANT_COLUMNS, "n", "world", "iterations"]).itertuples():
        key = tuple(getattr(row, c) for c in VARIANT_COLUMNS)
        per_device = row.n // row.world
        t1, source = base.get((*key, per_device, row.iterations)), "world-1 row"
        if t1 is None:
            t1, source = row.local_us, "the group"
        section.rows.append(
            [
                label(key),
                f"{per_device:,}",
                str(row.world),
                f"{row.n:,}",
                f"{row.iterations:,}",
                significant(row.us_per_iter),
                significant(t1),
                f"{t1 / row.us_per_iter:.0%}",
                source,
            ]
        )
    return section


def crossover_sizes(overhead_us: float, per_element_us: float, allreduce_us: float, world: int) -> tuple[float, float]:
    """The model's n from which ``world`` devices beat one, and from which they reach :data:`EFFICIENT`."""
    pays = allreduce_us / (per_element_us * (1 - 1 / world))
    efficient = ((EFFICIENT * world - 1) * overhead_us + EFFICIENT * world * allreduce_us) / (
        (1 - EFFICIENT) * per_element_us
    )
    return pays, max(efficient, pays)


def crossover_section(summary: pd.DataFrame) -> Section:
    single, spread, section, base = begin_section(summary, CROSSOVER)
    fits = fit_variants(single)
    for (*key, world), rows in spread.groupby([*VARIANT_COLUMNS, "world"], sort=True):
        key = tuple(key)
        allreduce = float(rows["allreduce_us"].median())
        faster = [
            f"{row.n:,}"
            for row in rows.itertuples()
            if (t1 := base.get((*key, row.n, row.iterations))) is not None and t1 > row.us_per_iter
        ]
        cells = [label(key), str(world), significant(allreduce)]
        fit = fits.get((*key, rows["form"].iloc[-1]))  # the one-device fit of the form these rows ran
        if fit is None or fit.per_element_ns <= 0:
            cells += ["- (one device timed at fewer than 2 sizes)", "-"]
        else:
            pays, efficient = crossover_sizes(fit.overhead_us, fit.per_element_ns / 1e3, allreduce, world)
            cells += [f"{float(f'{pays:.2g}'):,.0f}", f"{float(f'{efficient:.2g}'):,.0f}"]
        section.rows.append([*cells, ", ".join(dict.fromkeys(faster)) or "none"])
    return section


def world_sections(summary: pd.DataFrame) -> list[Section]:
    """The report's sections on fits across devices (none when the run has no ok row with world > 1)."""
    if not (summary["world"] > 1).any() or spread_rows(summary)[1].empty:
        return []
    return [strong_section(summary), weak_section(summary), crossover_section(summary)]


def plot_strong_scaling(summary: pd.DataFrame, folder: Path) -> Path | None:
    """``strong_scaling.png``: speedup over one device against world, one panel per device and dtype, one line per
    variant and n (colour by framework, line style by n) at its largest iteration count (the least weight of
    per-fit costs), beside the ideal (speedup = world); None when the run has no fit across devices to draw."""
    from bench.plots import COLOURS, DPI, OTHER_COLOURS, panels, short_label

    single, spread = spread_rows(summary)
    base = single.set_index([*VARIANT_COLUMNS, *POINT_COLUMNS])["us_per_iter"]
    point_keys = spread[[*VARIANT_COLUMNS, *POINT_COLUMNS]].itertuples(index=False, name=None)
    timed = spread[[key in base.index for key in point_keys]]
    if timed.empty:
        return None
    longest = timed[timed["iterations"] == timed.groupby([*VARIANT_COLUMNS, "n"])["iterations"].transform("max")]
    sizes = sorted(longest["n"].unique())
    styles = ["-", "--", "-.", ":"]
    figure, grid = panels(
        longest,
        "Strong scaling: speedup over one device at the same n"
        + (" (the devices share cores: overhead, not speed)" if shared_cores_note(spread) else ""),
    )
    handles: dict[str, Line2D] = {}
    for (*key, n), rows in longest.groupby([*VARIANT_COLUMNS, "n"], sort=True):
        backend, grad, mode, formulation, device, dtype = key
        rows = rows.sort_values("world")
        t1 = base[(*key, n, rows["iterations"].iloc[0])]
        axes = grid[device, dtype]
        name = f"{short_label(variant_label(backend, grad, mode, formulation))} n={n:,}"
        (line,) = axes.plot(
            [1, *rows["world"]],
            [1.0, *(t1 / rows["us_per_iter"])],
            color=COLOURS.get(backend, OTHER_COLOURS)[0],
            linestyle=styles[sizes.index(n) % len(styles)],
            marker="o",
            label=name,
        )
        handles.setdefault(name, line)
    top = int(longest["world"].max())
    for axes in grid.values():
        (ideal,) = axes.plot([1, top], [1, top], color="grey", linestyle=":", linewidth=1, label="ideal")
        axes.set_xticks(range(1, top + 1))
        axes.set_xlabel("world (devices)")
        axes.set_ylabel("speedup over one device")
        axes.set_ylim(bottom=0)
    handles["ideal (speedup = world)"] = ideal
    figure.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=2, fontsize="small")
    path = folder / "strong_scaling.png"
    figure.savefig(path, dpi=DPI)
    return path
