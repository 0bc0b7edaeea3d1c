"""``bench report --by-machine``: synthetic fleets with known answers (best variant, ratio to the baseline
machine, fastest framework, floor, environment differences); a real fleet is in tests/test_shard.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import results
from bench.cli import main
from bench.fleet import by_machine_sections
from bench.runs import load_run

ITERATIONS = 100
TIMES_US = {
    # machine, backend, grad, mode: us per iteration at n = 1,000 (10x at n = 100,000)
    ("fast", "numpy", "manual", "eager"): 10.0,
    ("fast", "jax", "manual", "eager"): 40.0,
    ("fast", "jax", "manual", "jit-loop"): 2.0,
    ("slow", "numpy", "manual", "eager"): 20.0,
    ("slow", "jax", "manual", "eager"): 90.0,
    ("slow", "jax", "manual", "jit-loop"): 8.0,
}


def write_fleet(folder: Path) -> Path:
    folder.mkdir()
    for (machine, backend, grad, mode), us in TIMES_US.items():
        for n, scale in ((1_000, 1), (100_000, 10)):
            row = {
                "run_id": "merged",
                "backend": backend,
                "grad": grad,
                "mode": mode,
                "formulation": "tutorial",
                "device": "cpu",
                "dtype": "float64",
                "n": n,
                "iterations": ITERATIONS,
                "status": "ok",
                "host": f"host-{machine}",
                "machine": machine,
                "us_per_iter": us * scale,
                "x_floor": us * scale / (1.0 if machine == "fast" else 4.0),
            }
            results.append_rows(folder, "summary", [row])
    facts = {"cpu_model": "same", "logical_cores": 8, "packages": {"numpy": "2.0"}, "hardware_id": "h"}
    machines = {
        "fast": {**facts, "cpu_model": "Xeon 9", "hardware_id": "a"},
        "slow": {**facts, "cpu_model": "Atom 1", "hardware_id": "b"},
    }
    environment = {"run_id": "merged", "schema_version": results.SCHEMA_VERSION, "machines": machines}
    (folder / "environment.json").write_text(json.dumps(environment))
    return folder


def test_by_machine_tables_have_the_known_answers(tmp_path: Path) -> None:
    sections = by_machine_sections(load_run(str(write_fleet(tmp_path / "fleet")), tmp_path), "fast")
    frameworks, fastest, floor, environment = sections
    assert frameworks.header == ["framework", "n", "iterations", "fast", "slow"]
    rows = {(row[0], row[1]): row[3:] for row in frameworks.rows}
    assert rows[("jax", "1,000")] == ["2.000 jit-loop", "8.000 jit-loop x4.00"]  # best variant, x the baseline
    assert rows[("numpy", "100,000")] == ["100.0 eager", "200.0 eager x2.00"]
    assert (0, 3) in frameworks.marked and (0, 4) not in frameworks.marked  # the fast machine is marked
    assert [row[4:] for row in fastest.rows] == [
        ["jax jit-loop 2.000", "jax jit-loop 8.000"],
        ["jax jit-loop 20.00", "jax jit-loop 80.00"],
    ]
    assert floor.rows[0][4:] == ["2.00 jax jit-loop", "2.00 jax jit-loop"]  # each against its own floor
    assert environment.rows == [["cpu_model", "Xeon 9", "Atom 1"], ["hardware_id", "a", "b"]]


def test_by_machine_against_another_baseline(tmp_path: Path) -> None:
    frameworks = by_machine_sections(load_run(str(write_fleet(tmp_path / "fleet")), tmp_path), "slow")[0]
    rows = {(row[0], row[1]): row[3:] for row in frameworks.rows}
    assert rows[("jax", "1,000")] == ["2.000 jit-loop x0.25", "8.000 jit-loop"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--by-machine", "--baseline", "laptop"], "--baseline laptop: no such machine"),
        (["--baseline", "fast"], "--baseline goes with --by-machine"),
        (["--by-machine", "--format", "csv"], "--by-machine prints --format table or md"),
    ],
)
def test_by_machine_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    fleet = write_fleet(tmp_path / "fleet")
    assert main(["report", str(fleet), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_by_machine_prints_markdown(tmp_path: Path, capsys) -> None:
    assert main(["report", str(write_fleet(tmp_path / "fleet")), "--by-machine", "--format", "md"]) == 0
    printed = capsys.readouterr().out
    assert "| numpy | 1,000 | 100 | **10.00 eager** | 20.00 eager x2.00 |" in printed
