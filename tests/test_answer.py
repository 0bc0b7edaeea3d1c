"""The answer table, readable widths, filters, the per-framework plots, report.html and the progress line,
on synthetic run folders whose answer is known."""

from __future__ import annotations

import io
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from rich.console import Console

from bench import cli, plots, results
from bench.config import Configuration
from bench.progress import SweepProgress, fit_label, fixed_width
from bench.report import MARKDOWN_COLUMNS, Point, answer_sections, answer_sentences, markdown, report_sections
from bench.runs import load_run

ITERATIONS = 200
SPREAD = np.linspace(0.98, 1.02, 10)
"""Ten samples spread by +-2 %: enough for a verdict (8 a side)."""


def write_run(folder: Path, us: dict[tuple, float], samples: dict[tuple, int] | None = None) -> Path:
    """A run folder: ``us`` maps (backend, grad, mode, formulation, n) to a float64 CPU time per iteration;
    each configuration gets ten samples around it (or ``samples[key]`` of them), floor_us = 1 us per 1000 n."""
    folder.mkdir(parents=True)
    for key, per_iteration in us.items():
        backend, grad, mode, formulation, n = key
        count = (samples or {}).get(key, len(SPREAD))
        seconds = [per_iteration * ITERATIONS * 1e-6 * f for f in np.linspace(0.98, 1.02, count)]
        base = {"run_id": "20261201T080000Z-synthetic", "backend": backend, "grad": grad, "mode": mode}
        base |= {"formulation": formulation, "device": "cpu", "dtype": "float64", "n": n, "iterations": ITERATIONS}
        base |= {"status": "ok", "host": "synthetic", "threads": 2}
        floor = n / 1000
        row = {**base, "repeats": count, "iterations_timed": ITERATIONS, "median_s": float(np.median(seconds))}
        row |= {"us_per_iter": per_iteration, "floor_us": floor, "x_floor": per_iteration / floor}
        row |= {"first_call_s": 0.1, "compile_s": 0.09}
        results.append_rows(folder, "summary", [row])
        raw = [{**base, "repeat": i, "iterations_timed": ITERATIONS, "seconds": s} for i, s in enumerate(seconds)]
        results.append_rows(folder, "raw", raw)
    return folder


FAST, SLOW = ("numba", "manual", "jit-loop", "tuned"), ("torch", "manual", "jit-loop", "tuned")
SIZES = (1_000, 10_000, 100_000)


def known_answer() -> dict[tuple, float]:
    """Numba twice as fast as PyTorch at 10^3 and 10^4; the two equal at 10^5; NumPy always slowest."""
    us = {}
    for n in SIZES:
        us[(*FAST, n)] = n / 500
        us[(*SLOW, n)] = n / 250 if n < 100_000 else n / 500
        us[("numpy", "manual", "eager", "tutorial", n)] = n / 10
        us[("numba", "manual", "jit-loop", "tutorial", n)] = n / 100
    return us


def test_the_answer_ranks_frameworks_and_says_whether_the_lead_is_real(tmp_path: Path) -> None:
    run = load_run(str(write_run(tmp_path / "run", known_answer())), tmp_path)
    [section] = answer_sections(run.summary, run.read("raw"))
    assert section.title.startswith("The answer, cpu float64")
    assert [row[0] for row in section.rows] == [
        "numba jit-loop tuned",
        "torch jit-loop tuned",
        "numpy eager",
        "lead over the runner-up",
        "floor (winner's x_floor)",
    ]
    numba, torch, numpy, lead, floor = section.rows
    assert numba[1:] == ["2.00 us", "20.0 us", "200 us"]
    assert torch[1:3] == ["2.0x", "2.0x"] and numpy[1:] == ["50x", "50x", "50x"]
    assert lead[1:] == ["faster", "faster", "tie"]
    assert floor[1:] == ["2.0x", "2.0x", "2.0x"]
    assert {(0, 1), (0, 2), (0, 3)} <= section.marked
    first, second = section.sentences
    assert first.startswith("From n = 10^3 to 10^4 in float64 on the CPU, Numba (jit-loop tuned) is fastest: 2.0x")
    assert "PyTorch (jit-loop tuned)" in first and "2.0x this machine's floor" in first
    assert second.startswith("At n = 10^5") and "tie" in second


