"""Shards and merging: the split (whole series, deterministic, balanced), ``bench run --shard``, ``bench merge``
and its refusals, on a tiny NumPy sweep run for real."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from backends import registry
from bench import results, shard
from bench.cli import main
from bench.config import PRESETS, Sweep
from bench.runner import plan
from tests.sweeps import TINY


def full_sweep(threads: int = 4) -> Sweep:
    preset = PRESETS["full"]
    return Sweep(
        backends=tuple(registry()),
        points=preset.points,
        repeats=preset.repeats,
        threads=threads,
        budget_s=preset.budget_s,
        timeout_s=preset.timeout_s,
        fit_budget_s=preset.fit_budget_s,
    )


def keys(folder: Path) -> Counter:
    summary = results.read_csv(folder)
    return Counter(summary[["machine", *results.KEY_COLUMNS]].itertuples(index=False, name=None))


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_split_puts_every_configuration_in_one_shard_with_whole_series_in_increasing_n(count: int) -> None:
    sweep = full_sweep()
    configs = plan(sweep)
    shards = shard.split(configs, sweep, count)
    assert len(shards) == count and all(shards)
    assert Counter(c.key for part in shards for c in part) == Counter(c.key for c in configs)
    owner = {}
    for index, part in enumerate(shards):
        for key, group in shard.series(part).items():
            assert owner.setdefault(key, index) == index  # a series never spans two shards
            sizes = [(c.n, c.iterations) for c in part if c.variant_key == key]
            assert sizes == sorted(sizes) == [(c.n, c.iterations) for c in group]


def test_split_is_a_pure_function_of_the_sweep() -> None:
    sweep = full_sweep()
    first = [[c.key for c in part] for part in shard.split(plan(sweep), sweep, 5)]
    again = [[c.key for c in part] for part in shard.split(list(plan(sweep)), full_sweep(), 5)]
    assert first == again
    assert shard.sweep_id(sweep) == shard.sweep_id(full_sweep())
    assert shard.sweep_id(sweep) != shard.sweep_id(full_sweep(threads=8))
    record = shard.record(sweep, shard.Shard(1, 5), "node-a")
    assert shard.from_record(json.loads(json.dumps(record))) == (sweep, shard.Shard(1, 5), "node-a")
    assert record["sweep_id"] == shard.record(sweep, shard.Shard(2, 5), "node-b")["sweep_id"]


@pytest.mark.parametrize("count", [2, 3, 4, 6, 8, 12, 16])
def test_the_full_preset_splits_within_1_25_of_the_mean(count: int) -> None:
    sweep = full_sweep()
    estimates = shard.shard_estimates(plan(sweep), sweep, count)
    assert shard.balance(estimates) <= 1.25, estimates


def test_lpt_balances_uneven_series_better_than_taking_turns() -> None:
    """Series of very different cost: LPT puts the big ones apart, where dealing them out in turn would not."""
    sweep = full_sweep()
    configs = plan(sweep)
    estimates = shard.shard_estimates(configs, sweep, 4)
    by_turns = [0.0] * 4
    for i, group in enumerate(shard.series(configs).values()):
        by_turns[i % 4] += shard.WORKER_START_S + sum(shard.estimated_seconds(c, sweep) for c in group)
    assert sum(estimates) == pytest.approx(sum(by_turns))
    assert shard.balance(estimates) < shard.balance(by_turns)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0/0", "--shard 0/0: the shard count must be at least 1"),
        ("5/3", "--shard 5/3: shards are counted from 0, so the index must be 0 to 2"),
        ("3/3", "the index must be 0 to 2"),
        ("x", "--shard wants INDEX/COUNT, counted from 0"),
        ("1/5", "the sweep has 4 series"),
    ],
)
def test_bad_shards_get_one_line_and_exit_2(tmp_path: Path, capsys, value: str, message: str) -> None:
    out = tmp_path / "run"
    assert main(["run", *TINY, "--shard", value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


@pytest.mark.parametrize("dropped", ["--devices", "--threads"])
def test_a_shard_needs_the_host_dependent_options_spelled_out(tmp_path: Path, capsys, dropped: str) -> None:
    argv = list(TINY)
    del argv[argv.index(dropped) : argv.index(dropped) + 2]
    assert main(["run", *argv, "--shard", "0/2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--shard 0/2 needs {dropped}" in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The tiny sweep run whole, as 3 shards, and whole again under another machine name."""
    root = tmp_path_factory.mktemp("shards")
    folders = {"whole": root / "whole", "other": root / "other"}
    assert main(["run", *TINY, "--machine", "node-a", "--out", str(folders["whole"])]) == 0
    assert main(["run", *TINY, "--machine", "node-b", "--out", str(folders["other"])]) == 0
    for i in range(3):
        folders[f"s{i}"] = root / f"s{i}"
        assert main(["run", *TINY, "--machine", "node-a", "--shard", f"{i}/3", "--out", str(folders[f"s{i}"])]) == 0
    return folders


