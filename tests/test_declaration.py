"""The declarations that have one owner: where each variant exists, which code it runs, the configuration key,
the warm-up key and the run folder's schema version."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from backends import BUILTIN, backend_class
from backends.contract import DEVICES, DTYPES, Backend, Fit, Problem, Variant
from backends.numpy_backend import fit_tutorial
from bench import results, scaling
from bench.config import KEY_COLUMNS, SIZE_COLUMNS, VARIANT_COLUMNS, Configuration, Sweep
from bench.protocol import Reply, Request
from bench.rows import rows_for
from bench.runfolder import done_keys
from bench.runner import plan, write_rows
from bench.runs import load_run
from bench.worker import WARM_UP_PROBLEM, Worker, warm_up_once
from tests.availability import declared_cases
from tests.sweeps import NUMPY_FLOAT64

SIZES = (100, 4095, 4096, 10**7)
"""Either side of JAX's float32 switch from Horner's form to precomputed powers, and the ends of the sweeps."""


@pytest.fixture(params=[pytest.param(case.values, id=case.id) for case in declared_cases()])
def declared(request) -> tuple[str, Variant, str]:
    """(backend, declared variant, a device it is declared for), for every built-in variant."""
    return request.param


@pytest.fixture(params=list(BUILTIN))
def backend_name(request) -> str:
    return request.param


def configuration(**changes) -> Configuration:
    values = dict(backend="numpy", grad="manual", mode="eager", device="cpu", dtype="float64", n=16, iterations=10)
    values |= dict(learning_rate=None, seed=0, threads=1, formulation="tutorial")
    return Configuration(**(values | changes))


def test_every_declared_variant_names_its_code_on_each_of_its_devices(declared) -> None:
    name, variant, device = declared
    assert set(variant.devices) <= set(DEVICES) and variant.devices
    for dtype in DTYPES:
        for n in SIZES:
            form = variant.form(device, dtype, n)
            assert form and form == form.strip().lower() and " " not in form, (name, variant, form)


def test_the_declaration_is_found_by_name(declared) -> None:
    name, variant, device = declared
    bare = Variant(variant.grad, variant.mode, variant.formulation)
    assert backend_class(name).declaration(bare) is variant
    assert backend_class(name).absent_reason(bare, device) is None


def test_forms_that_switch_with_device_dtype_or_size() -> None:
    jax_manual = backend_class("jax").declaration(Variant("manual", "jit-loop", "tuned"))
    assert jax_manual.form("cpu", "float32", 4095) == "horner"
    assert jax_manual.form("cpu", "float32", 4096) == "powers"
    assert jax_manual.form("gpu", "float32", 10**7) == "horner"
    assert jax_manual.form("cpu", "float64", 100) == "horner-reduce"
    torch_loop = backend_class("torch").declaration(Variant("manual", "jit-loop", "tuned"))
    assert (torch_loop.form("cpu", "float32", 1000), torch_loop.form("gpu", "float32", 1000)) == (
        "while-loop",
        "cuda-graph",
    )


def test_the_planner_plans_only_what_exists(backend_name) -> None:
    """Every device, every variant asked for: no configuration of a variant on a device it is not declared for
    (NumPy and Numba on a GPU, CuPy and torch's CUDA-graph loop on the CPU), and all the others."""
    sweep = Sweep(backends=(backend_name,), devices=DEVICES, points=((100, 10),))
    planned = {(c.variant, c.device) for c in plan(sweep)}
    declared_pairs = {(v, d) for v in backend_class(backend_name).variants for d in v.devices}
    assert planned == declared_pairs and len(plan(sweep)) == len(declared_pairs) * len(DTYPES)


def test_declared_devices_of_the_built_in_frameworks() -> None:
    """The facts the README states, read from the declaration."""
    on = {name: {d for v in backend_class(name).variants for d in v.devices} for name in BUILTIN}
    assert on == {"numpy": {"cpu"}, "numba": {"cpu"}, "cupy": {"gpu"}, "torch": {"cpu", "gpu"}, "jax": {"cpu", "gpu"}}
    graph = [v for v in backend_class("torch").variants if v.devices == ("gpu",)]
    assert [str(v) for v in graph] == ["manual/jit-loop", "autodiff/jit-loop"]


# --- the key -------------------------------------------------------------------------------------------------


def test_the_key_is_built_from_key_columns_and_every_list_derives_from_it() -> None:
    config = configuration()
    fields = {f.name for f in dataclasses.fields(Configuration)}
    assert set(KEY_COLUMNS) <= fields
    assert config.key == tuple(getattr(config, c) for c in KEY_COLUMNS)
    for columns in (results.CONFIG_COLUMNS, results.LOSS_COLUMNS, results.RAW_COLUMNS, results.SUMMARY_COLUMNS):
        assert [c for c in columns if c in KEY_COLUMNS] == KEY_COLUMNS
    assert scaling.VARIANT_COLUMNS == VARIANT_COLUMNS == [c for c in KEY_COLUMNS if c not in SIZE_COLUMNS]


def test_resume_finds_the_key_of_a_written_configuration(tmp_path: Path) -> None:
    """``done_keys`` reads the key columns back in :data:`KEY_COLUMNS` order: what the planner's
    :attr:`Configuration.key` must match, whatever the order of the CSV's columns."""
    done, pending = configuration(n=16), configuration(n=32)
    write_rows(tmp_path, rows_for(done, [Reply(id=0, status="skipped", reason="test")], "run", "host"))
    assert done_keys(tmp_path) == {done.key}
    assert pending.key not in done_keys(tmp_path)


# --- the warm-up key -----------------------------------------------------------------------------------------


class Recording(Backend):
    """The NumPy tutorial loop under two variant names, recording each problem it prepares."""

    name = "recording"
    variants = (Variant("manual", "eager"), Variant("manual", "eager", "tuned"))

    def __init__(self) -> None:
        self.prepared: list[tuple[int, str, str]] = []

    def version(self) -> str:
        return "0"

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        self.prepared.append((problem.n, variant.formulation, problem.dtype))
        x, y = problem.x_and_y()
        return Fit(lambda initial: fit_tutorial(x, y, initial, problem), problem.initial_weights())


SEQUENCE = [("tutorial", "float32"), ("tuned", "float32"), ("tutorial", "float64"), ("tuned", "float64")]
"""A tuned variant after its tutorial twin, float64 after float32: each changes the compiled code."""


def test_warm_up_once_covers_formulation_and_dtype() -> None:
    backend, warmed = Recording(), {}
    for formulation, dtype in [*SEQUENCE, *SEQUENCE]:
        warm_up_once(warmed, backend, configuration(backend="recording", formulation=formulation, dtype=dtype))
    tiny = [(formulation, dtype) for n, formulation, dtype in backend.prepared if n == WARM_UP_PROBLEM["n"]]
    assert tiny == SEQUENCE


def test_the_worker_warms_up_each_variant_in_each_dtype() -> None:
    worker, backend = Worker(), Recording()
    worker.backends["recording"] = backend
    for formulation, dtype in SEQUENCE:
        config = configuration(backend="recording", formulation=formulation, dtype=dtype, n=64, iterations=100)
        reply = worker.run(Request(id=1, configuration=config, repeats=1, budget_s=10.0))
        assert reply.status == "ran", reply
    tiny = [(formulation, dtype) for n, formulation, dtype in backend.prepared if n == WARM_UP_PROBLEM["n"]]
    assert tiny == SEQUENCE


def test_the_worker_refuses_a_combination_that_does_not_exist() -> None:
    worker = Worker()
    worker.backends["recording"] = Recording()
    config = configuration(backend="recording", device="gpu")
    reply = worker.run(Request(id=1, configuration=config, repeats=1, budget_s=10.0))
    assert reply.status == "skipped" and reply.reason == "recording manual/eager exists on cpu only"


# --- the schema version ---------------------------------------------------------------------------------------


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A run folder of this schema version holding one skipped configuration."""
    folder = tmp_path / "run"
    folder.mkdir()
    write_rows(folder, rows_for(configuration(), [Reply(id=0, status="skipped", reason="test")], "run", "host"))
    (folder / "environment.json").write_text(json.dumps({"run_id": "run", "schema_version": results.SCHEMA_VERSION}))
    return folder


def test_a_folder_of_this_version_is_read(run_folder: Path) -> None:
    assert len(load_run(str(run_folder), run_folder.parent).summary) == 1


@pytest.mark.parametrize("version", [None, results.SCHEMA_VERSION + 1])
def test_a_folder_of_another_version_is_refused_with_what_to_do(run_folder: Path, version, capsys) -> None:
    from bench.cli import main

    environment = {"run_id": "run"} | ({} if version is None else {"schema_version": version})
    (run_folder / "environment.json").write_text(json.dumps(environment))
    with pytest.raises(results.ResultsError, match="run the sweep again with this version"):
        load_run(str(run_folder), run_folder.parent)
    assert main(["report", str(run_folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"schema version {version or 1}" in err


# --- forms in the rows and in the scaling model -----------------------------------------------------------------


def test_each_row_says_which_code_ran() -> None:
    """The ``form`` column of a row is the form its variant declares for the row's device, dtype and size."""
    jax_tuned = dict(backend="jax", mode="jit-loop", formulation="tuned", dtype="float32")
    for n, form in ((4095, "horner"), (4096, "powers")):
        rows = rows_for(configuration(**jax_tuned, n=n), [Reply(id=0, status="skipped", reason="test")], "run", "host")
        assert rows["summary"][0]["form"] == form
    assert (
        rows_for(configuration(), [Reply(id=0, status="skipped", reason="t")], "r", "h")["summary"][0]["form"]
        == "tutorial"
    )


def test_the_scaling_model_never_fits_one_line_across_two_forms() -> None:
    """A variant that switches code between sizes gets one fit per form, each over its own sizes."""
    import pandas as pd

    variant = dict(backend="jax", grad="manual", mode="jit-loop", formulation="tuned", device="cpu", dtype="float32")
    points = [(1000, "horner", 11.0), (2000, "horner", 12.0), (8000, "powers", 30.0), (16000, "powers", 50.0)]
    summary = pd.DataFrame(
        [{**variant, "n": n, "form": form, "us_per_iter": us, "status": "ok"} for n, form, us in points]
    )
    fits = scaling.fit_variants(summary)
    assert {key[-1]: (fit.n_min, fit.n_max) for key, fit in fits.items()} == {
        "horner": (1000, 2000),
        "powers": (8000, 16000),
    }


# --- the default devices ----------------------------------------------------------------------------------------


@pytest.fixture(params=[None, "/dev/nvidia0"], ids=["no-gpu", "gpu"])
def gpu_here(request, monkeypatch) -> str | None:
    """This machine as seen by the planner: without or with a GPU device."""
    import bench.cli

    monkeypatch.setattr(bench.cli, "gpu_evidence", lambda: request.param)
    return request.param


def test_the_default_devices_are_those_present_here(gpu_here) -> None:
    from bench.cli import build_parser, sweep_from

    planned = plan(sweep_from(build_parser().parse_args(["run", "--backends", "torch"])))
    assert {c.device for c in planned} == ({"cpu", "gpu"} if gpu_here else {"cpu"})
    asked = plan(sweep_from(build_parser().parse_args(["run", "--backends", "torch", "--devices", "gpu"])))
    assert {c.device for c in asked} == {"gpu"} and len(asked) > 0


@pytest.mark.slow
def test_a_run_says_when_it_leaves_the_gpu_out(gpu_here, tmp_path: Path, capsys) -> None:
    from bench.cli import main

    argv = [
        "run",
        *NUMPY_FLOAT64,
        "--sizes",
        "100",
        "--iterations",
        "100",
        "--repeats",
        "1",
        "--no-probe",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 0
    left_out = [line for line in capsys.readouterr().out.splitlines() if "GPU configurations left out" in line]
    assert len(left_out) == (0 if gpu_here else 1)
