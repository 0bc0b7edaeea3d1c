"""Compare two runs configuration by configuration: did anything get faster or slower?

Configurations are matched on :data:`bench.results.KEY_COLUMNS`. For each configuration ``ok`` in both runs,
the change is ``median(new repeats) / median(old repeats)`` with a 95 % percentile-bootstrap confidence
interval (:func:`bench.stats.ratio_of_medians`: 10,000 resamples of each run's repeats from raw.csv, fixed
seed 0, so the verdict is reproducible). The verdict follows the convention of asv (airspeed velocity): a
change must be both large and significant.

- ``slower``: ratio > 1 + threshold and the whole interval above 1.
- ``faster``: ratio < 1 / (1 + threshold) and the whole interval below 1.
- ``uncertain``: the ratio passes the threshold but the interval contains 1, or either run has fewer than
  :data:`MIN_REPEATS` repeats (too few to tell a change from noise).
- ``unchanged``: otherwise.

A configuration ``ok`` in the old run and failed, mismatched, timed out, out of memory or diverged in the
new one is a regression too (``broken``); one skipped in either run, or present in only one, is listed.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from bench import results
from bench.report import Section, print_sections
from bench.runs import Run, variant_names
from bench.stats import ratio_of_medians

MIN_REPEATS = 3
"""Fewer repeats than this on either side give no significant verdict."""
REGRESSIONS = ("slower", "broken")


def repeats_by_key(raw: pd.DataFrame) -> dict[tuple, list[float]]:
    """The timed seconds per iteration of every configuration of a raw.csv, keyed by
    :data:`results.KEY_COLUMNS` (per iteration: the per-fit budget may time two runs over different counts)."""
    per_iteration = raw.assign(per_iteration=results.seconds_per_iteration(raw))
    return {key: list(rows["per_iteration"]) for key, rows in per_iteration.groupby(results.KEY_COLUMNS, sort=False)}


def ok_repeats(run: Run) -> dict[tuple, list[float]]:
    """The repeats of the run's ``ok`` configurations; a configuration ``ok`` in summary.csv without its
    repeats in raw.csv means the files do not belong together (or raw.csv was cut)."""
    ok = run.summary[run.summary["status"] == "ok"]
    if ok.empty:
        return {}
    repeats = repeats_by_key(run.read("raw"))
    keys = list(ok[results.KEY_COLUMNS].itertuples(index=False, name=None))
    missing = [key for key in keys if key not in repeats]
    if missing:
        raise results.ResultsError(
            f"{run.folder}: raw.csv lacks the repeats of {len(missing)} ok configurations of summary.csv"
            f" (first: {' '.join(map(str, missing[0]))})"
        )
    return {key: repeats[key] for key in keys}


def verdict(ratio: float, low: float, high: float, repeats: int, threshold: float) -> str:
    """``faster``, ``slower``, ``uncertain`` or ``unchanged`` (see the module docstring)."""
    beyond = ratio > 1 + threshold or ratio < 1 / (1 + threshold)
    if not beyond:
        return "unchanged"
    if repeats < MIN_REPEATS or low <= 1 <= high:
        return "uncertain"
    return "slower" if ratio > 1 else "faster"


def compare_runs(old: Run, new: Run, threshold: float) -> pd.DataFrame:
    """One row per configuration of either run: key, old and new us per iteration, ratio, interval, verdict."""
    statuses = {
        side: run.summary.set_index(results.KEY_COLUMNS)["status"].to_dict()
        for side, run in (("old", old), ("new", new))
    }
    repeats = {"old": ok_repeats(old), "new": ok_repeats(new)}
    rows = []
    for key in dict.fromkeys([*statuses["old"], *statuses["new"]]):
        status_old, status_new = statuses["old"].get(key), statuses["new"].get(key)
        row = dict(zip(results.KEY_COLUMNS, key, strict=True))
        if status_old == status_new == "ok":
            before, after = repeats["old"][key], repeats["new"][key]
            ratio, low, high = ratio_of_medians(before, after)
            row |= {
                "old_us": pd.Series(before).median() * 1e6,
                "new_us": pd.Series(after).median() * 1e6,
                "ratio": ratio, "low": low, "high": high,
                "verdict": verdict(ratio, low, high, min(len(before), len(after)), threshold),
            }  # fmt: skip
        elif status_old is None or status_new is None:
            row["verdict"] = f"only in {'new' if status_old is None else 'old'}"
        elif status_old == "ok" and status_new != "skipped":
            row["verdict"] = "broken"
            row["note"] = f"ok -> {status_new}"
        else:
            row["verdict"] = "not compared"
            row["note"] = f"{status_old} -> {status_new}"
        rows.append(row)
    return pd.DataFrame(
        rows, columns=[*results.KEY_COLUMNS, "old_us", "new_us", "ratio", "low", "high", "verdict", "note"]
    )


def comparison_section(table: pd.DataFrame, threshold: float) -> Section:
    """The compared configurations as a table (only those with a ratio, or newly broken)."""
    section = Section(
        f"new / old median time per iteration (95 % bootstrap interval); threshold {threshold:.0%}",
        ["variant", "device", "dtype", "n", "iterations", "old us", "new us", "new/old", "interval", "verdict"],
        note="slower/faster: beyond the threshold and the interval excludes 1; uncertain: beyond the threshold "
        f"but not significant (or under {MIN_REPEATS} repeats).",
        label_columns=5,
    )
    shown = table[table["ratio"].notna() | (table["verdict"] == "broken")]
    for (_, row), variant in zip(shown.iterrows(), variant_names(shown), strict=True):
        label = [variant, row["device"], row["dtype"]]
        label += [f"{row['n']:,}", f"{row['iterations']:,}"]
        if pd.isna(row["ratio"]):
            section.rows.append([*label, "", "", "", "", f"broken: {row['note']}"])
            continue
        numbers = [f"{row['old_us']:,.1f}", f"{row['new_us']:,.1f}", f"{row['ratio']:.3f}"]
        section.rows.append([*label, *numbers, f"{row['low']:.3f}-{row['high']:.3f}", row["verdict"]])
        if row["verdict"] in REGRESSIONS:
            section.marked.add((len(section.rows) - 1, len(label) + 4))
    if not section.rows:
        section.note = "no configuration is ok in both runs: nothing to compare"
    return section


def command_compare(old: Run, new: Run, threshold: float, fail_on_regression: bool, console: Console) -> int:
    """``bench compare``: print the comparison; exit 1 on a regression when ``fail_on_regression``."""
    table = compare_runs(old, new, threshold)
    console.print(f"old: {old.folder}\nnew: {new.folder}", markup=False)
    print_sections([comparison_section(table, threshold)], console)
    unmatched = table[table["verdict"].isin(["only in old", "only in new", "not compared"])].fillna({"note": ""})
    unmatched = unmatched.assign(variant=variant_names(unmatched))
    for (what, variant, device, dtype, note), rows in unmatched.groupby(
        ["verdict", "variant", "device", "dtype", "note"], sort=False
    ):
        points = ", ".join(f"n={n:,} it={it:,}" for n, it in zip(rows["n"], rows["iterations"], strict=True))
        status = f" ({note})" if note else ""
        console.print(f"{what}: {variant} {device} {dtype}{status}: {points}", markup=False)
    counts = table["verdict"].value_counts()
    console.print(", ".join(f"{count} {name}" for name, count in counts.items()), markup=False)
    regressed = int(counts[counts.index.isin(REGRESSIONS)].sum())
    if fail_on_regression and regressed:
        console.print(f"regression: {regressed} configurations slower by more than {threshold:.0%} or broken")
        return 1
    return 0