@pytest.mark.slow
def test_three_shards_merge_to_exactly_the_unsharded_configurations(runs, tmp_path: Path) -> None:
    records = [json.loads((runs[f"s{i}"] / "sweep.json").read_text()) for i in range(3)]
    assert [(r["shard_index"], r["shard_count"], r["machine"]) for r in records] == [(i, 3, "node-a") for i in range(3)]
    whole = json.loads((runs["whole"] / "sweep.json").read_text())
    assert {r["sweep_id"] for r in records} == {whole["sweep_id"]} and whole["shard_index"] is None
    parts = [set(keys(runs[f"s{i}"])) for i in range(3)]
    assert all(parts) and not (parts[0] & parts[1] or parts[1] & parts[2] or parts[0] & parts[2])

    out = tmp_path / "merged"
    assert main(["merge", *(str(runs[f"s{i}"]) for i in range(3)), "--out", str(out)]) == 0
    merged = keys(out)
    assert merged == keys(runs["whole"]) and set(merged.values()) == {1} and len(merged) == 8
    summary = results.read_csv(out)
    assert (summary["status"] == "ok").all() and set(summary["machine"]) == {"node-a"}
    assert len(results.read_csv(out, "raw")) == len(results.read_csv(runs["whole"], "raw"))  # every repeat
    environment = json.loads((out / "environment.json").read_text())
    assert len(environment["merged"]) == 3 and environment["hardware_id"]
    assert shard.from_record(json.loads((out / "sweep.json").read_text()))[1] is None
    assert main(["report", str(out)]) == 0  # an ordinary run folder to the report (and its folder checks)


@pytest.mark.slow
def test_whole_runs_of_two_machines_merge_to_a_fleet(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fleet"
    assert main(["merge", str(runs["whole"]), str(runs["other"]), "--out", str(out)]) == 0
    summary = results.read_csv(out)
    assert Counter(summary["machine"]) == {"node-a": 8, "node-b": 8}
    environment = json.loads((out / "environment.json").read_text())
    assert sorted(environment["machines"]) == ["node-a", "node-b"]
    capsys.readouterr()
    assert main(["report", str(out)]) == 2  # one machine's tables; a fleet's are --by-machine's
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 2 machines (node-a, node-b): compare them with" in err


@pytest.mark.slow
def test_a_shard_resumes_its_own_configurations(runs, tmp_path: Path) -> None:
    folder = tmp_path / "s1"
    shutil.copytree(runs["s1"], folder)
    summary = (folder / "summary.csv").read_text().splitlines(keepends=True)
    (folder / "summary.csv").write_text("".join(summary[:2]))  # the header and one configuration
    assert main(["run", "--resume", str(folder)]) == 0
    assert keys(folder) == keys(runs["s1"])


def damage(folder: Path, name: str, **changes) -> None:
    path = folder / name
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not a run", "not a run folder (a run folder holds sweep.json, environment.json and summary.csv)"),
        ("other sweep", "different sweeps:"),
        ("other commit", "different git commits:"),
        ("missing", "machine node-a: shard 2/3 missing"),
        ("twice", "machine node-a: shard 1/3 twice"),
        ("other hardware", "machine node-a: its shards ran on different hardware"),
        ("same rows", "configurations appear twice, first: machine node-a"),
        ("unfinished", "unfinished (1 of "),
        ("two runs", "machine node-a has 2 runs"),
    ],
)
def test_merge_refusals_get_one_line_and_exit_2(runs, tmp_path: Path, capsys, case: str, message: str) -> None:
    folders = {name: tmp_path / name for name in ("s0", "s1", "s2")}
    for name, folder in folders.items():
        shutil.copytree(runs[name], folder)
    given = list(folders.values())
    if case == "not a run":
        (tmp_path / "empty").mkdir()
        given = [*given, tmp_path / "empty"]
    elif case == "other sweep":
        sweep = json.loads((folders["s1"] / "sweep.json").read_text())
        damage(folders["s1"], "sweep.json", repeats=sweep["repeats"] + 1)
    elif case == "other commit":
        damage(folders["s2"], "environment.json", git_commit="0" * 40)
    elif case == "missing":
        given = given[:2]
    elif case == "twice":
        shutil.copytree(runs["s1"], tmp_path / "again")
        given.append(tmp_path / "again")
    elif case == "other hardware":
        damage(folders["s1"], "environment.json", hardware_id="elsewhere")
    elif case == "same rows":
        rows = (folders["s1"] / "summary.csv").read_text().splitlines(keepends=True)[1:]
        with (folders["s0"] / "summary.csv").open("a") as file:
            file.writelines(rows)
    elif case == "unfinished":
        lines = (folders["s2"] / "summary.csv").read_text().splitlines(keepends=True)
        (folders["s2"] / "summary.csv").write_text("".join(lines[:-1]))
    elif case == "two runs":
        given = [runs["whole"], runs["whole"].parent / "whole"]
    out = tmp_path / "merged"
    assert main(["merge", *map(str, given), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


@pytest.mark.slow
def test_report_by_machine_on_a_real_fleet(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fleet"
    assert main(["merge", str(runs["whole"]), str(runs["other"]), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", "--by-machine", str(out), "--baseline", "node-b", "--format", "md"]) == 0
    printed = capsys.readouterr().out
    assert "each framework's best variant per machine" in printed and "(x node-b)" in printed
    assert "node-a" in printed and "The fastest framework per machine" in printed


@pytest.mark.slow
def test_compare_matches_a_fleet_by_machine_and_configuration(runs, tmp_path: Path) -> None:
    from bench.compare import compare_runs, match_columns
    from bench.runs import load_run

    fleet = tmp_path / "fleet"
    assert main(["merge", str(runs["whole"]), str(runs["other"]), "--out", str(fleet)]) == 0
    old, new, single = (
        load_run(str(fleet), tmp_path),
        load_run(str(fleet), tmp_path),
        load_run(str(runs["whole"]), tmp_path),
    )
    assert match_columns(old, new) == ["machine", *results.KEY_COLUMNS]
    assert match_columns(single, single) == results.KEY_COLUMNS
    table = compare_runs(old, new, min_effect=0.05, q=0.05)
    assert len(table) == 16 and Counter(table["machine"]) == {"node-a": 8, "node-b": 8}
    per_machine = results.read_csv(runs["whole"], "raw").groupby(results.KEY_COLUMNS).size()
    assert set(table["old_samples"]) == set(per_machine)  # each machine's own samples, never both machines'
    assert len(set(per_machine)) == 1
