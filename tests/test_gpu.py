"""The GPU paths: every GPU variant against the exact reference, and what of them a CPU can check.

Every fit test is parametrised over the devices (``cpu``, ``gpu``); the ``gpu`` cases and every test that needs
a GPU are marked ``gpu`` (``python -m bench.gpu_check`` runs ``-m gpu``): without a GPU they skip, and with
``ARRAYBENCH_REQUIRE_GPU=1`` such a skip fails instead, so that a GPU machine cannot pass the check by skipping
(tests/availability.py). The CPU cases of ``torch.compile``
are left to tests/test_backends.py (each compile takes about 30 s on a small CPU).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from backends import BackendUnavailable, backend_class, load_backend
from backends.contract import DTYPES, FORMULATIONS, MODES, Backend, Fit, FitResult, Problem, Variant
from backends.numpy_backend import NumpyBackend
from backends.reference import loss_relative_error, reference_fit, relative_error
from bench import gpu_check, memory, results
from bench.cli import build_parser, sweep_from
from bench.config import Configuration
from bench.environment import parse_gpus
from bench.protocol import Reply, Request
from bench.rows import rows_for
from bench.runner import worker_environment
from bench.timing import measure
from bench.worker import Worker
from tests.availability import GPU_BACKENDS, cupy_installed, declared_cases, gpu_here, runnable_or_skip

SMALL = {"n": 1000, "iterations": 30, "log_interval": 10}
"""Three logged losses, and few enough iterations for JAX's op-by-op dispatch on a small CPU."""


def runnable(name: str, variant: Variant, device: str) -> Backend:
    """The backend, when ``variant`` can run on ``device`` here; otherwise skip (or fail, where required) with the
    reason. These cases are the variants that exist on ``device``, so a required framework's skip is a failure."""
    return runnable_or_skip(name, variant, device, declared=True)


def not_compiled_by_torch_on_the_cpu(name: str, variant: Variant, device: str) -> bool:
    """Leaves out the CPU cases of ``torch.compile`` (declared as the variant's ``compiler``): each costs about
    30 s on a small CPU, and tests/test_backends.py runs them."""
    return device == "gpu" or variant.compiler != "torch.compile"


def fit_cases() -> list:
    """(backend, variant, device) for every variant of the GPU backends, on every device it is declared for."""
    return declared_cases(GPU_BACKENDS, keep=not_compiled_by_torch_on_the_cpu)


def assert_matches_reference(result: FitResult, problem: Problem) -> None:
    reference = reference_fit(problem)
    tolerance = results.TOLERANCE[problem.dtype]
    assert len(result.logged_losses) == len(reference.logged_losses)
    assert relative_error(result, reference) <= tolerance
    assert loss_relative_error(result, reference) <= tolerance


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "variant", "device"), fit_cases())
def test_fit_matches_reference_on_each_device(name: str, variant: Variant, device: str, dtype: str) -> None:
    """The first call (compile, capture) and a repeat call both give the reference's fit."""
    backend = runnable(name, variant, device)
    problem = Problem(dtype=dtype, **SMALL)
    fit = backend.prepare(problem, variant, device)
    assert_matches_reference(fit(), problem)
    assert_matches_reference(fit(), problem)  # a replay starts again from the initial weights


# --- PyTorch's CUDA-graph variant -------------------------------------------------------------------------


@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_cuda_graph_variant_exists_on_the_gpu_only(grad: str) -> None:
    """torch's tutorial jit-loop replays the whole fit as one captured CUDA graph: it is declared GPU-only, so it
    is never planned on the CPU, and a request for it there is answered with the declaration's reason."""
    torch_class = backend_class("torch")
    declared = torch_class.declaration(Variant(grad, "jit-loop"))
    assert declared.devices == ("gpu",) and declared.form("gpu", "float32", 1000) == "cuda-graph"
    assert torch_class.absent_reason(Variant(grad, "jit-loop"), "cpu") == f"torch {grad}/jit-loop exists on gpu only"
    assert torch_class.absent_reason(Variant(grad, "jit-loop"), "gpu") is None


def static_fit_on_the_cpu(grad: str, problem: Problem, formulation: str = "tutorial"):
    """The work that PyTorch's ``jit-loop`` captures on a GPU, built on the CPU (the tuned step uncompiled)."""
    from backends.torch_backend import StaticFit

    torch_backend = runnable("torch", Variant(grad, "eager"), "cpu")
    x, y, initial = torch_backend.tensors(problem, "cpu")
    if formulation == "tuned":
        step = torch_backend.tuned_step(grad, x, y, problem)
        return StaticFit(torch_backend.torch, step, initial, problem, vector=True)
    return StaticFit(torch_backend.torch, torch_backend.functional_step(grad, x, y, problem.lr), initial, problem)


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_cuda_graph_body_runs_eagerly_on_the_cpu(grad: str, dtype: str, formulation: str) -> None:
    """What the graph captures (the whole fit into one preallocated tensor), run without capture."""
    problem = Problem(dtype=dtype, **SMALL)
    static_fit = static_fit_on_the_cpu(grad, problem, formulation)
    outputs = static_fit.outputs
    for _ in range(2):
        static_fit()
        assert static_fit.outputs is outputs  # the graph's output buffer is never replaced
        assert_matches_reference(static_fit.result(), problem)


