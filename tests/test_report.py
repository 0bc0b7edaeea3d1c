"""The report, scaling model and plots: synthetic data with known answers, then a tiny real sweep."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from bench import cli, results
from bench.plots import floor_lines
from bench.report import BASELINE, crossover_section, markdown, report_sections
from bench.runs import load_run
from bench.scaling import ScalingFit, crossover, fit_scaling, fit_variants
from tests.sweeps import NUMPY_AND_JAX_LOOPS
from tests.synthetic import write_configuration

ITERATIONS = 100


def linear_us(overhead_us: float, per_element_ns: float, n: int) -> float:
    return overhead_us + n * per_element_ns / 1e3


def write_run(folder: Path, seconds: dict[tuple, list[float]], statuses: dict[tuple, str] | None = None) -> Path:
    """A synthetic run folder: ``seconds`` maps (backend, grad, mode, device, n) to the repeats of a float64
    configuration of :data:`ITERATIONS` iterations; ``statuses`` overrides ``ok`` for some of them."""
    folder.mkdir(parents=True)
    for (backend, grad, mode, device, n), samples in seconds.items():
        status = (statuses or {}).get((backend, grad, mode, device, n), "ok")
        write_configuration(
            folder, samples, ITERATIONS, status, backend=backend, grad=grad, mode=mode, device=device, n=n
        )
    return folder


NOISE = np.array([1.0, 0.99, 1.01, 0.995, 1.005])
"""Five repeats spread by +-1 %, as a quiet machine gives."""


def synthetic_seconds(scale: float = 1.0) -> dict[tuple, list[float]]:
    """NumPy loop: 5 us + 2 ns/element; JAX jit-loop: 50 us + 0.5 ns/element (they cross at n = 30,000)."""
    seconds = {}
    for key, (overhead, per_element) in {
        (*BASELINE[:3], "cpu"): (5.0, 2.0),
        ("jax", "manual", "jit-loop", "cpu"): (50.0, 0.5),
    }.items():
        for n in (1_000, 10_000, 100_000, 1_000_000):
            per_fit = linear_us(overhead, per_element, n) * ITERATIONS / 1e6
            seconds[(*key, n)] = list(per_fit * scale * NOISE)
    return seconds


# --- the scaling model ----------------------------------------------------------------------------------------


def test_fit_recovers_exact_overhead_and_per_element_cost() -> None:
    n = np.array([100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000])
    fit = fit_scaling(n, linear_us(37.5, 1.25, n))
    assert fit.overhead_us == pytest.approx(37.5, rel=1e-9)
    assert fit.per_element_ns == pytest.approx(1.25, rel=1e-9)
    assert fit.rms_rel < 1e-12 and fit.worst_rel < 1e-12
    assert (fit.points, fit.n_min, fit.n_max) == (6, 100, 10_000_000)


def test_fit_gives_every_size_the_same_say() -> None:
    """A 10 % error at the smallest size must not vanish under the largest: relative residuals see it."""
    n = np.array([1_000, 10_000, 100_000, 1_000_000])
    us = linear_us(20.0, 3.0, n)
    us[0] *= 1.10
    fit = fit_scaling(n, us)
    assert 0.02 < fit.worst_rel < 0.10
    assert fit.overhead_us == pytest.approx(20.0, rel=0.3)


def test_fit_keeps_parameters_non_negative() -> None:
    n = np.array([1_000, 2_000, 4_000])
    no_overhead = fit_scaling(n, n * 1e-3 * np.array([0.95, 1.0, 1.0]))  # unconstrained: overhead < 0
    assert no_overhead.overhead_us == 0 and no_overhead.per_element_ns > 0
    flat = fit_scaling(n, np.array([40.0, 36.0, 35.0]))  # time falls with n: per-element cost would be < 0
    assert flat.per_element_ns == 0 and flat.overhead_us == pytest.approx(37, rel=0.05)


def test_fit_refuses_a_single_size() -> None:
    with pytest.raises(ValueError, match="two distinct sizes"):
        fit_scaling(np.array([1_000, 1_000]), np.array([5.0, 5.1]))


def line(overhead: float, per_element: float, n_min: int = 1_000, n_max: int = 1_000_000) -> ScalingFit:
    return ScalingFit(overhead, per_element, 4, n_min, n_max, 0.0, 0.0)


def test_crossover_kinds_and_extrapolation() -> None:
    slow_start, cheap_start = line(50.0, 0.5), line(5.0, 2.0)
    found = crossover("x", slow_start, "y", cheap_start)
    assert (found.kind, found.extrapolated) == ("above", False)
    assert found.n == pytest.approx(30_000)
    assert crossover("y", cheap_start, "x", slow_start).kind == "below"
    assert crossover("x", line(1.0, 0.5), "y", cheap_start).kind == "always"
    assert crossover("x", line(10.0, 3.0), "y", cheap_start).kind == "never"
    far = crossover("x", line(50.0, 0.5, n_max=10_000), "y", line(5.0, 2.0, n_max=10_000))
    assert far.extrapolated and far.measured == (1_000, 10_000)


def test_crossover_from_a_run(tmp_path: Path) -> None:
    summary = load_run(str(write_run(tmp_path / "run", synthetic_seconds())), tmp_path).summary
    fits = fit_variants(summary)
    jax = fits[("jax", "manual", "jit-loop", "tutorial", "cpu", "float64", "tutorial")]
    assert jax.overhead_us == pytest.approx(50.0, rel=1e-3) and jax.per_element_ns == pytest.approx(0.5, rel=1e-3)
    [row] = crossover_section(summary).rows
    assert row[:3] == ["jax manual/jit-loop cpu float64", "numpy manual/eager cpu float64", "from n = 30,000 on"]


def with_gpu(seconds: dict[tuple, list[float]]) -> dict[tuple, list[float]]:
    """``seconds`` plus a JAX jit-loop on the GPU: 80 us + 0.01 ns/element, measured from n = 10,000 on."""
    gpu = {("jax", "manual", "jit-loop", "gpu", n): linear_us(80.0, 0.01, n) * ITERATIONS / 1e6 for n in (10**4, 10**6)}
    return {**seconds, **{key: list(per_fit * NOISE) for key, per_fit in gpu.items()}}


def test_gpu_against_cpu_crossover(tmp_path: Path) -> None:
    summary = load_run(str(write_run(tmp_path / "run", with_gpu(synthetic_seconds()))), tmp_path).summary
    rows = {(row[0], row[1]): row for row in crossover_section(summary).rows}
    gpu_vs_cpu = rows["jax manual/jit-loop gpu float64", "jax manual/jit-loop cpu float64"]
    assert gpu_vs_cpu[2:] == ["from n = 61,000 on", "10,000-1,000,000"]  # 30 us / 0.49 ns
    gpu_vs_numpy = rows["jax manual/jit-loop gpu float64", "numpy manual/eager cpu float64"]
    assert gpu_vs_numpy[2] == "from n = 38,000 on"  # 75 us / 1.99 ns
    far = load_run(
        str(
            write_run(tmp_path / "far", with_gpu({}) | {k: v for k, v in synthetic_seconds().items() if k[-1] <= 10**4})
        ),
        tmp_path,
    )
    [row] = [r for r in crossover_section(far.summary).rows if "gpu" in r[0] and "numpy" in r[1]]
    assert row[2:] == ["from n = 38,000 on (extrapolated)", "10,000-10,000"]


# --- comparing runs -------------------------------------------------------------------------------------------


def run_cli(*argv: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- bad input: one line, exit 2 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such run folder or file"),
        ("", "is empty"),
        ("a,b\n1,2\n", "not an arraybench summary.csv (missing columns"),
        ("header only", "truncated"),
    ],
)
def test_bad_runs_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str | None, message: str
) -> None:
    path = tmp_path / "summary.csv"
    if content is not None:
        path.write_text(content)
    for command in ("report", "plot"):
        code, out, err = run_cli(command, str(path), capsys=capsys)
        assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_no_run_under_results(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "RESULTS_DIR", tmp_path / "results")
    code, _, err = run_cli("report", capsys=capsys)
    assert code == 2 and "no run under" in err


# --- a tiny real sweep ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NumPy and JAX (manual gradients, eager and jit-loop) at two sizes; 200 iterations log two losses."""
    folder = tmp_path_factory.mktemp("sweep") / "run"
    code = cli.main(
        [
            "run",
            *NUMPY_AND_JAX_LOOPS,
            "--devices",
            "cpu",
            "--sizes",
            "1000,4000",
            "--iterations",
            "200",
            "--repeats",
            "3",
            "--out",
            str(folder),
        ]
    )
    assert code == 0
    return folder


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text, as rows of cells (the separator row dropped)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif current:
            tables.append([row for row in current if not set("".join(row)) <= set(":-|")])
            current = []
    return tables


