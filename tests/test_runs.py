"""Run folders as readers see them: finding runs (``latest``), listing them, and the one variant label."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from backends.contract import Variant
from bench import gpu_check, results
from bench.runs import LATEST, load_run, run_folders, run_info, short_label, variant_label, variant_names


def test_the_label_names_backend_and_variant_with_its_formulation() -> None:
    assert variant_label("numba", "manual", "jit-loop-parallel", "tuned") == "numba manual/jit-loop-parallel tuned"
    assert variant_label("numpy", "manual", "eager") == "numpy manual/eager"
    tuned_step = Variant("autodiff", "jit-step", "tuned")
    assert variant_label("torch", "autodiff", "jit-step", "tuned") == f"torch {tuned_step}"
    assert short_label("torch manual/jit-loop tuned") == "torch jit-loop tuned"
    assert short_label("torch autodiff/eager") == "torch autodiff/eager"


def test_variant_names_label_every_row_once() -> None:
    frame = pd.DataFrame(
        {"backend": "jax", "grad": "manual", "mode": "jit-loop", "formulation": ["tutorial", "tuned"]},
        index=[7, 3],
    )
    assert variant_names(frame).to_dict() == {7: "jax manual/jit-loop", 3: "jax manual/jit-loop tuned"}


def test_gpu_check_device_times_tell_tutorial_from_tuned() -> None:
    """The GPU check's host/CUDA-event table labels rows with the one label: a tuned twin keeps " tuned"."""
    base = {"status": "ok", "backend": "torch", "grad": "manual", "mode": "jit-loop", "dtype": "float32"}
    base |= {"n": 1000, "iterations": 100, "iterations_timed": 100, "median_s": 1e-3, "us_per_iter": 10.0}
    base |= {"gpu_median_s": 1e-3}
    summary = pd.DataFrame([{**base, "formulation": "tutorial"}, {**base, "formulation": "tuned"}])
    console = Console(record=True, width=200)
    gpu_check.print_device_times(summary, console)
    labels = [line.split("│")[1].strip() for line in console.export_text().splitlines() if "torch" in line]
    assert labels == ["torch manual/jit-loop", "torch manual/jit-loop tuned"]


def summary_row(**fields) -> dict:
    row = {"run_id": "20261201T080000Z-box", "backend": "numpy", "grad": "manual", "mode": "eager"}
    row |= {"formulation": "tutorial", "device": "cpu", "dtype": "float64", "n": 10, "iterations": 2}
    row |= {"status": "ok", "host": "box"}
    return row | fields


def test_latest_is_the_newest_run_and_runs_are_listed(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, status in ((old, "ok"), (new, "failed")):
        folder.mkdir()
        results.append_rows(folder, "summary", [summary_row(), summary_row(n=20, status=status)])
        os.utime(folder / "summary.csv", (1e9 + (folder == new), 1e9 + (folder == new)))
    (tmp_path / "not-a-run").mkdir()
    assert run_folders(tmp_path) == [old, new]
    assert load_run(LATEST, tmp_path).folder == new == load_run(None, tmp_path).folder
    info = run_info(old)
    assert (info.run_id, info.when, info.host, info.configurations, info.ok) == (
        "20261201T080000Z-box",
        "2026-12-01 08:00",
        "box",
        2,
        True,
    )
    assert not run_info(new).ok and run_info(new).counts == {"ok": 1, "failed": 1}


def test_latest_without_runs_says_so(tmp_path: Path) -> None:
    with pytest.raises(results.ResultsError, match="no run under"):
        load_run(LATEST, tmp_path)


def test_bench_runs_lists_each_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from bench import cli

    monkeypatch.setattr(cli, "RESULTS_DIR", tmp_path)
    assert cli.main(["runs"]) == 0
    assert "no run under" in capsys.readouterr().out
    (tmp_path / "a").mkdir()
    results.append_rows(tmp_path / "a", "summary", [summary_row(), summary_row(n=20, status="mismatch")])
    assert cli.main(["runs"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if "box" in line]
    assert "2026-12-01 08:00" in line and "not ok (1 ok, 1 mismatch)" in line


def test_every_help_text_is_a_sentence(capsys) -> None:
    import argparse

    from bench import cli

    parser = cli.build_parser()
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    for each in parsers:
        with pytest.raises(SystemExit):
            each.parse_args(["--help"])
        text = capsys.readouterr().out
        blocks = [b for b in text.split("\n\n")[1:] if b.strip()]
        for line in " ".join(text.split("options:")[1:]).split("\n  -")[1:]:
            assert " ".join(line.split()).endswith("."), f"{each.prog}: -{line.strip()}"
        assert blocks, each.prog
