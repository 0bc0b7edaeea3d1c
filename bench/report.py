"""Tables that answer "at my n, which framework is fastest, by how much, is that real, and how far from the floor".

Every table is built once as a :class:`Section` (plain strings) and rendered as a terminal table (rich),
Markdown or HTML (:mod:`bench.html_report`); the speed pivot also as CSV. The report opens with the
answer: per device and dtype, each framework's best variant as a row, ranked, sizes as columns, the
winner's time and the others' multiple of it, whether the winner's lead over the runner-up is beyond noise
(:func:`bench.verdict.decide` on every timed sample of raw.csv) and the winner's ``x_floor``; under it the
same in words. Then every variant's time (rows grouped by framework), compile costs, the scaling model and
crossovers of each framework's best variant (every variant's with ``--all``), and what was not ``ok``.

Every table fits the width it is printed at: a table with more sizes than fit is split by size range
(and Markdown tables keep to :data:`MARKDOWN_COLUMNS` columns), so no cell is ever cut.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench import results
from bench.config import CODE_COLUMNS, PLACE_COLUMNS, POINT_COLUMNS, VARIANT_COLUMNS
from bench.runs import Run, short_label, variant_label, variant_names
from bench.scaling import FIT_COLUMNS, Crossover, crossover, crossovers, fit_variants

BASELINE_CODE = {"backend": "numpy", "grad": "manual", "mode": "eager", "formulation": "tutorial"}
BASELINE = tuple(BASELINE_CODE[column] for column in CODE_COLUMNS)
"""The NumPy tutorial loop, against which speedups are given: its values of :data:`bench.config.CODE_COLUMNS`."""
BASELINE_NAME = variant_label(*BASELINE)
FORMATS = ("table", "md", "csv", "html")
MARKDOWN_COLUMNS = 8
"""The most columns of a Markdown table; a wider one is split by size range."""
FEW_SAMPLES = 5
"""A cell from fewer timed samples than this is marked :data:`FEW`."""
FEW = "?"
SHORTENED = "~"
"""Marks a time measured over fewer iterations than its column's, by the per-fit budget."""
FRAMEWORKS = {"numpy": "NumPy", "torch": "PyTorch", "jax": "JAX", "numba": "Numba", "cupy": "CuPy"}
"""How the sentences under the answer name a backend (any other backend by its own name)."""
DEVICES = {"cpu": "the CPU", "gpu": "the GPU"}
LEAD = {"faster": "faster", "no change": "tie", "too few samples": "too few", "slower": "slower"}
"""The answer table's word for each verdict of the winner against the runner-up."""
FOOTNOTES = "¹²³⁴⁵⁶⁷⁸⁹"


# --- numbers as text ------------------------------------------------------------------------------------------


def significant(value: float, digits: int = 3) -> str:
    """``value`` to at least ``digits`` significant digits; from 1,000 on, whole with thousands separators."""
    if abs(float(f"{value:.{digits}g}")) >= 1000:
        return f"{value:,.0f}"
    return f"{value:#.{digits}g}".rstrip(".")


def speedup_text(speedup: float) -> str:
    return f"{speedup:.0f}x" if speedup >= 10 else f"{speedup:.1f}x" if speedup >= 1 else f"{speedup:.2f}x"


def ratio_text(ratio: float) -> str:
    """A ratio to the winner (>= 1): ``1.04x``, ``2.2x``, ``35x``, ``1,200x``."""
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio < 1.995 else f"{ratio:.1f}x" if ratio < 9.95 else f"{ratio:.0f}x"


def time_text(us: float) -> str:
    """Microseconds per iteration with a unit: ``14.4 us``, ``3.21 ms``, ``0.512 us``."""
    return f"{significant(us / 1000)} ms" if us >= 1000 else f"{significant(us)} us"