@pytest.mark.slow
def test_report_on_a_real_sweep(real_run: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli("report", str(real_run), capsys=capsys)
    assert code == 0
    titles = ("The answer, cpu float32", "cpu float32: median us per iteration", "cpu float64: compile s")
    titles += ("Scaling model of each framework's best variant", "Crossovers between frameworks' best variants")
    for title in titles:
        assert title in out
    assert out.index("The answer") < out.index("median us per iteration")  # the answer first
    assert "is fastest" in out or "tie" in out  # the answer in words

    code, out, _ = run_cli("report", str(real_run / "summary.csv"), "--format", "md", capsys=capsys)
    tables = markdown_tables(out)
    assert code == 0 and len(tables) == 8  # answer x2, speed x2, compile x2, scaling, crossovers
    for table in tables:
        assert len(table) >= 2 and len({len(row) for row in table}) == 1
    answer = tables[0]
    assert answer[0] == ["framework's best variant", "n=10^3 200 it", "n=4,000 200 it"]
    assert [row[0] for row in answer[-2:]] == ["lead over the runner-up", "floor (winner's x_floor)"]
    frameworks = answer[1:-2]
    assert sorted(row[0].split()[0] for row in frameworks) == ["jax", "numpy"]
    for column in (1, 2):  # one winner per size, in bold with a unit; the other as a multiple of it
        cells = [row[column] for row in frameworks]
        assert sum(cell.startswith("**") and " us" in cell for cell in cells) == 1
        assert all(cell.startswith("**") or "x" in cell for cell in cells)
    speed = tables[2]
    assert speed[0] == ["variant", "n=10^3 200 it", "n=4,000 200 it"]
    assert [row[0] for row in speed[1:]] == [*sorted(row[0] for row in speed[1:-1]), "machine floor (floor_us)"]

    code, out, _ = run_cli("report", str(real_run), "--format", "csv", capsys=capsys)
    pivot = pd.read_csv(io.StringIO(out))
    assert code == 0 and list(pivot.columns[:5]) == ["device", "dtype", "n", "iterations", "numpy manual/eager"]
    assert len(pivot) == 4 and (pivot.iloc[:, 4:] > 0).all().all()


@pytest.mark.slow
def test_sections_render_every_row(real_run: Path) -> None:
    summary = results.read_csv(real_run)
    for full, rows in ((True, ["backend", "mode", "formulation", "dtype"]), (False, ["backend", "dtype"])):
        text = markdown(report_sections(summary, full=full))
        scaling = [t for t in markdown_tables(text) if t[0][0] == "variant" and "overhead us" in t[0]]
        assert len(scaling) == 1 and len(scaling[0]) == 1 + summary.groupby(rows).ngroups


def test_plots_of_two_devices_without_losses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = write_run(tmp_path / "run", with_gpu(synthetic_seconds()))
    code, out, _ = run_cli("plot", str(run), capsys=capsys)
    assert code == 0 and "losses.png not drawn" in out
    for name in ("time_per_iteration.png", "speedup.png", "first_call.png"):
        assert imread(run / name).shape[0] > 400  # two rows of panels: cpu and gpu


def test_the_floor_line_follows_floor_us_per_device_and_dtype() -> None:
    rows = pd.DataFrame(
        {
            "device": ["cpu", "cpu", "cpu", "gpu"],
            "dtype": ["float64"] * 4,
            "n": [1000, 1000, 10_000, 1000],
            "floor_us": [0.5, 0.5, 4.0, float("nan")],
        }
    )
    lines = floor_lines(rows)
    assert list(lines) == [("cpu", "float64")]  # no floor off the CPU
    assert lines["cpu", "float64"].to_dict() == {1000: 0.5, 10_000: 4.0}


@pytest.mark.slow
def test_plots_on_a_real_sweep(real_run: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli("plot", str(real_run), capsys=capsys)
    assert code == 0
    names = ("time_per_iteration.png", "speedup.png", "first_call.png", "losses.png")
    for name in names:
        path = real_run / name
        assert f"wrote {path}" in out
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert image[..., :3].std() > 0.05  # not a blank canvas
