"""``bench report --by-machine``: the machines of a fleet folder (``bench merge`` of whole runs with different
``--machine`` names) side by side.

Rows are never pooled across machines: every figure is one machine's own summary row (the median of that
machine's repeats), and each ``x_floor`` is against that machine's own probe. Tables: each framework's best
variant per machine at each size with its time as a multiple of the baseline machine's, the best ``x_floor``
per machine, the fastest framework per machine, and the facts of the machines' environments that differ.
"""

from __future__ import annotations

import json

import pandas as pd

from bench.config import PLACE_COLUMNS, POINT_COLUMNS
from bench.report import Section, significant
from bench.runs import Run, short_label, variant_names

POINT = [*PLACE_COLUMNS, *POINT_COLUMNS]
LEFT_OUT = (
    "run_id",
    "merged",
    "machines",
    "probe",
    "workers",
    "memory_available_gib",
    "threads_requested",
    "load_average",
)
"""Environment facts not compared: per-run bookkeeping, or figures shown elsewhere (the probe is the floor)."""


class FleetError(ValueError):
    """A report that cannot be made (an unknown baseline): one line, exit status 2."""


def machines_of(run: Run) -> list[str]:
    return sorted(set(run.summary["machine"].astype(str)))


def ok_rows(run: Run) -> pd.DataFrame:
    ok = run.summary[run.summary["status"] == "ok"].copy()
    ok["machine"] = ok["machine"].astype(str)
    ok["variant"] = variant_names(ok).map(short_label)
    return ok


def best_per_framework(ok: pd.DataFrame) -> pd.DataFrame:
    """The fastest ``ok`` variant of each framework (backend) per machine and point."""
    index = ok.groupby(["machine", "backend", *POINT])["us_per_iter"].idxmin()
    return ok.loc[index, ["machine", "backend", *POINT, "variant", "us_per_iter", "x_floor"]]


def framework_sections(ok: pd.DataFrame, machines: list[str], baseline: str) -> list[Section]:
    """Per device and dtype: one row per (framework, size), one column per machine: its best variant's us
    per iteration and, off the baseline machine, that time over the baseline machine's."""
    sections = []
    for (device, dtype), rows in best_per_framework(ok).groupby(["device", "dtype"], sort=True):
        section = Section(
            f"{device} {dtype}: each framework's best variant per machine, us per iteration (x {baseline})",
            ["framework", "n", "iterations", *machines],
            note=f"x {baseline}: this machine's time over the baseline machine's, {baseline} (under 1: faster)."
            " Marked: the fastest machine of the row. Each time is one machine's own median; repeats are never"
            " pooled across machines.",
            label_columns=3,
        )
        for (backend, n, iterations), group in rows.groupby(["backend", "n", "iterations"], sort=True):
            times = group.set_index("machine")
            base = times.loc[baseline, "us_per_iter"] if baseline in times.index else None
            cells = [backend, f"{n:,}", f"{iterations:,}"]
            for machine in machines:
                if machine not in times.index:
                    cells.append("-")
                    continue
                us, variant = times.loc[machine, "us_per_iter"], times.loc[machine, "variant"].split(" ", 1)[1]
                ratio = "" if machine == baseline or base is None else f" x{us / base:.2f}"
                if machine == times["us_per_iter"].idxmin() and len(times) > 1:
                    section.marked.add((len(section.rows), len(cells)))
                cells.append(f"{significant(us, 4)} {variant}{ratio}")
            section.rows.append(cells)
        sections.append(section)
    return sections


def point_sections(ok: pd.DataFrame, machines: list[str]) -> list[Section]:
    """Per point, one column per machine: the fastest framework (its best variant and time), then the least
    ``x_floor`` reached on that machine (its own floor)."""
    fastest = Section(
        "The fastest framework per machine (its best variant, us per iteration)",
        [*POINT, *machines],
        label_columns=4,
    )
    floor = Section(
        "The closest to each machine's own floor: least x_floor (time / the machine's floor_us) and its variant",
        [*POINT, *machines],
        note="x_floor is against each machine's own probe (bandwidth and arithmetic rate); CPU rows only.",
        label_columns=4,
    )
    by_point = {key: rows for key, rows in ok.groupby(POINT, sort=True)}
    for (device, dtype, n, iterations), rows in by_point.items():
        label = [device, dtype, f"{n:,}", f"{iterations:,}"]
        fast_cells, floor_cells = list(label), list(label)
        for machine in machines:
            mine = rows[rows["machine"] == machine]
            if mine.empty:
                fast_cells.append("-")
                floor_cells.append("-")
                continue
            top = mine.loc[mine["us_per_iter"].idxmin()]
            fast_cells.append(f"{top['variant']} {significant(top['us_per_iter'], 4)}")
            floors = mine[mine["x_floor"].notna()]
            if floors.empty:
                floor_cells.append("-")
            else:
                closest = floors.loc[floors["x_floor"].idxmin()]
                floor_cells.append(f"{closest['x_floor']:.2f} {closest['variant']}")
        fastest.rows.append(fast_cells)
        if any(cell != "-" for cell in floor_cells[4:]):
            floor.rows.append(floor_cells)
    if not floor.rows:
        floor.note = "no machine has a floor (run without --no-probe to measure one)"
    return [fastest, floor]


def flatten(facts: dict, prefix: str = "") -> dict[str, str]:
    """Nested environment facts as ``packages.numpy: 2.1.0``; lists as JSON."""
    flat: dict[str, str] = {}
    for key, value in facts.items():
        if not prefix and key in LEFT_OUT:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value)
    return flat


def environments(run: Run, machines: list[str]) -> dict[str, dict]:
    """Each machine's environment.json facts: a fleet folder keeps them under ``machines``."""
    environment = run.environment()
    kept = environment.get("machines")
    if kept:
        return {m: kept.get(m, {}) for m in machines}
    return {m: environment for m in machines}


def environment_section(run: Run, machines: list[str]) -> Section:
    """The environment facts whose values differ between the machines (the same everywhere: left out)."""
    flat = {m: flatten(facts) for m, facts in environments(run, machines).items()}
    names = sorted({name for facts in flat.values() for name in facts})
    section = Section("What differs between the machines' environments", ["fact", *machines], label_columns=1)
    for name in names:
        values = [flat[m].get(name, "-") for m in machines]
        if len(set(values)) > 1:
            section.rows.append([name, *values])
    if not section.rows:
        section.note = "the machines' recorded environments do not differ"
    return section


def by_machine_sections(run: Run, baseline: str | None) -> list[Section]:
    """Every ``--by-machine`` table, in reading order; ``baseline`` None: the first machine by name."""
    machines = machines_of(run)
    baseline = baseline or machines[0]
    if baseline not in machines:
        raise FleetError(f"--baseline {baseline}: no such machine in {run.folder} (machines: {', '.join(machines)})")
    ok = ok_rows(run)
    if ok.empty:
        raise FleetError(f"{run.folder}: no configuration is ok on any machine: nothing to compare")
    return [
        *framework_sections(ok, machines, baseline),
        *point_sections(ok, machines),
        environment_section(run, machines),
    ]
