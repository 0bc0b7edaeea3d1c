"""Tables that answer "which is fastest at my size, and by how much"."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

BASELINE = ("numpy", "manual", "eager", "tutorial")
"""The NumPy tutorial loop, against which speedups are given."""


def variant_names(summary: pd.DataFrame) -> pd.Series:
    """``backend grad/mode`` for each row, with `` tuned`` appended for the tuned formulation."""
    formulation = summary["formulation"].where(summary["formulation"] != "tutorial", "")
    return (summary["backend"] + " " + summary["grad"] + "/" + summary["mode"] + " " + formulation).str.rstrip()


def speed_pivot(summary: pd.DataFrame) -> pd.DataFrame:
    """Median microseconds per iteration of the ``ok`` rows: (device, dtype, n, iterations) x variant."""
    ok = summary[summary["status"] == "ok"].assign(variant=variant_names)
    return ok.pivot_table(
        index=["device", "dtype", "n", "iterations"], columns="variant", values="us_per_iter", sort=True
    )


def baseline_us(summary: pd.DataFrame) -> pd.Series:
    """The NumPy tutorial loop's microseconds per iteration, indexed by (dtype, n, iterations)."""
    columns = summary[["backend", "grad", "mode", "formulation"]]
    is_baseline = (columns == BASELINE).all(axis=1)
    rows = summary[is_baseline & (summary["status"] == "ok") & (summary["device"] == "cpu")]
    return rows.set_index(["dtype", "n", "iterations"])["us_per_iter"]


def floor_us(summary: pd.DataFrame) -> dict[tuple[str, str], dict[tuple[int, int], float]]:
    """The machine's floor (``floor_us``, see :mod:`bench.roofline`) per (device, dtype), then (n, iterations)."""
    known = summary[(summary["status"] == "ok") & summary["floor_us"].notna()]
    return {
        key: rows.groupby(["n", "iterations"])["floor_us"].min().to_dict()
        for key, rows in known.groupby(["device", "dtype"])
    }


def print_summary(summary: pd.DataFrame, console: Console) -> None:
    """One table per device and dtype: variants as rows, sizes as columns, median us per iteration with the
    speedup against the NumPy tutorial loop, the fastest per size marked; then what is not ``ok``."""
    pivot = speed_pivot(summary)
    baseline = baseline_us(summary)
    floors = floor_us(summary)
    for (device, dtype), table in pivot.groupby(level=["device", "dtype"]):
        table = table.droplevel(["device", "dtype"]).T
        out = Table(title=f"{device} {dtype}: median us per iteration (speedup vs NumPy tutorial loop; * fastest)")
        out.add_column("variant")
        for n, iterations in table.columns:
            out.add_column(f"n={n:,}\nit={iterations:,}", justify="right")
        fastest = table.idxmin()
        for variant, row in table.iterrows():
            cells = []
            for point, us in row.items():
                base = baseline.get((dtype, *point))
                speedup = f" ({base / us:.1f}x)" if base is not None else ""
                cells.append("-" if pd.isna(us) else f"{'*' if fastest[point] == variant else ''}{us:,.1f}{speedup}")
            out.add_row(variant, *cells)
        floor = floors.get((device, dtype))
        if floor is not None:
            out.add_row(
                "machine floor (x_floor = us / floor)", *(f"{floor.get(p, float('nan')):,.2f}" for p in table.columns)
            )
        console.print(out)
    print_not_ok(summary, console)


def print_not_ok(summary: pd.DataFrame, console: Console) -> None:
    """Every configuration that is not ``ok``, grouped by status, backend, device and reason."""
    not_ok = summary[summary["status"] != "ok"].fillna({"reason": ""})
    if not_ok.empty:
        return
    console.print("Not timed, or not trusted:")
    for (status, backend, device, reason), rows in not_ok.groupby(
        ["status", "backend", "device", "reason"], sort=False
    ):
        what = ", ".join(dict.fromkeys(variant_names(rows) + " " + rows["dtype"] + " n=" + rows["n"].astype(str)))
        if len(rows) > 3:
            what = f"{len(rows)} configurations of {backend} on {device}"
        console.print(f"  {status}: {what}: {reason}", markup=False, highlight=False)