def size_text(n: int) -> str:
    """``10^6`` for a power of ten from 10^3 on, else ``2,000``."""
    exponent = math.log10(n) if n > 0 else 0
    return f"10^{round(exponent)}" if n >= 1000 and exponent == round(exponent) else f"{n:,}"


def point_header(n: int, iterations: int) -> str:
    return f"n={size_text(n)}\n{iterations:,} it"


def framework(backend: str) -> str:
    return FRAMEWORKS.get(backend, backend)


# --- sections and how they are drawn --------------------------------------------------------------------------


@dataclass
class Section:
    """One table as strings: a title, a header, rows, the cells to emphasise, and a note under it."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    marked: set[tuple[int, int]] = field(default_factory=set)
    """(row, column) of the cells to emphasise (the fastest of a column, or of a row)."""
    note: str = ""
    label_columns: int = 2
    """Leading columns that label a row (left-aligned); the rest are numbers (right-aligned)."""
    breaks: set[int] = field(default_factory=set)
    """Rows after which a rule separates one group (framework) from the next."""
    sentences: list[str] = field(default_factory=list)
    """Plain words printed under the table (the answer's reading)."""


def width_of(cell: str) -> int:
    return max((len(line) for line in cell.split("\n")), default=0)


def column_widths(section: Section) -> list[int]:
    """Each column's width as a terminal table draws it: its widest cell or header line."""
    return [
        max([width_of(section.header[c]), *(width_of(row[c]) for row in section.rows)])
        for c in range(len(section.header))
    ]


def split_columns(section: Section, *, width: int | None = None, columns: int | None = None) -> list[Section]:
    """``section`` as one or more sections that keep its label columns and share out the others, so that
    each fits ``width`` terminal columns (rich's box: 3 per column plus 1) or holds at most ``columns``."""
    labels = section.label_columns
    if not section.rows or len(section.header) <= labels:
        return [section]
    widths = column_widths(section)
    chunks: list[list[int]] = [[]]
    used = sum(w + 3 for w in widths[:labels]) + 1
    for c in range(labels, len(section.header)):
        full = chunks[-1] and (
            (width is not None and used + widths[c] + 3 > width)
            or (columns is not None and len(chunks[-1]) >= columns - labels)
        )
        if full:
            chunks.append([])
            used = sum(w + 3 for w in widths[:labels]) + 1
        chunks[-1].append(c)
        used += widths[c] + 3
    if len(chunks) == 1 or (width is not None and min(map(len, chunks)) < 2):
        return [section]  # one column a part reads worse than cells folded to fit (rich folds, never cuts)
    parts = []
    for i, chunk in enumerate(chunks):
        keep = [*range(labels), *chunk]
        where = {old: new for new, old in enumerate(keep)}
        last = i == len(chunks) - 1
        parts.append(
            replace(
                section,
                title=f"{section.title} (part {i + 1} of {len(chunks)})",
                header=[section.header[c] for c in keep],
                rows=[[row[c] for c in keep] for row in section.rows],
                marked={(r, where[c]) for r, c in section.marked if c in where},
                note=section.note if last else "",
                sentences=section.sentences if last else [],
            )
        )
    return parts


def print_sections(sections: Sequence[Section], console: Console) -> None:
    """Render ``sections`` as terminal tables, each split to fit the console's width; cells wrap, never cut.

    Titles and notes are printed as text above and below (wrapped to the console, not to a narrow table)."""
    for whole in sections:
        console.print(Text(whole.title, style="bold"))
        if not whole.rows:
            console.print(whole.note, markup=False)
            console.print()
            continue
        parts = split_columns(whole, width=console.width)
        for i, section in enumerate(parts):
            table = Table(title=f"part {i + 1} of {len(parts)}" if len(parts) > 1 else None)
            for c, name in enumerate(section.header):
                label = c < section.label_columns
                table.add_column(name, justify="left" if label else "right", overflow="fold")
            for r, row in enumerate(section.rows):
                cells = [
                    Text(cell, style="bold") if (r, c) in section.marked else Text(cell) for c, cell in enumerate(row)
                ]
                table.add_row(*cells, end_section=r in section.breaks)
            console.print(table)
        for text in (whole.note, *whole.sentences):
            if text:
                console.print(text, markup=False)
        console.print()


def markdown(sections: Sequence[Section], columns: int | None = None) -> str:
    """Render ``sections`` as Markdown: a heading, pipe tables (each split to at most ``columns`` columns,
    keeping its label columns), the note and the sentences for each."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"

    out = []
    for whole in sections:
        out.append(f"### {whole.title}\n")
        if whole.rows:
            for section in split_columns(whole, columns=columns):
                out.append(line(section.header))
                out.append(
                    "|"
                    + "|".join(":--" if i < section.label_columns else "--:" for i in range(len(section.header)))
                    + "|"
                )
                for r, row in enumerate(section.rows):
                    out.append(line([f"**{c}**" if (r, i) in section.marked and c else c for i, c in enumerate(row)]))
                out.append("")
        if whole.note:
            out.append(whole.note + "\n")
        out.extend(sentence + "\n" for sentence in whole.sentences)
    return "\n".join(out)


# --- what the tables are made of ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """``bench report``'s ``--backends --dtypes --devices --sizes --best``; None keeps everything."""

    backends: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    sizes: tuple[int, ...] | None = None
    best: bool = False

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``frame`` (summary or raw) that pass the column filters (``best`` is not a row filter)."""
        keep = pd.Series(True, index=frame.index)
        for column, wanted in (("backend", self.backends), ("dtype", self.dtypes), ("device", self.devices)):
            if wanted is not None:
                keep &= frame[column].isin(wanted)
        if self.sizes is not None:
            keep &= frame["n"].isin(self.sizes)
        return frame[keep]


def ok_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The ``ok`` rows, with their :func:`variant_label` as ``variant``."""
    ok = summary[summary["status"] == "ok"]
    return ok.assign(variant=variant_names(ok))


def framework_best(ok: pd.DataFrame) -> pd.DataFrame:
    """Per device, dtype, size and backend: the row of the backend's fastest variant there."""
    if ok.empty:
        return ok
    fastest = ok.groupby(["device", "dtype", *POINT_COLUMNS, "backend"])["us_per_iter"].idxmin()
    return ok.loc[fastest.to_numpy()]


def main_variants(best: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """(device, dtype, backend) -> the variant that is the backend's fastest at the most sizes (ties: the
    lowest geometric mean time); the variant a framework's row is named after."""
    chosen = {}
    for key, rows in best.groupby(["device", "dtype", "backend"]):
        logs = rows.assign(log_us=np.log(rows["us_per_iter"].astype(float)))
        stats = logs.groupby("variant")["log_us"].agg(["size", "mean"])
        chosen[key] = stats.sort_values(["size", "mean"], ascending=[False, True]).index[0]
    return chosen


def best_variant_rows(ok: pd.DataFrame) -> pd.DataFrame:
    """Every row of each framework's main variant (:func:`main_variants`): what ``--best`` keeps."""
    chosen = main_variants(framework_best(ok))
    keys = zip(ok["device"], ok["dtype"], ok["backend"], ok["variant"], strict=True)
    return ok[[chosen.get(k[:3]) == k[3] for k in keys]]


def samples_by_key(raw: pd.DataFrame | None) -> dict[tuple, list[float]]:
    """Every timed sample (seconds per iteration) of a raw.csv, keyed by :data:`results.KEY_COLUMNS`."""
    if raw is None or raw.empty:
        return {}
    per_iteration = raw.assign(per_iteration=results.seconds_per_iteration(raw))
    return {key: list(rows["per_iteration"]) for key, rows in per_iteration.groupby(results.KEY_COLUMNS, sort=False)}


def key_of(row: pd.Series) -> tuple:
    return tuple(row[c] for c in results.KEY_COLUMNS)


def mark(row: pd.Series) -> str:
    """The marks of one ok row: :data:`FEW` below :data:`FEW_SAMPLES` samples, :data:`SHORTENED` when timed
    over fewer iterations than asked."""
    few = FEW if pd.notna(row.get("repeats")) and row["repeats"] < FEW_SAMPLES else ""
    timed = row.get("iterations_timed")
    return few + (SHORTENED if pd.notna(timed) and timed < row["iterations"] else "")


def key_label(key: tuple) -> str:
    """``backend grad/mode [tuned] device dtype [form]`` of a :data:`bench.scaling.FIT_COLUMNS` key (the form
    in brackets where it is not just the formulation's name)."""
    where = dict(zip(FIT_COLUMNS, key, strict=True))
    label = f"{variant_label(*(where[c] for c in CODE_COLUMNS))} {where['device']} {where['dtype']}"
    form = where["form"]
    return label if form in ("", where["formulation"]) else f"{label} [{form}]"


def short_variant(label: str) -> str:
    """A label without its backend: ``jit-loop-parallel tuned`` of ``numba manual/jit-loop-parallel tuned``."""
    return short_label(label).split(" ", 1)[1]


# --- the answer -----------------------------------------------------------------------------------------------


@dataclass
class Point:
    """One size of one answer table: the ranked frameworks' best rows and the winner's lead."""

    n: int
    iterations: int
    ranked: list[pd.Series]
    verdict: str = "too few samples"
    ratio: float = math.nan


def answer_sections(summary: pd.DataFrame, raw: pd.DataFrame | None, width: int = 100) -> list[Section]:
    """Per device and dtype: each framework's best variant as a row, ranked; sizes as columns; the lead;
    the winner's floor; and the reading in words (wrapped to ``width``)."""
    best = framework_best(ok_rows(summary))
    if best.empty:
        return []
    from bench.verdict import decide  # scipy: imported when a report is made, not by every command

    samples = samples_by_key(raw)
    tables: dict[tuple[str, str], list[Point]] = {}
    for (device, dtype, n, iterations), rows in best.groupby(["device", "dtype", *POINT_COLUMNS], sort=True):
        ranked = [row for _, row in rows.sort_values("us_per_iter").iterrows()]
        tables.setdefault((device, dtype), []).append(Point(n, iterations, ranked))
    contested = [p for points in tables.values() for p in points if len(p.ranked) >= 2]
    pairs = [(samples.get(key_of(p.ranked[1]), []), samples.get(key_of(p.ranked[0]), [])) for p in contested]
    for point, verdict in zip(contested, decide(pairs) if pairs else [], strict=True):
        point.verdict, point.ratio = verdict.verdict, verdict.ratio
    names = main_variants(best)
    return [answer_section(device, dtype, points, names, width) for (device, dtype), points in tables.items()]


def answer_section(device: str, dtype: str, points: list[Point], names: dict, width: int) -> Section:
    backends = list(dict.fromkeys(row["backend"] for p in points for row in p.ranked))

    def rank(backend: str) -> tuple:
        ratios = [
            row["us_per_iter"] / p.ranked[0]["us_per_iter"]
            for p in points
            for row in p.ranked
            if row["backend"] == backend
        ]
        return (len(points) - len(ratios), sum(map(math.log, ratios)) / len(ratios), backend)

    backends.sort(key=rank)
    section = Section(
        f"The answer, {device} {dtype}: each framework's best variant, ranked",
        ["framework's best variant", *(point_header(p.n, p.iterations) for p in points)],
        label_columns=1,
    )
    footnotes: dict[str, str] = {}
    for backend in backends:
        main = names[(device, dtype, backend)]
        cells = [short_label(main)]
        for p in points:
            found = [(i, row) for i, row in enumerate(p.ranked) if row["backend"] == backend]
            if not found:
                cells.append("-")
                continue
            i, row = found[0]
            text = (
                time_text(row["us_per_iter"]) if i == 0 else ratio_text(row["us_per_iter"] / p.ranked[0]["us_per_iter"])
            )
            if row["variant"] != main:
                note = footnotes.setdefault(row["variant"], FOOTNOTES[len(footnotes) % len(FOOTNOTES)])
                text += note
            if i == 0:
                section.marked.add((len(section.rows), len(cells)))
            cells.append(text + mark(row))
        section.rows.append(cells)
    section.breaks.add(len(section.rows) - 1)
    section.rows.append(
        ["lead over the runner-up", *(LEAD[p.verdict] if len(p.ranked) > 1 else "alone" for p in points)]
    )
    section.rows.append(["floor (winner's x_floor)", *(floor_text(p.ranked[0]) for p in points)])
    notes = [
        "Winner: its median time per iteration; others: their time as a multiple of it.",
        "Lead: the winner's timed samples against the runner-up's (faster: beyond noise; tie: within it;"
        " too few: under 8 samples a side). Floor: the winner's x_floor.",
        f"{FEW} under {FEW_SAMPLES} samples; {SHORTENED} fewer iterations timed (per-fit budget).",
    ]
    if footnotes:
        notes.append(
            "Another variant was that framework's best there: "
            + "; ".join(f"{mark_} {short_label(label)}" for label, mark_ in footnotes.items())
            + "."
        )
    section.note = " ".join(notes)
    section.sentences = [textwrap.fill(s, width) for s in answer_sentences(device, dtype, points)]
    return section


def floor_text(row: pd.Series) -> str:
    value = row.get("x_floor")
    return "-" if value is None or pd.isna(value) else ratio_text(value) if value >= 1 else f"{value:.2f}x"


def answer_sentences(device: str, dtype: str, points: list[Point]) -> list[str]:
    """One sentence per range of sizes with the same winner and runner-up."""
    groups: list[list[Point]] = []
    for p in points:
        same = groups and who(groups[-1][-1]) == who(p)
        (groups[-1].append(p) if same else groups.append([p]))
    return [sentence(device, dtype, group) for group in groups]


def who(p: Point) -> tuple:
    """What one sentence covers: the same winner, runner-up, and whether they tie."""
    return (*(row["variant"] for row in p.ranked[:2]), p.verdict == "no change")


def described(row: pd.Series) -> str:
    return f"{framework(row['backend'])} ({short_variant(row['variant'])})"


def sentence(device: str, dtype: str, group: list[Point]) -> str:
    first, last = group[0], group[-1]
    if first.n != last.n:
        at = f"From n = {size_text(first.n)} to {size_text(last.n)}"
    elif first is last:
        at = f"At n = {size_text(first.n)}"
    else:  # one size at several iteration counts
        at = f"At n = {size_text(first.n)} ({first.iterations:,} to {last.iterations:,} iterations)"
    where = f"{at} in {dtype} on {DEVICES.get(device, device)}"
    winner = described(first.ranked[0])
    if len(first.ranked) < 2:
        return f"{where}, {winner} is the only framework measured."
    leads = [p.ranked[1]["us_per_iter"] / p.ranked[0]["us_per_iter"] for p in group]
    span = (
        ratio_text(min(leads))
        if len(group) == 1 or ratio_text(min(leads)) == ratio_text(max(leads))
        else (f"{ratio_text(min(leads))[:-1]}-{ratio_text(max(leads))}")
    )
    runner = described(first.ranked[1])
    verdicts = {p.verdict for p in group}
    floors = [p.ranked[0].get("x_floor") for p in group]
    floors = [f for f in floors if f is not None and pd.notna(f)]
    at_floor = ""
    if floors:
        low, high = f"{min(floors):.1f}", f"{max(floors):.1f}"
        at_floor = f", at {low if low == high else f'{low}-{high}'}x this machine's floor"
    if verdicts == {"no change"}:
        return f"{where}, {winner} and {runner} tie: {span} apart, within the noise{at_floor}."
    text = f"{where}, {winner} is fastest: {span} ahead of {runner}{at_floor}"
    if verdicts == {"too few samples"}:
        text += "; too few samples to call the lead beyond noise"
    elif verdicts != {"faster"}:
        beyond = [size_text(p.n) for p in group if p.verdict == "faster"]
        text += f"; beyond noise at n = {', '.join(beyond)} only" if beyond else "; within the noise"
    return text + "."


# --- the tables behind the answer -----------------------------------------------------------------------------


def speed_pivot(summary: pd.DataFrame, values: str = "us_per_iter") -> pd.DataFrame:
    """``values`` of the ``ok`` rows: (device, dtype, n, iterations) x variant, the NumPy tutorial loop first."""
    ok = ok_rows(summary)
    pivot = ok.pivot_table(index=[*PLACE_COLUMNS, *POINT_COLUMNS], columns="variant", values=values, sort=True)
    order = sorted(pivot.columns, key=lambda name: (name != BASELINE_NAME, name))
    return pivot[order]


def baseline_us(summary: pd.DataFrame) -> pd.Series:
    """The NumPy tutorial loop's microseconds per iteration, indexed by (dtype, n, iterations)."""
    columns = summary[CODE_COLUMNS]
    is_baseline = (columns == pd.Series(BASELINE, index=columns.columns)).all(axis=1)
    rows = summary[is_baseline & (summary["status"] == "ok") & (summary["device"] == "cpu")]
    return rows.set_index(["dtype", *POINT_COLUMNS])["us_per_iter"]


def floor_us(summary: pd.DataFrame) -> dict[tuple[str, str], dict[tuple[int, int], float]]:
    """The machine's floor (``floor_us``, see :mod:`bench.roofline`) per (device, dtype), then (n, iterations)."""
    known = summary[(summary["status"] == "ok") & summary["floor_us"].notna()]
    return {
        key: rows.groupby(POINT_COLUMNS)["floor_us"].min().to_dict() for key, rows in known.groupby(["device", "dtype"])
    }


def variant_sections(
    ok: pd.DataFrame, title: str, cell: Callable, note: str, *, fastest: bool = True, last_row: Callable | None = None
) -> list[Section]:
    """Per device and dtype: variants as rows grouped by framework, sizes as columns, ``cell(row)`` in each;
    the fastest of each size marked when ``fastest``; ``last_row(device, dtype, points)`` adds a row under."""
    sections = []
    for (device, dtype), rows in ok.groupby(["device", "dtype"], sort=True):
        points = sorted(set(zip(rows["n"], rows["iterations"], strict=True)))
        section = Section(
            f"{device} {dtype}: {title}",
            ["variant", *(point_header(n, it) for n, it in points)],
            note=note,
            label_columns=1,
        )
        winners = rows.loc[rows.groupby(POINT_COLUMNS)["us_per_iter"].idxmin()]
        winners = set(zip(winners["variant"], winners["n"], winners["iterations"], strict=True))
        order = sorted(rows["variant"].unique())
        by_variant = {v: part.set_index(POINT_COLUMNS, drop=False) for v, part in rows.groupby("variant")}
        previous = None
        for variant in order:
            backend = variant.split(" ", 1)[0]
            if previous is not None and backend != previous:
                section.breaks.add(len(section.rows) - 1)
            previous = backend
            cells = [short_label(variant)]
            for n, it in points:
                if (n, it) not in by_variant[variant].index:
                    cells.append("-")
                    continue
                if fastest and (variant, n, it) in winners:
                    section.marked.add((len(section.rows), len(cells)))
                cells.append(cell(by_variant[variant].loc[(n, it)]))
            section.rows.append(cells)
        extra = last_row(device, dtype, points) if last_row else None
        if extra:
            section.breaks.add(len(section.rows) - 1)
            section.rows.append(extra)
        sections.append(section)
    return sections


def speed_sections(summary: pd.DataFrame) -> list[Section]:
    """Per device and dtype: every variant's median us per iteration (the fastest of each size in bold), with
    the machine's floor as the last row."""
    floors = floor_us(summary)

    def floor_row(device: str, dtype: str, points: list[tuple[int, int]]) -> list[str] | None:
        floor = floors.get((device, dtype))
        if not floor:
            return None
        return ["machine floor (floor_us)", *(significant(floor[p], 3) if p in floor else "-" for p in points)]

    return variant_sections(
        ok_rows(summary),
        "median us per iteration, every variant",
        lambda row: significant(row["us_per_iter"], 3) + mark(row),
        f"Bold: the fastest at that size. {FEW}: fewer than {FEW_SAMPLES} timed samples; {SHORTENED}: timed"
        " over fewer iterations (the per-fit budget; see iterations_timed). manual/ is left out of names.",
        last_row=floor_row,
    )


def first_call_sections(summary: pd.DataFrame) -> list[Section]:
    """Per device and dtype: seconds of compilation and first touch (first call minus the median timed fit)."""
    return variant_sections(
        ok_rows(summary),
        "compile s (first call - median timed fit)",
        lambda row: significant(row["compile_s"], 2) if pd.notna(row["compile_s"]) else "-",
        "compile = first call - median timed fit: tracing, compilation and first-touch costs (may be slightly"
        " negative from noise).",
        fastest=False,
    )


def scaling_section(summary: pd.DataFrame, *, best_only: bool = False) -> Section:
    """The fitted ``overhead + n * per_element`` of every variant (or each framework's best) measured at two
    sizes or more."""
    ok = ok_rows(summary)
    keep = set(map(tuple, best_variant_rows(ok)[VARIANT_COLUMNS].to_numpy()))
    what = "each framework's best variant" if best_only else "every variant"
    section = Section(
        f"Scaling model of {what}: us per iteration = overhead + n x per-element cost",
        ["variant", "device dtype", "n measured", "overhead us", "per-element ns", "worst residual"],
        note="Least squares on relative residuals (bench/scaling.py); residuals are (model - measured) / "
        "measured. With two sizes the line passes through both points and a zero residual says nothing."
        + ("" if not best_only else " Every variant's: bench report --all."),
        label_columns=2,
    )
    for key, fit in fit_variants(summary).items():
        if best_only and tuple(key[: len(VARIANT_COLUMNS)]) not in keep:
            continue
        where = dict(zip(FIT_COLUMNS, key, strict=True))
        form = "" if where["form"] in ("", where["formulation"]) else f" [{where['form']}]"
        name = short_label(variant_label(*(where[c] for c in CODE_COLUMNS))) + form
        section.rows.append(
            [
                name,
                f"{where['device']} {where['dtype']}",
                f"{size_text(fit.n_min)}-{size_text(fit.n_max)}",
                significant(fit.overhead_us),
                significant(fit.per_element_ns),
                f"{fit.worst_rel:.1%}",
            ]
        )
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
        "Crossovers of every variant: from which size on it is faster (from the scaling model)",
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


def best_crossover_section(summary: pd.DataFrame) -> Section:
    """Between frameworks' best variants (same dtype, any device): where each is faster than each other."""
    ok = ok_rows(summary)
    fits = fit_variants(summary)
    best = best_variant_rows(ok)
    best_keys = set(map(tuple, best[VARIANT_COLUMNS].to_numpy()))
    keys = sorted(k for k in fits if tuple(k[: len(VARIANT_COLUMNS)]) in best_keys)  # fit keys end in the form
    section = Section(
        "Crossovers between frameworks' best variants (from the scaling model)",
        ["dtype", "faster at large n", "than", "from"],
        note="Extrapolated: the crossing lies outside the sizes both were measured at. Every variant's: --all.",
        label_columns=4,
    )
    for i, x in enumerate(keys):
        for y in keys[i + 1 :]:
            if x[5] != y[5] or (x[0], x[4]) == (y[0], y[4]):
                continue
            found = crossover(x, fits[x], y, fits[y])
            if found.kind in ("never", "below"):  # name the one that wins at large n first
                found = crossover(y, fits[y], x, fits[x])
            section.rows.append([x[5], short_key(found.x, keys), short_key(found.y, keys), crossover_text(found)])
    section.rows.sort(key=lambda row: row[:3])
    if not section.rows:
        section.note = "No two frameworks' best variants were measured at two sizes or more."
    return section


def short_key(key: tuple, keys: list[tuple]) -> str:
    """A variant key's short label, with its device when the keys span several."""
    label = short_label(variant_label(*key[:4]))
    return f"{label} ({key[4]})" if len({k[4] for k in keys}) > 1 else label


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


def report_sections(
    summary: pd.DataFrame, raw: pd.DataFrame | None = None, *, full: bool = False, best: bool = False, width: int = 100
) -> list[Section]:
    """Everything ``bench report`` shows, in reading order; ``full`` (``--all``): the scaling model and
    crossovers of every variant; ``best`` (``--best``): each framework's best variant only in the tables.
    Fits across devices (world > 1) get their own scaling sections (:mod:`bench.world_scaling`)."""
    from bench.world_scaling import one_device, world_sections

    single = one_device(summary)
    ok = ok_rows(single)
    tables = single.loc[best_variant_rows(ok).index] if best else single
    sections = [*answer_sections(single, raw, width), *speed_sections(tables), *first_call_sections(tables)]
    if full:
        sections += [scaling_section(tables), crossover_section(tables)]
    else:
        sections += [scaling_section(single, best_only=True), best_crossover_section(single)]
    sections += world_sections(summary)
    not_ok = not_ok_section(summary)
    return [*sections, not_ok] if not_ok.rows else sections


def print_summary(summary: pd.DataFrame, console: Console, raw: pd.DataFrame | None = None) -> None:
    """The end of a run: the answer tables and their reading, then what is not ``ok``."""
    from bench.world_scaling import one_device

    not_ok = not_ok_section(summary)
    answers = answer_sections(one_device(summary), raw, console.width)
    print_sections([*answers, *([not_ok] if not_ok.rows else [])], console)


def read_raw(run: Run) -> pd.DataFrame | None:
    """The run's raw.csv, or None when it has none (a summary without its samples: no lead verdicts)."""
    return run.read("raw") if (run.folder / results.FILES["raw"]).is_file() else None


def command_report(
    run: Run, form: str, console: Console, filters: Filters = Filters(), *, full: bool = False, out: Path | None = None
) -> int:
    """``bench report``: the tables of ``run`` as a terminal table, Markdown, HTML (a file) or the speed
    pivot as CSV; ``out`` writes the text to a file instead of the terminal."""
    summary = filters.apply(run.summary)
    if summary.empty:
        raise results.ResultsError(f"{run.folder}: no configuration passes the filters")
    raw = read_raw(run)
    raw = filters.apply(raw) if raw is not None else None
    width = console.width if out is None and form == "table" else 100
    if form == "html":
        from bench.html_report import write_html

        path = write_html(run, summary, raw, out or run.folder / "report.html", full=full, best=filters.best)
        console.print(f"wrote {path}", markup=False)
        return 0
    sections = report_sections(summary, raw, full=full, best=filters.best, width=width)
    if form == "csv":
        text = speed_pivot(summary).reset_index().to_csv(index=False)
    elif form == "md":
        text = f"Run {run.folder.name}: median of the timed samples; us = microseconds.\n\n" + markdown(
            sections, MARKDOWN_COLUMNS
        )
    else:
        if out is None:
            console.print(f"run {run.folder}", markup=False)
            print_sections(sections, console)
            return 0
        capture = Console(width=width, record=True, file=io.StringIO())
        print_sections(sections, capture)
        text = capture.export_text()
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(f"wrote {out}", markup=False)
    return 0
