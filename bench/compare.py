"""Compare two runs configuration by configuration: did anything get faster or slower, and on what machines?

Configurations are matched on :func:`match_columns`. For each configuration ``ok`` in both runs, every timed
sample is pooled (all repeats of all worker processes, as seconds per iteration from raw.csv, since the per-fit
budget may time two runs over different loop lengths), and :func:`bench.verdict.decide` judges all of them in
one call: an exact Mann-Whitney U test per configuration, Benjamini-Hochberg across the configurations compared,
and a minimum effect (docs/compare.md). ``ratio`` is ``median(new) / median(old)``.

A configuration ``ok`` in the old run and failed, mismatched, timed out, out of memory or diverged in the new
one is a regression too (``broken``); one skipped in either run, or present in only one, is listed.

The runs' environment.json files are compared first and what differs is printed: timings from two CPU (or GPU)
models are not the same experiment, so those are refused unless asked for.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from bench import results
from bench.report import Section, markdown, print_sections
from bench.runs import Run, variant_names
from bench.verdict import decide

REGRESSIONS = ("slower", "broken")
"""The verdicts ``--fail-on-regression`` fails on."""
CHANGED = ("faster", "slower", "broken")
"""The verdicts ``--only-changed`` shows."""
UNMATCHED = ("only in old", "only in new", "not compared")
IGNORED_ENVIRONMENT = ("run_id", "probe", "memory_available_gib", "load_average")
"""environment.json fields that differ between any two runs of one machine and say nothing about it."""


class DifferentMachines(results.ResultsError):
    """The two runs come from different CPU or GPU models (exit 2 unless ``--allow-different-machines``)."""


def match_columns(old: Run, new: Run) -> list[str]:
    """The columns that match a configuration of one run with the same configuration of the other.

    The one place that says what "the same configuration" is when comparing. When either run holds several
    machines (a fleet folder of ``bench merge``), the machine is part of it, so that two machines' samples are
    never pooled nor set against each other; runs of one machine each match by configuration (whether their
    machines may differ is the environment check's to say)."""
    several = any(run.summary["machine"].astype(str).nunique() > 1 for run in (old, new))
    return ["machine", *results.KEY_COLUMNS] if several else list(results.KEY_COLUMNS)


def pooled_samples(run: Run, columns: list[str]) -> dict[tuple, np.ndarray]:
    """Every timed sample (seconds per iteration) of each ``ok`` configuration, keyed by ``columns``.

    All rows of raw.csv with one key are pooled: every repeat of every worker process. A configuration ``ok``
    in summary.csv without samples in raw.csv means the files do not belong together (or raw.csv was cut)."""
    ok = run.summary[run.summary["status"] == "ok"]
    if ok.empty:
        return {}
    raw = run.read("raw")
    raw = raw.assign(per_iteration=results.seconds_per_iteration(raw))
    samples = {key: rows["per_iteration"].to_numpy(float) for key, rows in raw.groupby(columns, sort=False)}
    keys = list(dict.fromkeys(ok[columns].itertuples(index=False, name=None)))
    missing = [key for key in keys if key not in samples]
    if missing:
        raise results.ResultsError(
            f"{run.folder}: raw.csv lacks the samples of {len(missing)} ok configurations of summary.csv"
            f" (first: {' '.join(map(str, missing[0]))})"
        )
    return {key: samples[key] for key in keys}


# --- the two environments ---------------------------------------------------------------------------------------


def flattened(environment: dict, prefix: str = "") -> dict[str, str]:
    """environment.json as ``field: text`` (nested tables as ``packages.numpy``; the GPUs by model)."""
    out = {}
    for name, value in environment.items():
        if not prefix and name in IGNORED_ENVIRONMENT:
            continue
        if name == "gpus" and not prefix:
            out["gpus"] = ", ".join(gpu_models(environment)) or "none"
        elif isinstance(value, dict):
            out |= flattened(value, f"{prefix}{name}.")
        else:
            out[f"{prefix}{name}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def gpu_models(environment: dict) -> list[str]:
    """The model of each GPU of environment.json, sorted."""
    return sorted(str(gpu.get("name", "?")) for gpu in environment.get("gpus") or [])


def environment_differences(old: dict, new: dict) -> list[tuple[str, str, str]]:
    """``(field, old, new)`` for each field of the two environment.json files that differs (host, CPU, core
    counts, GPUs, versions, threads ...); a field one of them lacks reads ``-``."""
    before, after = flattened(old), flattened(new)
    fields = dict.fromkeys([*before, *after])
    return [(f, before.get(f, "-"), after.get(f, "-")) for f in fields if before.get(f) != after.get(f)]


def machine_differences(old: dict, new: dict) -> list[str]:
    """What makes the two machines different models: the CPU model, the GPU models (empty when the same)."""
    found = []
    if old.get("cpu_model") != new.get("cpu_model"):
        found.append(f"CPU {old.get('cpu_model')!r} vs {new.get('cpu_model')!r}")
    if gpu_models(old) != gpu_models(new):
        found.append(f"GPUs {', '.join(gpu_models(old)) or 'none'} vs {', '.join(gpu_models(new)) or 'none'}")
    return found


def check_machines(old: Run, new: Run, allow_different: bool) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The environment differences and notes; refuses two CPU or GPU models unless ``allow_different``."""
    before, after = old.environment(), new.environment()
    lacking = list(dict.fromkeys(str(run.folder) for run, found in ((old, before), (new, after)) if not found))
    if lacking:
        return [], [f"no environment.json in {' and '.join(lacking)}: the machines are not compared"]
    models = machine_differences(before, after)
    if models and not allow_different:
        raise DifferentMachines(
            f"the runs come from different machines ({'; '.join(models)}); "
            "pass --allow-different-machines to compare them anyway"
        )
    notes = [f"different machines, compared as asked: {'; '.join(models)}"] if models else []
    return environment_differences(before, after), notes


# --- the comparison -------------------------------------------------------------------------------------------


COLUMNS = ["old_us", "new_us", "old_samples", "new_samples", "ratio", "p_value", "verdict", "note"]


def compare_runs(old: Run, new: Run, *, min_effect: float, q: float) -> pd.DataFrame:
    """One row per configuration of either run: its key, the old and new median us per iteration, the numbers
    of samples, ratio, adjusted p-value and verdict; sorted by ratio, largest first (broken ones on top)."""
    columns = match_columns(old, new)
    statuses = {
        side: run.summary.drop_duplicates(columns, keep="last").set_index(columns)["status"].to_dict()
        for side, run in (("old", old), ("new", new))
    }
    samples = {"old": pooled_samples(old, columns), "new": pooled_samples(new, columns)}
    rows: list[dict[str, Any]] = []
    compared: list[tuple[int, np.ndarray, np.ndarray]] = []  # (index in rows, old samples, new samples)
    for key in dict.fromkeys([*statuses["old"], *statuses["new"]]):
        status_old, status_new = statuses["old"].get(key), statuses["new"].get(key)
        row = dict(zip(columns, key, strict=True))
        if status_old == status_new == "ok":
            before, after = samples["old"][key], samples["new"][key]
            row |= {
                "old_us": float(np.median(before)) * 1e6,
                "new_us": float(np.median(after)) * 1e6,
                "old_samples": before.size,
                "new_samples": after.size,
            }
            compared.append((len(rows), before, after))
        elif status_old is None or status_new is None:
            row["verdict"] = f"only in {'new' if status_old is None else 'old'}"
        elif status_old == "ok" and status_new != "skipped":
            row["verdict"] = "broken"
            row["note"] = f"ok -> {status_new}"
        else:
            row["verdict"] = "not compared"
            row["note"] = f"{status_old} -> {status_new}"
        rows.append(row)
    verdicts = decide([(before, after) for _, before, after in compared], min_effect=min_effect, q=q)
    for (i, _, _), found in zip(compared, verdicts, strict=True):
        rows[i] |= {"ratio": found.ratio, "p_value": found.p_value, "verdict": found.verdict}
    table = pd.DataFrame(rows, columns=[*columns, *COLUMNS]).astype({"old_samples": "Int64", "new_samples": "Int64"})
    order = table["ratio"].where(table["verdict"] != "broken", math.inf)
    return table.iloc[np.argsort(-order.fillna(-math.inf).to_numpy(), kind="stable")].reset_index(drop=True)


def geometric_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per framework: the geometric mean of new/old over its configurations with a ratio, and their verdicts."""
    rated = table[table["ratio"].notna()]
    rows = []
    for backend, group in rated.groupby("backend", sort=True):
        counts = group["verdict"].value_counts()
        rows.append(
            {
                "backend": backend,
                "geometric_mean": float(np.exp(np.log(group["ratio"]).mean())),
                "configurations": len(group),
                **{v: int(counts.get(v, 0)) for v in ("faster", "slower", "no change")},
            }
        )
    return pd.DataFrame(rows, columns=["backend", "geometric_mean", "configurations", "faster", "slower", "no change"])


def comparison_sections(table: pd.DataFrame, min_effect: float, q: float, only_changed: bool) -> list[Section]:
    """The compared configurations (and the newly broken ones) as one table, then the per-framework means."""
    section = Section(
        f"new / old median time per iteration; a change needs BH-adjusted p <= {q:g} and more than {min_effect:.0%}",
        ["variant", "device", "dtype", "n", "iterations", "old us", "new us", "new/old", "p", "samples", "verdict"],
        note="p: exact two-sided Mann-Whitney U of the pooled samples, Benjamini-Hochberg adjusted across the "
        "configurations compared; too few samples: under 8 a side (docs/compare.md).",
        label_columns=5,
    )
    shown = table[table["ratio"].notna() | (table["verdict"] == "broken")]
    if only_changed:
        shown = shown[shown["verdict"].isin(CHANGED)]
    for (_, row), variant in zip(shown.iterrows(), variant_names(shown), strict=True):
        label = [variant, row["device"], row["dtype"], f"{row['n']:,}", f"{row['iterations']:,}"]
        if pd.isna(row["ratio"]):
            section.rows.append([*label, "", "", "", "", "", f"broken: {row['note']}"])
        else:
            p = "" if pd.isna(row["p_value"]) else f"{row['p_value']:.2g}"
            section.rows.append(
                [
                    *label,
                    f"{row['old_us']:,.1f}",
                    f"{row['new_us']:,.1f}",
                    f"{row['ratio']:.3f}",
                    p,
                    f"{row['old_samples']}/{row['new_samples']}",
                    row["verdict"],
                ]
            )
        if row["verdict"] in REGRESSIONS:
            section.marked.add((len(section.rows) - 1, len(section.header) - 1))
    if not section.rows:
        section.note = "nothing changed" if only_changed else "no configuration is ok in both runs: nothing to compare"
    means = Section(
        "per framework: geometric mean of new/old over its configurations",
        ["framework", "geometric mean", "configurations", "faster", "slower", "no change"],
        label_columns=1,
    )
    for row in geometric_means(table).itertuples(index=False):
        means.rows.append([row.backend, f"{row.geometric_mean:.3f}", *map(str, row[2:])])
    return [section, means] if means.rows else [section]


def unmatched_lines(table: pd.DataFrame) -> list[str]:
    """One line per variant, device, dtype and outcome of the configurations not compared."""
    unmatched = table[table["verdict"].isin(UNMATCHED)].fillna({"note": ""})
    unmatched = unmatched.assign(variant=variant_names(unmatched))
    lines = []
    for (what, variant, device, dtype, note), rows in unmatched.groupby(
        ["verdict", "variant", "device", "dtype", "note"], sort=False
    ):
        points = ", ".join(f"n={n:,} it={it:,}" for n, it in zip(rows["n"], rows["iterations"], strict=True))
        lines.append(f"{what}: {variant} {device} {dtype}{f' ({note})' if note else ''}: {points}")
    return lines


def as_json(value: object) -> object:
    """A table cell as JSON: NaN and NA as null, numpy scalars as Python numbers."""
    if value is pd.NA or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def command_compare(
    old: Run,
    new: Run,
    *,
    min_effect: float,
    q: float,
    form: str = "table",
    only_changed: bool = False,
    allow_different_machines: bool = False,
    fail_on_regression: bool = False,
    console: Console,
) -> int:
    """``bench compare``: print what differs between the machines, then the comparison; exit 1 on a reported
    regression when ``fail_on_regression``."""
    differences, notes = check_machines(old, new, allow_different_machines)
    table = compare_runs(old, new, min_effect=min_effect, q=q)
    counts = table["verdict"].value_counts()
    regressed = int(counts[counts.index.isin(REGRESSIONS)].sum())
    failing = fail_on_regression and regressed > 0
    if form == "json":
        shown = table[table["verdict"].isin(CHANGED)] if only_changed else table
        print(
            json.dumps(
                {
                    "old": str(old.folder),
                    "new": str(new.folder),
                    "min_effect": min_effect,
                    "q": q,
                    "environment_differences": [
                        dict(zip(("field", "old", "new"), d, strict=True)) for d in differences
                    ],
                    "notes": notes,
                    "configurations": [
                        {k: as_json(v) for k, v in row.items()} for row in shown.to_dict(orient="records")
                    ],
                    "geometric_means": geometric_means(table).to_dict(orient="records"),
                    "counts": {str(k): int(v) for k, v in counts.items()},
                    "regressions": regressed,
                },
                indent=1,
            )
        )
        return 1 if failing else 0
    sections = comparison_sections(table, min_effect, q, only_changed)
    lines = [f"old: {old.folder}", f"new: {new.folder}", *notes]
    if differences:
        lines.append("environment.json differs:")
        lines += [f"  {field}: {before} -> {after}" for field, before, after in differences]
    elif not notes:
        lines.append("environment.json: same machine and software")
    tail = [*unmatched_lines(table), ", ".join(f"{count} {name}" for name, count in counts.items())]
    if failing:
        tail.append(f"regression: {regressed} configurations reported slower (by more than {min_effect:.0%}) or broken")
    if form == "md":
        print("\n".join(lines) + "\n\n" + markdown(sections) + "\n" + "\n".join(tail))
    else:
        console.print("\n".join(lines), markup=False)
        print_sections(sections, console)
        console.print("\n".join(tail), markup=False)
    return 1 if failing else 0