def test_few_samples_are_marked_and_give_no_verdict(tmp_path: Path) -> None:
    few = {key: 3 for key in known_answer() if key[:4] == SLOW}
    run = load_run(str(write_run(tmp_path / "run", known_answer(), few)), tmp_path)
    [section] = answer_sections(run.summary, run.read("raw"))
    torch = next(row for row in section.rows if row[0].startswith("torch"))
    assert all(cell.endswith("?") for cell in torch[1:])
    assert section.rows[-2][1:] == ["too few"] * 3
    assert "too few samples" in section.sentences[0]


def many_sizes() -> dict[tuple, float]:
    """Twelve sizes (as the full preset has) and long variant names: a table too wide for 100 columns."""
    us = {}
    for n in (100 * 2**k for k in range(12)):
        for backend, grad, mode, formulation in (
            ("numba", "manual", "jit-loop-parallel", "tuned"),
            ("torch", "autodiff", "jit-loop", "tuned"),
            ("jax", "autodiff", "jit-step", "tuned"),
            ("numpy", "manual", "eager", "tutorial"),
        ):
            us[(backend, grad, mode, formulation, n)] = n * {"numba": 1, "torch": 3, "jax": 7, "numpy": 1234}[backend]
    return us


def test_every_table_fits_100_columns_and_no_cell_is_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = write_run(tmp_path / "run", many_sizes())
    monkeypatch.setenv("COLUMNS", "100")
    for options in ([], ["--all"]):
        assert cli.main(["report", str(run), *options]) == 0
        out = capsys.readouterr().out
        assert max(map(len, out.splitlines())) <= 100 and "…" not in out
        assert "part 2 of" in out  # twelve sizes do not fit: split by size range
        for size in ("n=100", "n=204,800"):
            assert size in out
    assert cli.main(["report", str(run), "--format", "md"]) == 0
    tables = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert tables and max(line.count(" | ") + 1 for line in tables) <= MARKDOWN_COLUMNS