class FakeCuda:
    """Stands in for ``torch.cuda`` and records what :func:`cuda_graph_fit` asks of it, in order. It checks the
    bookkeeping only (when it warms up, captures, replays, synchronises); the GPU cases check CUDA itself."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def Stream(self):
        self.calls.append("new side stream")
        return SimpleNamespace(wait_stream=lambda other: None)

    def current_stream(self):
        return SimpleNamespace(wait_stream=lambda other: None)

    @contextmanager
    def stream(self, side):
        self.calls.append("on side stream")
        yield

    def CUDAGraph(self):
        return SimpleNamespace(replay=lambda: self.calls.append("replay"))

    @contextmanager
    def graph(self, graph, stream):
        self.calls.append("capture")
        yield

    def synchronize(self) -> None:
        self.calls.append("synchronize")


def test_cuda_graph_is_captured_once_and_replayed_by_every_call() -> None:
    from backends.torch_backend import cuda_graph_fit

    problem = Problem(**SMALL)
    static_fit = static_fit_on_the_cpu("manual", problem)
    cuda = FakeCuda()
    warm_up = static_fit.warm_up
    static_fit.warm_up = lambda: (cuda.calls.append("warm-up"), warm_up())  # type: ignore[method-assign]
    fit = cuda_graph_fit(SimpleNamespace(cuda=cuda), static_fit)
    for _ in range(3):
        assert_matches_reference(fit(), problem)  # the fake "capture" ran the fit eagerly, once
    assert cuda.calls == [
        "new side stream",
        "on side stream",
        "warm-up",
        "capture",
        "replay",
        "synchronize",
        "replay",
        "synchronize",
        "replay",
        "synchronize",
    ]


@pytest.mark.gpu
def test_cuda_graph_memory_does_not_grow_with_iterations() -> None:
    """Memory freed during capture is reused within it: 20 times the iterations, not 20 times the memory."""
    torch_backend = runnable("torch", Variant("manual", "jit-loop"), "gpu")
    torch = torch_backend.torch
    peaks = []
    for iterations in (10, 200):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fit = torch_backend.prepare(Problem(n=1_000_000, iterations=iterations), Variant("manual", "jit-loop"), "gpu")
        fit()
        peaks.append(torch.cuda.max_memory_allocated() - before)
        del fit
    assert peaks[1] < 2 * peaks[0], f"peak bytes for 10 and 200 iterations: {peaks}"


# --- Device clocks, device memory and the device's description --------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["torch", "cupy"])
def test_cuda_events_time_each_repeat_on_the_gpu(name: str) -> None:
    backend = runnable(name, Variant("manual", "eager"), "gpu")
    fit = backend.prepare(Problem(n=100_000, iterations=20), Variant("manual", "eager"), "gpu")
    start = Problem(n=100_000, iterations=20).initial_weights()
    measurement = measure(fit, lambda i: start, repeats=3, device_timer=backend.device_timer("gpu"))
    assert len(measurement.device_samples_s) == len(measurement.samples_s) == 3
    assert all(0 < s < 60 for s in measurement.device_samples_s)


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_free_memory_and_description_of_the_gpu(name: str) -> None:
    backend = runnable(name, Variant("manual", "eager"), "gpu")
    free = backend.free_memory("gpu")
    assert free is not None and free > 2**20
    assert any("gpu" in key or "cuda" in key for key in backend.describe())


@pytest.mark.skipif(gpu_here(), reason="a GPU is here")
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_no_gpu_reason_names_the_missing_gpu(name: str) -> None:
    backend = runnable(name, Variant("manual", "eager"), "cpu")
    reason = backend.unavailable_reason(Variant("manual", "eager"), "gpu")
    assert reason is not None and "GPU" in reason
    assert backend.device_timer("gpu") is None and backend.free_memory("gpu") is None


@pytest.mark.skipif(cupy_installed(), reason="CuPy is installed here")
def test_without_cupy_the_backend_says_how_to_install_it() -> None:
    with pytest.raises(BackendUnavailable, match=r"CuPy is not installed.*pip install -e '\.\[gpu\]'"):
        load_backend("cupy")


@pytest.mark.gpu
def test_cupy_runs_on_the_gpu_only() -> None:
    backend = runnable("cupy", Variant("manual", "eager"), "gpu")
    assert backend.absent_reason(Variant("manual", "eager"), "cpu") == "cupy manual/eager exists on gpu only"


@pytest.mark.skipif(not cupy_installed() or gpu_here(), reason="needs CuPy installed on a machine without a GPU")
def test_cupy_without_a_gpu_says_so() -> None:
    backend = load_backend("cupy")
    assert backend.absent_reason(Variant("manual", "eager"), "cpu") == "cupy manual/eager exists on gpu only"
    assert "no CUDA GPU visible to CuPy" in backend.unavailable_reason(Variant("manual", "eager"), "gpu")


def test_cupy_is_listed_without_importing_cupy() -> None:
    assert backend_class("cupy").variants == (Variant("manual", "eager"),)
    assert backend_class("cupy").variants[0].devices == ("gpu",)


# --- Timing, memory check, rows and environment: the runner's GPU plumbing, checked on any machine ----------


def test_measure_records_the_device_clock_beside_the_host_clock() -> None:
    ticks = iter(range(100))
    result = FitResult((1.0, 2.0, 3.0, 4.0), 0.5, [])

    def device_timer():
        started = next(ticks)
        return lambda: float(next(ticks) - started)

    fit = Fit(lambda _: result, np.zeros(4))
    with_clock = measure(fit, lambda i: np.zeros(4), repeats=4, device_timer=device_timer)
    assert len(with_clock.samples_s) == 4 and with_clock.device_samples_s == [1.0, 1.0, 1.0, 1.0]
    without = measure(fit, lambda i: np.zeros(4), repeats=2)
    assert without.device_samples_s == [] and len(without.samples_s) == 2


def small_config(device: str = "cpu", n: int = 1000) -> Configuration:
    return Configuration("numpy", "manual", "eager", device, "float64", n, 200, None, 0, 1)


def ran_reply(config: Configuration, **extra) -> Reply:
    reference = reference_fit(config.problem)
    return Reply(
        id=1,
        status="ran",
        backend_version="test",
        first_call_s=0.2,
        samples_s=(0.1, 0.3, 0.2),
        iterations_timed=config.iterations,
        seeds=(config.seed,) * 3,
        weights=(reference.weights,) * 3,
        final_losses=(reference.final_loss,) * 3,
        logged_losses=(tuple(reference.logged_losses),) * 3,
        **extra,
    )


def test_rows_carry_the_gpu_median_beside_the_host_median() -> None:
    config = small_config("gpu")
    rows = rows_for(config, [ran_reply(config, device_samples_s=(0.09, 0.25, 0.18))], "run", "host")
    summary = rows["summary"][0]
    assert summary["status"] == "ok"
    assert summary["median_s"] == 0.2 and summary["gpu_median_s"] == 0.18
    assert [r["gpu_seconds"] for r in rows["raw"]] == [0.09, 0.25, 0.18]
    assert "gpu_median_s" in results.SUMMARY_COLUMNS and "gpu_seconds" in results.RAW_COLUMNS


def test_rows_without_a_device_clock_leave_the_gpu_median_empty() -> None:
    config = small_config()
    rows = rows_for(config, [ran_reply(config)], "run", "host")
    assert math.isnan(rows["summary"][0]["gpu_median_s"])
    assert all(math.isnan(r["gpu_seconds"]) for r in rows["raw"])


class TightBackend(NumpyBackend):
    """NumPy, claiming that its device has one MiB free."""

    def free_memory(self, device: str) -> int | None:
        return 2**20


def test_worker_skips_a_size_its_device_cannot_hold_with_the_estimate_in_the_reason() -> None:
    worker = Worker()
    worker.backends["numpy"] = TightBackend()
    config = small_config(n=1_000_000)
    reply = worker.run(Request(1, config, repeats=1, budget_s=1.0))
    assert reply.status == "skipped"
    assert reply.reason == "needs about 91.6 MiB of cpu memory (12 arrays of n=1,000,000 float64), 1.0 MiB free"
    assert memory.bytes_needed(config) == 12 * 8 * 1_000_000


def test_worker_runs_what_fits() -> None:
    worker = Worker()
    worker.backends["numpy"] = TightBackend()
    reply = worker.run(Request(1, small_config(n=100), repeats=1, budget_s=1.0))
    assert reply.status == "ran" and reply.device_samples_s == ()


def test_jax_workers_do_not_preallocate_the_gpu() -> None:
    assert worker_environment(2)["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


NVIDIA_SMI_LISTING = "NVIDIA H100 80GB HBM3, 81559 MiB, 580.159.04\n"
NVIDIA_SMI_BANNER = """
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
|-----------------------------------------+------------------------+----------------------+
"""


def test_environment_records_gpu_name_memory_driver_and_cuda() -> None:
    assert parse_gpus(NVIDIA_SMI_LISTING, NVIDIA_SMI_BANNER) == [
        {
            "name": "NVIDIA H100 80GB HBM3",
            "memory.total": "81559 MiB",
            "driver_version": "580.159.04",
            "cuda_version": "13.0",
        }
    ]
    assert parse_gpus("", "") == []


# --- The prepared GPU check -------------------------------------------------------------------------------


def test_gpu_check_refuses_a_machine_without_a_gpu(monkeypatch, capsys) -> None:
    monkeypatch.setattr(gpu_check, "gpus", lambda: [])
    assert gpu_check.main([]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("gpu-check: no NVIDIA GPU here") and "\n" not in error


def test_gpu_check_sweeps_are_valid_command_lines(tmp_path) -> None:
    commands = gpu_check.sweeps(tmp_path, None)
    gpu = sweep_from(build_parser().parse_args(commands["gpu"]))
    cpu = sweep_from(build_parser().parse_args(commands["cpu"]))
    assert gpu.devices == ("gpu",) and set(gpu.backends) == set(GPU_BACKENDS)
    assert cpu.devices == ("cpu",) and "numpy" in cpu.backends
    assert sorted({n for n, _ in gpu.points}) == [10**k for k in range(3, 8)]
    assert set(gpu.dtypes) == set(DTYPES) and set(gpu.modes) == set(MODES)


def test_best_by_device_pairs_the_fastest_of_each_device_with_the_gpu_read_floor() -> None:
    def row(backend: str, mode: str, device: str, us: float, status: str = "ok") -> dict:
        return {
            "backend": backend,
            "grad": "manual",
            "mode": mode,
            "formulation": "tutorial",
            "device": device,
            "dtype": "float32",
            "n": 1000,
            "iterations": 100,
            "us_per_iter": us,
            "status": status,
        }

    summary = pd.DataFrame(
        [
            row("numpy", "eager", "cpu", 100.0),
            row("torch", "eager", "cpu", 20.0),
            row("torch", "jit-loop", "gpu", 5.0),
            row("jax", "jit-loop", "gpu", 4.0, status="mismatch"),
        ]
    )
    best = gpu_check.best_by_device(summary, {("float32", 1000): 2.0}).iloc[0]
    assert (best["cpu_best"], best["cpu_us"]) == ("torch manual/eager", 20.0)
    assert (best["gpu_best"], best["gpu_us"]) == ("torch manual/jit-loop", 5.0)  # a mismatch never counts
    assert (best["gpu_speedup"], best["gpu_read_us"], best["gpu_x_floor"]) == (4.0, 2.0, 2.5)


@pytest.mark.gpu
def test_gpu_read_floor_is_positive_on_a_gpu() -> None:
    runnable("torch", Variant("manual", "eager"), "gpu")
    assert gpu_check.gpu_read_us([("float32", 1000)])[("float32", 1000)] > 0


@pytest.mark.skipif(gpu_here(), reason="a GPU is here")
def test_gpu_read_floor_is_empty_without_a_gpu() -> None:
    assert gpu_check.gpu_read_us([("float32", 1000)]) == {}


def test_cuda_event_timer_records_around_the_fit_and_reads_seconds() -> None:
    """The shared CUDA-event clock of PyTorch and CuPy, with stand-in events (no GPU needed)."""
    from backends.contract import cuda_event_timer

    calls = []

    class Event:
        def __init__(self) -> None:
            self.name = f"event{calls.count('new')}"
            calls.append("new")

        def record(self) -> None:
            calls.append(f"record {self.name}")

        def synchronize(self) -> None:
            calls.append(f"synchronize {self.name}")

    stop = cuda_event_timer(Event, lambda begin, end: 250.0)()
    assert calls == ["new", "new", "record event0"]
    assert stop() == 0.25
    assert calls[3:] == ["record event1", "synchronize event1"]


def test_device_times_use_the_iterations_that_ran() -> None:
    """A loop shortened by the per-fit budget: both clocks per iteration over the 50 iterations timed."""
    from rich.console import Console

    summary = pd.DataFrame(
        [
            {
                "status": "ok",
                "backend": "torch",
                "grad": "manual",
                "mode": "eager",
                "formulation": "tutorial",
                "dtype": "float32",
                "n": 1000,
                "iterations": 100,
                "iterations_timed": 50,
                "median_s": 1e-3,
                "us_per_iter": 20.0,
                "gpu_median_s": 5e-4,
            }
        ]
    )
    console = Console(record=True, width=200)
    gpu_check.print_device_times(summary, console)
    row = next(line for line in console.export_text().splitlines() if "torch manual/eager" in line)
    assert [cell.strip() for cell in row.split("│") if cell.strip()] == [
        "torch manual/eager",
        "float32",
        "1,000",
        "20.0",
        "10.0",
    ]
