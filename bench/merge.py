"""``bench merge``: shard folders (or whole runs of several machines) into one run folder.

Every check runs before anything is written; a refusal is one line (:class:`MergeError`, exit status 2):
a folder that is not a run, different sweeps or git commits, a shard missing, duplicated or unfinished, two
rows of one (machine, configuration), or the shards of one machine's run measured on different hardware.
The merged rows carry the merged run id (each part's own is listed under ``merged`` in environment.json).
Whole runs of the same sweep from different machines make a *fleet* folder: its rows keep their ``machine``,
its environment.json holds each machine's fingerprint under ``machines`` (see :mod:`bench.fleet`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import results, runfolder, shard
from bench.config import Sweep
from bench.runner import plan


class MergeError(ValueError):
    """Folders that cannot be merged: reported as one line, exit status 2."""


@dataclass(frozen=True)
class Part:
    """One folder to merge: its sweep, shard (None: a whole run), machines, fingerprints and summary."""

    folder: Path
    sweep: Sweep
    sweep_id: str
    target: shard.Shard | None
    machines: tuple[str, ...]
    environment: dict
    summary: pd.DataFrame

    def environment_of(self, machine: str) -> dict:
        """The fingerprint of ``machine`` (a fleet folder keeps one per machine)."""
        return self.environment.get("machines", {}).get(machine, self.environment)

    def __str__(self) -> str:
        return str(self.folder)


def read_part(folder: Path) -> Part:
    """``folder`` as a :class:`Part`, or a :class:`MergeError` saying why it is not a run folder."""
    files = [folder / "sweep.json", folder / "environment.json", folder / results.FILES["summary"]]
    if not all(path.is_file() for path in files):
        raise MergeError(
            f"{folder}: not a run folder (a run folder holds sweep.json, environment.json and summary.csv)"
        )
    try:
        data = json.loads(files[0].read_text())
        environment = json.loads(files[1].read_text())
        sweep, target, machine = shard.from_record(data)
    except (ValueError, TypeError, KeyError) as error:
        raise MergeError(f"{folder}: damaged sweep.json or environment.json ({error!r})") from error
    try:
        summary = results.read_csv(folder, "summary")
    except results.ResultsError as error:
        raise MergeError(str(error)) from error
    machines = tuple(sorted(set(summary["machine"].astype(str))))
    if machine is not None and machines != (machine,):
        raise MergeError(f"{folder}: sweep.json names machine {machine} but its rows name {', '.join(machines)}")
    return Part(folder, sweep, shard.sweep_id(sweep), target, machines, environment, summary)


def check(parts: list[Part]) -> None:
    """Refuse ``parts`` that do not make one run (or one fleet); see the module docstring."""
    first = parts[0]
    for part in parts[1:]:
        if part.sweep_id != first.sweep_id:
            raise MergeError(
                f"different sweeps: {first} has sweep id {first.sweep_id}, {part} has {part.sweep_id}"
                " (the same sweep needs the same command line, --devices and --threads included)"
            )
        commits = [p.environment.get("git_commit", "unknown") for p in (first, part)]
        if commits[0] != commits[1]:
            raise MergeError(f"different git commits: {first} ran {commits[0]}, {part} ran {commits[1]}")
    by_machine: dict[str, list[Part]] = {}
    for part in parts:
        for machine in part.machines:
            by_machine.setdefault(machine, []).append(part)
    for machine, group in by_machine.items():
        check_machine(machine, group)
    keys = Counter(
        key
        for part in parts
        for key in part.summary[["machine", *results.KEY_COLUMNS]].astype(str).itertuples(index=False, name=None)
    )
    twice = [key for key, count in keys.items() if count > 1]
    if twice:
        raise MergeError(f"{len(twice)} configurations appear twice, first: machine {' '.join(twice[0])}")


def check_machine(machine: str, group: list[Part]) -> None:
    """One machine's parts: one whole run, or each of its N shards exactly once, finished, on one hardware."""
    targets = [(part, part.target) for part in group if part.target is not None]
    counts = {target.count for _, target in targets}
    if len(targets) < len(group):  # a whole run among them
        if len(group) > 1:
            raise MergeError(f"machine {machine} has {len(group)} runs ({', '.join(map(str, group))}); merge one each")
    elif len(counts) > 1:
        raise MergeError(f"machine {machine}: shards of different counts ({', '.join(map(str, sorted(counts)))})")
    else:
        (count,) = counts
        seen: dict[int, Part] = {}
        for part, target in targets:
            index = target.index
            if index in seen:
                raise MergeError(f"machine {machine}: shard {index}/{count} twice, in {seen[index]} and {part}")
            seen[index] = part
        missing = [f"{index}/{count}" for index in range(count) if index not in seen]
        if missing:
            raise MergeError(f"machine {machine}: shard {', '.join(missing)} missing")
    hardware = {part.environment_of(machine).get("hardware_id") for part in group}
    if len(hardware) > 1:
        raise MergeError(
            f"machine {machine}: its shards ran on different hardware (hardware_id"
            f" {', '.join(sorted(map(str, hardware)))}); name each machine with --machine"
        )
    for part in group:
        expected = {c.key for c in shard.select(plan(part.sweep), part.sweep, part.target)}
        rows = part.summary[part.summary["machine"].astype(str) == machine]
        done = set(rows[results.KEY_COLUMNS].itertuples(index=False, name=None))
        if not expected <= done:
            raise MergeError(
                f"{part}: unfinished ({len(expected - done)} of {len(expected)} configurations missing);"
                f" finish it with: {runfolder.resume_command(part.folder)}"
            )


def merge(folders: list[Path], out: Path) -> list[Part]:
    """Check ``folders`` and write their union into the new folder ``out``; return the parts merged."""
    parts = [read_part(folder) for folder in folders]
    check(parts)
    machines = sorted({machine for part in parts for machine in part.machines})
    first = parts[0]
    environments = {m: next(p.environment_of(m) for p in parts if m in p.machines) for m in machines}
    shards = [
        {"folder": str(p.folder), "run_id": p.environment.get("run_id"), "machines": list(p.machines)}
        | ({"shard_index": p.target.index, "shard_count": p.target.count} if p.target else {})
        for p in parts
    ]
    run_id = f"merged-{first.sweep_id}"
    if len(machines) == 1:
        environment = {**environments[machines[0]], "run_id": run_id, "merged": shards}
    else:
        environment = {
            "run_id": run_id,
            "schema_version": results.SCHEMA_VERSION,
            "git_commit": first.environment.get("git_commit", "unknown"),
            "machines": environments,
            "merged": shards,
        }
    record = shard.record(first.sweep, None, machines[0] if len(machines) == 1 else None)
    out.mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps({"schema_version": results.SCHEMA_VERSION, **record}, indent=1))
    (out / "environment.json").write_text(json.dumps(environment, indent=1))
    for kind in results.FILES:
        frames = [results.read_csv(p.folder, kind, may_be_empty=True) for p in parts]
        frame = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
        frame["run_id"] = run_id  # one run now; each shard's own run id is in environment.json's "merged"
        frame.reindex(columns=results.COLUMNS[kind]).to_csv(out / results.FILES[kind], index=False)
    return parts