def test_filters_keep_only_what_was_asked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = str(write_run(tmp_path / "run", known_answer()))
    assert cli.main(["report", run, "--backends", "numba", "--sizes", "1000,10000", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "torch" not in out and "numpy" not in out and "n=10^5" not in out and "numba jit-loop tuned" in out
    assert cli.main(["report", run, "--best", "--format", "md"]) == 0
    speed = markdown(report_sections(load_run(run, tmp_path).summary, best=False))
    assert "| numba jit-loop |" not in capsys.readouterr().out and "| numba jit-loop |" in speed.replace("**", "")
    for bad, message in ((["--dtypes", "float16"], "unknown dtype float16"), (["--sizes", "many"], "a size must")):
        assert cli.main(["report", run, *bad]) == 2
        out, err = capsys.readouterr()
        assert out == "" and message in err and err.count("\n") == 1
    assert cli.main(["report", run, "--devices", "gpu"]) == 2
    assert "no configuration passes the filters" in capsys.readouterr().err


# --- plots ----------------------------------------------------------------------------------------------------


@pytest.fixture()
def figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Every figure ``bench plot`` draws for a run of every built-in backend's variant names, by file name."""
    us = {}
    for n in SIZES:
        for i, (grad, mode, formulation) in enumerate(
            (g, m, f)
            for g in ("manual", "autodiff")
            for m in ("eager", "jit-step", "jit-loop")
            for f in ("tutorial", "tuned")
        ):
            us[("torch", grad, mode, formulation, n)] = n / 100 * (1 + i)
            us[("jax", grad, mode, formulation, n)] = n / 90 * (1 + i)
        for mode in ("jit-loop", "jit-loop-parallel"):
            for formulation in ("tutorial", "tuned"):
                us[("numba", "manual", mode, formulation, n)] = n / 300
        us[("numpy", "manual", "eager", "tutorial", n)] = n / 10
        us[("numpy", "manual", "eager", "tuned", n)] = n / 40
        us[("numpy", "manual", "eager", "tutorial", 2000)] = 20.0
    drawn = {}
    original = plots.save

    def keep(figure, folder, name):
        drawn[name] = figure
        return original(figure, folder, name)

    monkeypatch.setattr(plots, "save", keep)
    run = write_run(tmp_path / "run", us)
    assert cli.main(["plot", str(run)]) == 0
    return drawn


def panel_lines(figure) -> list[list]:
    return [[line for line in axes.get_lines() if len(line.get_xdata())] for axes in figure.axes if axes.get_visible()]


def test_new_figures_have_at_most_six_lines_a_panel(figures: dict) -> None:
    expected = {"best_per_framework.png", "speedup_at_tutorial.png"}
    expected |= {f"variants_{b}.png" for b in ("numpy", "torch", "jax", "numba")}
    assert expected <= set(figures)
    for name in expected - {"speedup_at_tutorial.png"}:
        lines = panel_lines(figures[name])
        assert lines and max(map(len, lines)) <= plots.MAX_LINES, name


def test_no_two_lines_of_a_panel_look_alike(figures: dict) -> None:
    for name, figure in figures.items():
        for lines in panel_lines(figure):
            looks = [(to_hex(line.get_color()), dash_pattern(line), line.get_marker()) for line in lines]
            assert len(set(looks)) == len(looks), name


def dash_pattern(line) -> str:
    """A line's style as drawn: matplotlib names every custom dash pattern ``--``, so compare the dashes."""
    return str(line._unscaled_dash_pattern) if line.get_linestyle() != "-" else "solid"


def test_every_mode_has_its_own_line_style_and_the_floor_is_none(figures: dict) -> None:
    styles = [*map(str, plots.LINES.values()), str(plots.OTHER_LINE)]
    assert len(set(styles)) == len(styles) and "linestyle" not in plots.FLOOR_LOOK
    floors = [a for a in figures["best_per_framework.png"].axes if a.collections and a.get_visible()]
    assert floors  # the floor is a shaded area (a collection), not one of the lines


# --- report.html ----------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """What a page holds: its tables (count), images (src) and every URL an attribute names."""

    def __init__(self) -> None:
        super().__init__()
        self.tables, self.images, self.urls, self.tags = 0, [], [], set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.tables += tag == "table"
        for name, value in attrs:
            if tag == "img" and name == "src":
                self.images.append(value)
            elif name in ("src", "href", "action", "srcset", "data"):
                self.urls.append(value)


def test_report_html_is_self_contained(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = write_run(tmp_path / "run", known_answer())
    assert cli.main(["report", str(run), "--format", "html"]) == 0
    path = run / "report.html"
    assert f"wrote {path}" in capsys.readouterr().out
    text = path.read_text()
    page = Page()
    page.feed(text)
    sections = [s for s in report_sections(load_run(str(run), tmp_path).summary, None) if s.rows]
    assert page.tables == len(sections)
    pngs = sorted(p.name for p in run.glob("*.png"))
    assert len(page.images) == len(pngs) >= 6
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.urls == [] and not {"script", "link", "iframe", "object"} & page.tags
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"https?:|//[a-z]|url\(|@import", outside_images, re.IGNORECASE)
    assert "Machine and software" in text and "The answer, cpu float64" in text


# --- the progress line ----------------------------------------------------------------------------------------


def test_the_label_gives_way_before_count_and_times() -> None:
    label = "torch autodiff/jit-loop tuned cpu float32 n=100000 it=200"
    assert fit_label(label, 80) == label
    assert fit_label(label, 40) == "torch autodiff/jit-loop tuned f32 n=10^5"
    assert len(fit_label(label, 20)) == 20


def test_the_live_progress_line_fits_80_columns() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    config = Configuration(
        "torch", "autodiff", "jit-loop", "cpu", "float32", 10**6, 200, None, 0, 2, formulation="tuned"
    )
    progress = SweepProgress(1234, console)
    progress.start(config)
    time.sleep(0.2)
    progress.finish(config, {"status": "ok", "us_per_iter": 1.0})
    progress.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())
    lines = [line for line in re.split(r"[\r\n]", text) if line.strip()]
    assert max(map(len, lines)) <= 80
    last = lines[-1]
    assert "1/1234" in last and "left" in last and "n=10^6" in last
    assert fixed_width(1234) < 45


def test_one_size_at_several_iteration_counts_is_said_as_one_size() -> None:
    """A sweep with one n at 20, 200 and 2000 iterations (``--sizes`` with the preset's iteration counts): "At
    n = 10^5 (20 to 2,000 iterations)", not "From n = 10^5 to 10^5"."""

    def point(iterations: int) -> Point:
        rows = [
            pd.Series({"backend": "numba", "variant": "numba jit-loop tuned", "us_per_iter": 1.0, "x_floor": 1.5}),
            pd.Series({"backend": "torch", "variant": "torch jit-loop tuned", "us_per_iter": 2.0, "x_floor": 3.0}),
        ]
        return Point(100_000, iterations, rows, verdict="faster", ratio=2.0)

    [said] = answer_sentences("cpu", "float64", [point(20), point(200), point(2_000)])
    assert said.startswith("At n = 10^5 (20 to 2,000 iterations) in float64 on the CPU, Numba (jit-loop tuned)"), said
    [once] = answer_sentences("cpu", "float64", [point(200)])
    assert once.startswith("At n = 10^5 in float64"), once
