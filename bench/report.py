"""Tables that answer "which is fastest at my size, by how much, and from which size on does it pay off".

Every table is built once as a :class:`Section` (plain strings) and rendered three ways: a terminal table
(rich), Markdown, or, for the speed pivot, CSV. ``print_summary`` (the end of ``bench run``) shows the speed
tables and what is not ``ok``; ``bench report`` adds first-call costs, the scaling model and crossovers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.config import CODE_COLUMNS
from bench.runs import Run, variant_label, variant_names
from bench.scaling import FIT_COLUMNS, Crossover, crossovers, fit_variants

BASELINE_CODE = {"backend": "numpy", "grad": "manual", "mode": "eager", "formulation": "tutorial"}
BASELINE = tuple(BASELINE_CODE[column] for column in CODE_COLUMNS)
"""The NumPy tutorial loop, against which speedups are given: its values of :data:`bench.config.CODE_COLUMNS`."""
BASELINE_NAME = f"{BASELINE[0]} {BASELINE[1]}/{BASELINE[2]}"
FORMATS = ("table", "md", "csv")


def key_label(key: tuple) -> str:
    """``backend grad/mode [tuned] device dtype [form]`` of a :data:`bench.scaling.FIT_COLUMNS` key (the form
    in brackets where it is not just the formulation's name)."""
    where = dict(zip(FIT_COLUMNS, key, strict=True))
    label = f"{variant_label(*(where[c] for c in CODE_COLUMNS))} {where['device']} {where['dtype']}"
    form = where["form"]
    return label if form in ("", where["formulation"]) else f"{label} [{form}]"


def speed_pivot(summary: pd.DataFrame, values: str = "us_per_iter") -> pd.DataFrame:
    """``values`` of the ``ok`` rows: (device, dtype, n, iterations) x variant, the NumPy tutorial loop first."""
    ok = summary[summary["status"] == "ok"].assign(variant=variant_names)
    pivot = ok.pivot_table(index=["device", "dtype", "n", "iterations"], columns="variant", values=values, sort=True)
    order = sorted(pivot.columns, key=lambda name: (name != BASELINE_NAME, name))
    return pivot[order]


SHORTENED = "~"
"""Marks a time measured over fewer iterations than its column's, by the per-fit budget."""


def shortened_cells(summary: pd.DataFrame) -> dict[tuple, bool]:
    """Whether each ok (device, dtype, n, iterations, variant) was timed over fewer iterations than asked."""
    ok = summary[summary["status"] == "ok"]
    keys = zip(ok["device"], ok["dtype"], ok["n"], ok["iterations"], variant_names(ok), strict=True)
    return dict(zip(keys, ok["iterations_timed"] < ok["iterations"], strict=True))


def baseline_us(summary: pd.DataFrame) -> pd.Series:
    """The NumPy tutorial loop's microseconds per iteration, indexed by (dtype, n, iterations)."""
    columns = summary[CODE_COLUMNS]
    is_baseline = (columns == pd.Series(BASELINE, index=columns.columns)).all(axis=1)
    rows = summary[is_baseline & (summary["status"] == "ok") & (summary["device"] == "cpu")]
    return rows.set_index(["dtype", "n", "iterations"])["us_per_iter"]


def floor_us(summary: pd.DataFrame) -> dict[tuple[str, str], dict[tuple[int, int], float]]:
    """The machine's floor (``floor_us``, see :mod:`bench.roofline`) per (device, dtype), then (n, iterations)."""
    known = summary[(summary["status"] == "ok") & summary["floor_us"].notna()]
    return {
        key: rows.groupby(["n", "iterations"])["floor_us"].min().to_dict()
        for key, rows in known.groupby(["device", "dtype"])
    }


def significant(value: float, digits: int = 3) -> str:
    """``value`` to at least ``digits`` significant digits; from 1,000 on, whole with thousands separators."""
    if abs(float(f"{value:.{digits}g}")) >= 1000:
        return f"{value:,.0f}"
    return f"{value:#.{digits}g}".rstrip(".")


def speedup_text(speedup: float) -> str:
    return f"{speedup:.0f}x" if speedup >= 10 else f"{speedup:.1f}x" if speedup >= 1 else f"{speedup:.2f}x"


@dataclass
class Section:
    """One table as strings: a title, a header, rows, the cells to emphasise, and a note under it."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    marked: set[tuple[int, int]] = field(default_factory=set)
    """(row, column) of the cells to emphasise (the fastest of a row)."""
    note: str = ""
    label_columns: int = 2
    """Leading columns that label a row (left-aligned); the rest are numbers (right-aligned)."""


def per_table(pivot: pd.DataFrame):
    """Yield (device, dtype, table) for each device and dtype of a :func:`speed_pivot`, empty columns dropped."""
    for (device, dtype), table in pivot.groupby(level=["device", "dtype"], sort=True):
        yield device, dtype, table.droplevel(["device", "dtype"]).dropna(axis=1, how="all")


def speed_sections(summary: pd.DataFrame) -> list[Section]:
    """Per device and dtype: sizes as rows, variants as columns, median us per iteration with the speedup
    against the NumPy tutorial loop (same dtype and size, on the CPU); the fastest of each row marked."""
    baseline = baseline_us(summary)
    floors = floor_us(summary)
    shortened = shortened_cells(summary)
    sections = []
    for device, dtype, table in per_table(speed_pivot(summary)):
        floor = floors.get((device, dtype), {})
        section = Section(
            f"{device} {dtype}: median us per iteration (speedup vs the NumPy tutorial loop)",
            ["n", "iterations", *table.columns, *(["machine floor"] if floor else [])],
            note="Marked: the fastest of the row. Speedup = NumPy tutorial loop's time / this time."
            + (" Machine floor: the least time per iteration this machine allows (floor_us)." if floor else "")
            + (
                f" {SHORTENED}: timed over fewer iterations (the per-fit budget; see iterations_timed)."
                if any(was for key, was in shortened.items() if key[:2] == (device, dtype))
                else ""
            ),
        )
        fastest = table.idxmin(axis=1)
        for (n, iterations), row in table.iterrows():
            base = baseline.get((dtype, n, iterations))
            cells = [f"{n:,}", f"{iterations:,}"]
            for variant, us in row.items():
                if pd.isna(us):
                    cells.append("-")
                    continue
                if variant == fastest[(n, iterations)]:
                    section.marked.add((len(section.rows), len(cells)))
                speedup = f" ({speedup_text(base / us)})" if base is not None and pd.notna(base) else ""
                mark = SHORTENED if shortened.get((device, dtype, n, iterations, variant), False) else ""
                cells.append(f"{significant(us, 4)}{mark}{speedup}")
            if floor:
                cells.append(significant(floor[(n, iterations)], 3) if (n, iterations) in floor else "-")
            section.rows.append(cells)
        sections.append(section)
    return sections


def first_call_sections(summary: pd.DataFrame) -> list[Section]:
    """Per device and dtype: seconds of the first (warm-up) fit and, in parentheses, its compile and
    first-touch cost: first call minus the median of the timed fits (may be slightly negative from noise)."""
    first = speed_pivot(summary, "first_call_s")
    compile_s = speed_pivot(summary, "compile_s")
    sections = []
    for device, dtype, table in per_table(first):
        section = Section(
            f"{device} {dtype}: first call s (compile s)",
            ["n", "iterations", *table.columns],
            note="compile = first call - median timed fit: tracing, compilation and first-touch costs.",
        )
        for (n, iterations), row in table.iterrows():
            cells = [f"{n:,}", f"{iterations:,}"]
            for variant, seconds in row.items():
                extra = compile_s.loc[(device, dtype, n, iterations), variant]
                cells.append("-" if pd.isna(seconds) else f"{significant(seconds)} ({significant(extra, 2)})")
            section.rows.append(cells)
        sections.append(section)
    return sections


def scaling_section(summary: pd.DataFrame) -> Section:
    """The fitted ``overhead + n * per_element`` of every variant measured at two sizes or more."""
    section = Section(
        "Scaling model: us per iteration = overhead + n * per-element cost",
        ["variant", "n measured", "points", "overhead us", "per-element ns", "rms residual", "worst residual"],
        note="Least squares on relative residuals (bench/scaling.py); residuals are (model - measured) / "
        "measured. With two sizes the line passes through both points and a zero residual says nothing.",
        label_columns=2,
    )
    for key, fit in fit_variants(summary).items():
        section.rows.append([
            key_label(key), f"{fit.n_min:,}-{fit.n_max:,}", str(fit.points), significant(fit.overhead_us),
            significant(fit.per_element_ns), f"{fit.rms_rel:.1%}", f"{fit.worst_rel:.1%}",
        ])  # fmt: skip
    if not section.rows:
        section.note = "No variant was measured at two sizes or more: nothing to fit."
    return section


def crossover_text(found: Crossover) -> str:
    """Where ``found.x`` is faster, in words."""
    if found.kind in ("always", "never"):
        return "at every size" if found.kind == "always" else "at no size"
    at = f"{float(f'{found.n:.2g}'):,.0f}"
    words = f"from n = {at} on" if found.kind == "above" else f"below n = {at}"
    return words + (" (extrapolated)" if found.extrapolated else "")


def crossover_section(summary: pd.DataFrame) -> Section:
    """Every variant against the NumPy tutorial loop, and every GPU variant against itself on the CPU."""
    section = Section(
        "Crossovers: from which size on a variant is faster (from the scaling model)",
        ["variant", "vs", "variant is faster", "both measured at n"],
        note="Extrapolated: the crossing lies outside the sizes both variants were measured at.",
        label_columns=4,
    )
    for found in crossovers(fit_variants(summary), BASELINE):
        low, high = found.measured
        section.rows.append([key_label(found.x), key_label(found.y), crossover_text(found), f"{low:,}-{high:,}"])
    if not section.rows:
        section.note = "No pair of fitted variants to compare (needs the NumPy tutorial loop or a GPU)."
    return section


def not_ok_section(summary: pd.DataFrame) -> Section:
    """Every configuration that is not ``ok``, grouped by status, backend, device and reason."""
    section = Section("Not timed, or not trusted", ["status", "configurations", "reason"], label_columns=3)
    not_ok = summary[summary["status"] != "ok"].fillna({"reason": ""})
    for (status, backend, device, reason), rows in not_ok.groupby(
        ["status", "backend", "device", "reason"], sort=False
    ):
        names = variant_names(rows) + " " + rows["device"] + " " + rows["dtype"] + " n=" + rows["n"].astype(str)
        what = ", ".join(dict.fromkeys(names))
        if len(rows) > 3:
            what = f"{len(rows)} configurations of {backend} on {device}"
        section.rows.append([status, what, reason])
    return section


def print_sections(sections: list[Section], console: Console) -> None:
    """Render ``sections`` as terminal tables."""
    for section in sections:
        if not section.rows:
            console.print(f"{section.title}: {section.note}", markup=False)
            continue
        table = Table(title=section.title, caption=section.note or None, caption_justify="left")
        for i, name in enumerate(section.header):
            label = i < section.label_columns
            table.add_column(name if label else name.replace(" ", "\n"), justify="left" if label else "right")
        for r, row in enumerate(section.rows):
            table.add_row(*(
                Text(f"*{cell}", style="bold") if (r, c) in section.marked else Text(cell)
                for c, cell in enumerate(row)
            ))  # fmt: skip
        console.print(table)


def markdown(sections: list[Section]) -> str:
    """Render ``sections`` as Markdown: a heading, a pipe table and the note for each."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    out = []
    for section in sections:
        out.append(f"### {section.title}\n")
        if section.rows:
            out.append(line(section.header))
            out.append(
                "|" + "|".join(":--" if i < section.label_columns else "--:" for i in range(len(section.header))) + "|"
            )
            for r, row in enumerate(section.rows):
                out.append(line([f"**{c}**" if (r, i) in section.marked else c for i, c in enumerate(row)]))
            out.append("")
        if section.note:
            out.append(section.note + "\n")
    return "\n".join(out)


def report_sections(summary: pd.DataFrame) -> list[Section]:
    """Everything ``bench report`` shows, in reading order."""
    sections = [*speed_sections(summary), *first_call_sections(summary)]
    sections += [scaling_section(summary), crossover_section(summary)]
    not_ok = not_ok_section(summary)
    return [*sections, not_ok] if not_ok.rows else sections


def transposed(section: Section) -> Section:
    """A speed table turned over: variants as rows, sizes as columns, the marks following their cells.

    With every variant of every backend there are more variants than a terminal has room for as columns."""
    points = [f"n={row[0]}\nit={row[1]}" for row in section.rows]
    rows = [[variant, *(row[c] for row in section.rows)] for c, variant in enumerate(section.header) if c >= 2]
    marked = {(c - 2, r + 1) for r, c in section.marked}
    return Section(section.title, ["variant", *points], rows, marked, section.note, label_columns=1)


def print_summary(summary: pd.DataFrame, console: Console) -> None:
    """The end of a run: the speed tables (variants as rows, sizes as columns), then what is not ``ok``."""
    not_ok = not_ok_section(summary)
    speed = [transposed(section) for section in speed_sections(summary)]
    print_sections([*speed, *([not_ok] if not_ok.rows else [])], console)


def command_report(run: Run, form: str, console: Console) -> int:
    """``bench report``: the tables of ``run`` as a terminal table, Markdown or the speed pivot as CSV."""
    summary = run.summary
    if form == "csv":
        print(speed_pivot(summary).reset_index().to_csv(index=False), end="")
    elif form == "md":
        print(f"Run {run.folder.name}: median of the timed repeats; us = microseconds.\n")
        print(markdown(report_sections(summary)), end="")
    else:
        console.print(f"run {run.folder}", markup=False)
        print_sections(report_sections(summary), console)
    return 0
