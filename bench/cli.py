"""``arraybench`` (or ``python -m bench``): run a sweep (or one shard of it); submit its shards to a cluster and
merge them; report, plot and compare runs; import pytest-benchmark JSON; list what can run here; print the
fingerprint.

Every option is checked before any work: a bad value gets one line on stderr naming the problem and the
valid choices, exit status 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.table import Table

from backends import BackendUnavailable, RegistryError, backend_class, load_backend, registry
from backends.contract import DEVICES, DTYPES, FORMULATIONS, GRADS, MODES
from bench import exitcodes, results, runfolder, shard
from bench.config import PRESETS, Sweep
from bench.environment import PROJECT_ROOT, fingerprint, gpu_evidence, host_name
from bench.probe import probe
from bench.progress import SweepProgress
from bench.report import FORMATS, Filters, command_report
from bench.runner import Sweeper, cpu_working_sets, plan
from bench.runs import LATEST, Run, load_run, run_folders, run_info

RESULTS_DIR = PROJECT_ROOT / "results"
COMPARE_FORMATS = ("table", "md", "json")
"""Kept here (not imported from bench.compare) so that parsing a command line does not import scipy."""


def program() -> str:
    """The command's name as typed: ``arraybench`` (the installed script) or ``python -m bench``."""
    return "arraybench" if Path(sys.argv[0]).name == "arraybench" else "python -m bench"


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 2."""


class DiskFullStop(Exception):
    """The run folder's disk filled up: reported as one line, exit status 3."""


def disk_full_stop(error: results.DiskFull, folder: Path) -> DiskFullStop:
    """The one line (exit status 3) of a disk that filled up while ``folder``'s configurations were being
    written or repaired: what was finished is intact, and how to go on."""
    return DiskFullStop(
        f"{error.strerror}; the configurations finished before are intact in {folder}; free some space, then"
        f" finish with: {runfolder.resume_command(folder)}"
    )


def sentence(text: str) -> str:
    """``text`` as a sentence: a capital first letter and a full stop at the end."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text[-1] in ".!?" else ".")


class SentenceFormatter(argparse.HelpFormatter):
    """argparse's help, every option's and command's text written as a sentence (:func:`sentence`)."""

    def _expand_help(self, action: argparse.Action) -> str:
        return sentence(super()._expand_help(action))


class Parser(argparse.ArgumentParser):
    """argparse, except that a bad command line is a :class:`UsageError` (one line) instead of usage text,
    and every help text is a sentence."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", SentenceFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def choices(valid: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """A parser for a comma-separated subset of ``valid``."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
        unknown = [i for i in items if i not in valid]
        if unknown or not items:
            raise UsageError(f"unknown {what} {', '.join(unknown) or repr(text)}; choose from {', '.join(valid)}")
        return items

    return parse


def number(text: str) -> float:
    """``text`` as a float (``1e6`` and ``10_000`` accepted), or NaN when it is not a number, so that every
    range check below rejects it with its own message."""
    try:
        return float(text.replace("_", ""))
    except ValueError:
        return math.nan


def whole_number(text: str, what: str, minimum: int) -> int:
    """``text`` as an integer of at least ``minimum``; ``1e6`` and ``10_000`` are accepted."""
    value = number(text)
    if not value.is_integer() or value < minimum:
        raise UsageError(f"{what} must be a whole number of at least {minimum}, got {text!r}")
    return int(value)


def whole_numbers(what: str, minimum: int) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        return tuple(whole_number(t.strip(), what, minimum) for t in text.split(","))

    return parse


def positive_number(text: str, what: str, unit: str = "") -> float:
    """``text`` as a finite number above zero."""
    value = number(text)
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{what} must be a positive number{unit}, got {text!r}")
    return value


RUN_HELP = "a run folder, its summary.csv, or latest (the default: the newest run under results/)."


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=program(), description=" ".join(__doc__.split("\n\n")[0].replace("``", "").split()))
    commands = parser.add_subparsers(
        dest="command", metavar="run|runs|list|env|report|plot|compare|merge|submit", required=True
    )

    run = commands.add_parser("run", help="time a sweep and write a run folder under results/")
    run.add_argument("--preset", choices=sorted(PRESETS), help="defaults for the grid (quick)")
    run.add_argument("--backends", help="comma-separated backends (default: all known)")
    run.add_argument("--grads", help=f"from {','.join(GRADS)}")
    run.add_argument("--modes", help=f"from {','.join(MODES)}")
    run.add_argument("--formulations", help=f"from {','.join(FORMULATIONS)}")
    run.add_argument(
        "--devices",
        help=f"comma-separated, from {','.join(DEVICES)} (default: the CPU, plus the GPU when one is present).",
    )
    run.add_argument("--dtypes", help=f"from {','.join(DTYPES)}")
    run.add_argument("--sizes", help="comma-separated n (replaces the preset's grid, with --iterations)")
    run.add_argument("--iterations", help="comma-separated iteration counts")
    run.add_argument("--repeats", help="timed fits per configuration and process (preset: 5 quick, 7 full)")
    run.add_argument(
        "--processes",
        help="fresh worker processes each configuration is timed in, in interleaved rounds (preset: 2)",
    )
    run.add_argument("--threads", help="cores and threads given to every framework (default: all)")
    run.add_argument("--worlds", help="comma-separated device counts to spread each distributed variant's fit over (1)")
    run.add_argument(
        "--oversubscribe",
        action="store_true",
        default=None,
        help="run rank processes beyond the usable cores (default: such configurations are skipped)",
    )
    run.add_argument("--seed", help="seed of the initial weights (0)")
    run.add_argument("--learning-rate", help="fixed learning rate (default: 1e-6 * 2000 / n)")
    run.add_argument(
        "--budget",
        help="seconds of timed repeats per configuration and process before repeats are cut (never below the"
        f" preset's minimum: {', '.join(f'{p.min_repeats} {name}' for name, p in PRESETS.items())})",
    )
    fit_budgets = ", ".join(f"{preset.fit_budget_s or 'none'} {name}" for name, preset in PRESETS.items())
    run.add_argument(
        "--fit-budget",
        help=f"seconds one fit may take before its loop is timed over fewer iterations, or none ({fit_budgets});"
        " --sizes or --iterations without --fit-budget: none, so they run as asked",
    )
    run.add_argument(
        "--timeout",
        help="seconds a configuration may take, its worker's start included, before the worker is killed"
        f" (preset: {', '.join(f'{p.timeout_s:g} {name}' for name, p in PRESETS.items())})",
    )
    run.add_argument("--out", help="run folder to create (default: results/<run-id>)")
    run.add_argument("--resume", metavar="RUN", help="finish an interrupted run folder (latest: the newest).")
    run.add_argument(
        "--no-probe", action="store_true", default=None, help="skip the machine probe (no floor_us columns)"
    )
    run.add_argument(
        "--shard", help="run shard INDEX/COUNT of the sweep, counted from 0 (needs --devices and --threads)"
    )
    run.add_argument("--machine", help="the machine's name in every row (default: the host name)")

    report = commands.add_parser("report", help="the answer (which framework is fastest), then every table of a run.")
    report.add_argument("run", nargs="?", help=RUN_HELP)
    report.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (terminal, the default), md, csv (the speed pivot), or html (writes RUN/report.html).",
    )
    report.add_argument("--out", help="write the report to this file instead of the terminal.")
    report.add_argument(
        "--all", action="store_true", help="the scaling model and crossovers of every variant, not only the best."
    )
    report.add_argument("--best", action="store_true", help="only each framework's best variant in the tables.")
    report.add_argument("--backends", help="only these comma-separated backends.")
    report.add_argument("--dtypes", help=f"only these dtypes, from {','.join(DTYPES)}.")
    report.add_argument("--devices", help=f"only these devices, from {','.join(DEVICES)}.")
    report.add_argument("--sizes", help="only these comma-separated sizes n.")
    report.add_argument(
        "--by-machine", action="store_true", help="compare the machines of a fleet folder (bench merge of runs)"
    )
    report.add_argument("--baseline", help="with --by-machine: the machine the others are set against (the first)")
    plot = commands.add_parser("plot", help="write a run's plots as PNG files into its folder")
    plot.add_argument("run", nargs="?", help=RUN_HELP)
    compare = commands.add_parser("compare", help="compare the timings of two runs, configuration by configuration")
    compare.add_argument("old", help="the earlier run folder (or its summary.csv, or latest).")
    compare.add_argument("new", help="the later run folder (or its summary.csv, or latest).")
    compare.add_argument(
        "--min-effect",
        "--threshold",
        dest="min_effect",
        default="0.05",
        help="the least relative change of the median reported as a change (0.05)",
    )
    compare.add_argument("--fdr", default="0.05", help="false discovery rate q of Benjamini-Hochberg (0.05)")
    compare.add_argument("--format", choices=COMPARE_FORMATS, default="table", help="table (terminal), md or json")
    compare.add_argument("--only-changed", action="store_true", help="show only the faster, slower and broken")
    compare.add_argument(
        "--allow-different-machines", action="store_true", help="compare runs from different CPU or GPU models"
    )
    compare.add_argument(
        "--fail-on-regression", action="store_true", help="exit 1 if a configuration is reported slower, or broke"
    )

    imported = commands.add_parser("import-pytest-benchmark", help="turn pytest-benchmark JSON into a run folder")
    imported.add_argument("file", help="JSON from pytest --benchmark-json (or --benchmark-autosave)")
    imported.add_argument("--out", help="run folder to create (default: results/<run-id>)")
    commands.add_parser("runs", help="list the run folders under results/: id, when, host, configurations, ok.")
    merge = commands.add_parser("merge", help="merge shard folders, or whole runs of several machines, into one")
    merge.add_argument("runs", nargs="+", metavar="RUN", help="run folders (the shards of a run, or whole runs)")
    merge.add_argument("--out", required=True, help="the merged run folder to create")
    add_submit_parser(commands)
    commands.add_parser("list", help="every backend and variant, and whether it can run here")
    commands.add_parser("env", help="print the machine and software fingerprint")
    return parser


def add_submit_parser(commands) -> None:
    submit = commands.add_parser(
        "submit",
        help="run a sweep's shards on SLURM, Ray or here, wait, and merge them",
        usage="python -m bench submit --executor local|slurm|ray --shards N [options] -- BENCH-RUN-OPTIONS",
    )
    submit.add_argument("--executor", required=True, choices=("local", "slurm", "ray"), help="where shards run")
    submit.add_argument("--shards", required=True, help="how many shards (at most one per series)")
    submit.add_argument("--out", help="the submit folder (default: results/<machine>-<sweep id>)")
    submit.add_argument("--machine", help="the machine name of every row (default: slurm, ray, or the host name)")
    submit.add_argument("--partition", help="SLURM partition")
    submit.add_argument("--time", default="60", help="SLURM time limit of one shard, in minutes (60)")
    submit.add_argument("--account", help="SLURM account")
    submit.add_argument("--gpus-per-node", help="GPUs each SLURM shard asks for (default: 1 if --devices has gpu)")
    submit.add_argument(
        "--no-exclusive", action="store_true", help="let SLURM put other jobs on a shard's node (timings suffer)"
    )
    submit.add_argument("--ray-address", help="the Ray cluster to join (default: start a local Ray)")


def command_submit(args: argparse.Namespace, run_options: list[str], console: Console) -> int:
    from bench.merge import MergeError
    from bench.submit import SubmitError, submit

    options = {
        "out": args.out,
        "machine": args.machine,
        "partition": args.partition,
        "account": args.account,
        "time_min": whole_number(args.time, "--time", 1),
        "gpus_per_node": None if args.gpus_per_node is None else whole_number(args.gpus_per_node, "--gpus-per-node", 0),
        "exclusive": not args.no_exclusive,
        "ray_address": args.ray_address,
    }
    count = whole_number(args.shards, "--shards", 1)
    if not run_options:
        raise UsageError("bench submit wants the bench run options after --, with --devices and --threads")
    try:
        return submit(args.executor, count, run_options, options, lambda line: console.print(line, markup=False))
    except (SubmitError, MergeError) as error:
        raise UsageError(str(error)) from error


def given_options(args: argparse.Namespace) -> dict[str, str]:
    """The options of a ``run`` command line that were given (every option defaults to None)."""
    return {
        name: value
        for name, value in vars(args).items()
        if value is not None and name not in ("command", "shard", "machine")
    }


def sweep_from(args: argparse.Namespace) -> Sweep:
    """The validated sweep of a ``run`` command line."""
    given = given_options(args)
    preset = PRESETS[given.get("preset", "quick")]

    def option(name: str, parse: Callable, default):
        return parse(given[name]) if name in given else default

    known = tuple(registry())
    sizes = option("sizes", whole_numbers("a size", 4), None)
    iterations = option("iterations", whole_numbers("an iteration count", 1), None)
    points, fit_budget_s = preset.points, preset.fit_budget_s
    if sizes or iterations:
        fit_budget_s = None  # an explicit grid runs as asked, unless --fit-budget is given too
        points = tuple(
            (n, it)
            for n in sizes or sorted({n for n, _ in preset.points})
            for it in iterations or sorted({it for _, it in preset.points})
        )
    return Sweep(
        backends=option("backends", choices(known, "backend"), known),
        grads=option("grads", choices(GRADS, "grad"), GRADS),
        modes=option("modes", choices(MODES, "mode"), MODES),
        formulations=option("formulations", choices(FORMULATIONS, "formulation"), FORMULATIONS),
        devices=option("devices", choices(DEVICES, "device"), present_devices()),
        dtypes=option("dtypes", choices(DTYPES, "dtype"), DTYPES),
        points=points,
        repeats=option("repeats", lambda t: whole_number(t, "repeats", 1), preset.repeats),
        min_repeats=preset.min_repeats,
        processes=option("processes", lambda t: whole_number(t, "processes", 1), preset.processes),
        threads=option("threads", lambda t: whole_number(t, "threads", 1), len(os.sched_getaffinity(0))),
        seed=option("seed", lambda t: whole_number(t, "the seed", 0), 0),
        learning_rate=option("learning_rate", lambda t: positive_number(t, "the learning rate"), None),
        budget_s=option("budget", lambda t: positive_number(t, "the budget", " of seconds"), preset.budget_s),
        timeout_s=option("timeout", lambda t: positive_number(t, "the timeout", " of seconds"), preset.timeout_s),
        fit_budget_s=option("fit_budget", fit_budget, fit_budget_s),
        worlds=option("worlds", lambda t: tuple(dict.fromkeys(whole_numbers("a world", 1)(t))), (1,)),
        oversubscribe=bool(given.get("oversubscribe", False)),
    )


def present_devices() -> tuple[str, ...]:
    """The default ``--devices``: the CPU, plus the GPU when one is present (:func:`bench.environment.gpu_evidence`)."""
    return DEVICES if gpu_evidence() else ("cpu",)


def fit_budget(text: str) -> float | None:
    """``--fit-budget``: a positive number of seconds, or ``none`` for no cap."""
    return None if text.strip().lower() == "none" else positive_number(text, "the fit budget", " of seconds, or none")


def fraction(text: str, what: str) -> float:
    """``text`` as a number strictly between 0 and 1."""
    value = number(text)
    if not 0 < value < 1:
        raise UsageError(f"{what} must be a fraction between 0 and 1 (0.10 is 10 %), got {text!r}")
    return value


def check_writable(folder: Path) -> None:
    """Refuse a folder that exists already, is being written, or cannot be created and written (found by
    trying, before any work: see :func:`bench.runfolder.unwritable`)."""
    if folder.is_dir() and (other := runfolder.holder(folder)):
        raise UsageError(f"output folder {folder} is being written by another run ({other}); choose another --out")
    if (folder / "sweep.json").is_file():
        raise UsageError(
            f"output folder {folder} holds a run already; finish it with --resume {folder}, or choose another --out"
        )
    if folder.exists() or folder.is_symlink():
        raise UsageError(f"output folder {folder} exists and is not a run folder; choose another --out")
    if reason := runfolder.unwritable(folder):
        raise UsageError(f"cannot create output folder {folder}: {reason}")


def read_sweep(folder: Path) -> Sweep:
    """The sweep a run folder's sweep.json records (ValueError, TypeError or KeyError when damaged)."""
    return shard.from_record(json.loads((folder / "sweep.json").read_text()))[0]


def run_to_resume(args: argparse.Namespace) -> tuple[Path, Sweep, str, shard.Shard | None, str]:
    """The folder, sweep, run id, shard and machine of the run named by ``--resume``, checked before anything
    is written."""
    folder = Path(args.resume)
    if args.resume == LATEST:
        started = run_folders(RESULTS_DIR, "sweep.json")
        if not started:
            raise UsageError(f"--resume latest: no run folder under {RESULTS_DIR}")
        folder = started[-1]
    given = [f"--{name.replace('_', '-')}" for name in given_options(args) if name != "resume"]
    given += [f"--{name}" for name in ("shard", "machine") if getattr(args, name) is not None]
    if given:
        raise UsageError(f"--resume finishes a run with the settings it was started with; drop {', '.join(given)}")
    if not (folder / "sweep.json").is_file() or not (folder / "environment.json").is_file():
        raise UsageError(f"--resume {folder}: not a run folder (a run folder holds sweep.json and environment.json)")
    try:
        results.check_schema(folder)
    except results.ResultsError as error:
        raise UsageError(f"--resume {error}") from error
    try:
        sweep, target, machine = shard.from_record(json.loads((folder / "sweep.json").read_text()))
        run_id = json.loads((folder / "environment.json").read_text())["run_id"]
    except (ValueError, TypeError, KeyError) as error:
        raise UsageError(f"--resume {folder}: damaged sweep.json or environment.json ({error!r})") from error
    known = registry()
    unknown = [name for name in sweep.backends if name not in known]
    if unknown:
        raise UsageError(
            f"--resume {folder}: the run used backend {', '.join(unknown)}, unknown here (known: {', '.join(known)});"
            " add it with ARRAYBENCH_BACKENDS=module:Class or an entry point"
        )
    if os.statvfs(folder).f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--resume {folder}: the folder cannot be written")
    return folder, sweep, run_id, target, machine or host_name()


def nothing_selected(sweep: Sweep) -> str:
    """Why a sweep holds no configuration: what its backends implement against what was asked."""

    def on_devices(variant) -> str:
        return f"{variant} on {'/'.join(variant.devices)}"

    offered = "; ".join(
        f"{name}: {', '.join(map(on_devices, backend_class(name).variants))}" for name in sweep.backends
    )
    return (
        f"no configuration to run: no variant has a grad in {','.join(sweep.grads)}, a mode in"
        f" {','.join(sweep.modes)} and exists on {','.join(sweep.devices)} (variants: {offered})"
    )


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages, or None where the system has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def load_warning(load: dict, threads: int) -> str | None:
    """A warning when the 1-minute load average before or after the sweep exceeded its thread count."""
    high = {when: values[0] for when, values in load.items() if values and values[0] > threads}
    if not high:
        return None
    readings = " and ".join(f"{value:g} {when} the sweep" for when, value in high.items())
    return (
        f"warning: load average {readings}, above the {threads} threads each framework was given (after includes"
        " the sweep's own last minutes): other work competed for the cores and the timings may be disturbed"
    )


def command_run(args: argparse.Namespace, console: Console) -> int:
    load_before = load_average()
    if args.resume:
        folder, sweep, run_id, target, machine = run_to_resume(args)
        with runfolder.locked(folder):
            configs = shard.select(plan(sweep), sweep, target)
            runfolder.check(folder, run_id, [c.key for c in configs], whole_lines=True)
            try:
                runfolder.repair(folder)
            except results.DiskFull as error:
                raise disk_full_stop(error, folder) from None
            done = runfolder.done_keys(folder)
            configs = [c for c in configs if c.key not in done]
            return sweep_into(folder, sweep, run_id, configs, console, load_before, machine)
    sweep = sweep_from(args)
    target, machine = shard.from_command_line(args.shard, args.machine, given_options(args))
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + host_name()
    folder = Path(args.out) if args.out is not None else RESULTS_DIR / run_id
    check_writable(folder)
    configs = plan(sweep)
    if not configs:
        raise UsageError(nothing_selected(sweep))
    configs = shard.select_checked(configs, sweep, target)
    if args.devices is None and "gpu" not in sweep.devices:
        console.print(
            "arraybench: no GPU here (no /dev/nvidia* device, no GPU in nvidia-smi -L): GPU configurations left"
            " out; ask for them with --devices cpu,gpu",
            highlight=False,
            soft_wrap=True,
        )
    environment = {"run_id": run_id, "schema_version": results.SCHEMA_VERSION, **fingerprint(sweep.threads)}
    if not args.no_probe:
        console.print("arraybench: probing the machine's bandwidth and arithmetic rate", highlight=False)
        environment["probe"] = probe(sweep.threads, environment, cpu_working_sets(configs))
    runfolder.make(folder)
    try:
        with runfolder.locked(folder):
            runfolder.write_json(folder / "environment.json", environment)
            record = {"schema_version": results.SCHEMA_VERSION, **shard.record(sweep, target, machine)}
            runfolder.write_json(folder / "sweep.json", record)
            return sweep_into(folder, sweep, run_id, configs, console, load_before, machine)
    except results.DiskFull as error:  # sweep_into reports its own: this is the metadata, before any row
        shutil.rmtree(folder, ignore_errors=True)  # made above, and holding no row
        raise DiskFullStop(f"{error.strerror}; nothing was run, and {folder} is removed again") from None


def sweep_into(
    folder: Path,
    sweep: Sweep,
    run_id: str,
    configs: list,
    console: Console,
    load_before: list[float] | None,
    machine: str | None = None,
) -> int:
    """Run ``configs`` into ``folder`` (locked by the caller); print the summary and the status line.
    ``load_before``: the load averages before the command began, recorded with those after the sweep;
    ``machine``: the machine's name in every row (None: the host name)."""
    console.print(
        f"arraybench: {len(configs)} configurations, {sweep.threads} threads each, into {folder}",
        highlight=False,
        soft_wrap=True,
    )
    progress = SweepProgress(len(configs) * sweep.processes, console)
    sweeper = Sweeper(sweep, folder, run_id, host_name(), progress)
    sweeper.machine = machine
    # SIGTERM and SIGHUP (the terminal closed) end a sweep as Ctrl-C does: rows on disk, resumable.
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    sweeper.probe = json.loads((folder / "environment.json").read_text()).get("probe")
    try:
        sweeper.run(configs)
    except KeyboardInterrupt:
        progress.close()
        message = (
            f"interrupted: finished configurations are in {folder}; finish with: {runfolder.resume_command(folder)}"
        )
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            console.print(message, highlight=False, soft_wrap=True)
        return exitcodes.INTERRUPTED
    except results.DiskFull as error:
        progress.close()
        raise disk_full_stop(error, folder) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    progress.close()
    environment_path = folder / "environment.json"
    environment = json.loads(environment_path.read_text())
    environment.setdefault("workers", {}).update(sweeper.worker_facts)
    load = {"before": load_before, "after": load_average()}
    environment.setdefault("load_average", []).append(load)  # one entry per (resumed) stretch of the sweep
    try:
        runfolder.write_json(environment_path, environment)
    except results.DiskFull as error:
        raise DiskFullStop(
            f"{error.strerror}; every configuration is in {folder}, but not the workers' facts"
        ) from None

    from bench.report import print_summary

    summary = results.read_csv(folder)
    print_summary(summary, console, results.read_csv(folder, "raw", may_be_empty=True))
    console.print(f"every table: python -m bench report {folder}", highlight=False, soft_wrap=True)
    statuses = Counter(summary["status"])
    counts = ", ".join(f"{statuses[s]} {s}" for s in results.STATUSES if statuses[s])
    console.print(f"status: {counts}", highlight=False, soft_wrap=True)
    if warning := load_warning(load, sweep.threads):
        console.print(warning, highlight=False, soft_wrap=True, markup=False)
    console.print(f"run folder: {folder}", highlight=False, soft_wrap=True)
    return exitcodes.of_statuses(statuses)


def checked(run: Run) -> Run:
    """``run``, once its folder holds nothing of another run or sweep and no row twice (see
    :func:`runfolder.check`); the sweep is known where sweep.json can be read and names backends known here."""
    planned = None
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, RegistryError):
        sweep = read_sweep(run.folder)
        if set(sweep.backends) <= set(registry()):
            planned = [c.key for c in plan(sweep)]
    runfolder.check(run.folder, None, planned)  # the rows' run ids must agree (a resume also checks environment.json's)
    return run


def one_machine(run: Run) -> Run:
    """``run``, refused when it holds several machines (a fleet folder): their tables are ``--by-machine``'s."""
    machines = sorted(set(run.summary["machine"].astype(str)))
    if len(machines) > 1:
        raise UsageError(
            f"{run.folder} holds {len(machines)} machines ({', '.join(machines)}): compare them with"
            f" python -m bench report --by-machine {run.folder}"
        )
    return run


def report_command(args: argparse.Namespace, console: Console) -> int:
    """``bench report``: the filters checked before the run is read."""
    filters = Filters(
        backends=choices(tuple(registry()), "backend")(args.backends) if args.backends else None,
        dtypes=choices(DTYPES, "dtype")(args.dtypes) if args.dtypes else None,
        devices=choices(DEVICES, "device")(args.devices) if args.devices else None,
        sizes=whole_numbers("a size", 1)(args.sizes) if args.sizes else None,
        best=args.best,
    )
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"--out {out}: {out.parent} is not a folder")
    run = one_machine(checked(load_run(args.run, RESULTS_DIR)))
    return command_report(run, args.format, console, filters, full=args.all, out=out)


def command_import(args: argparse.Namespace, console: Console) -> int:
    from bench import pytest_import
    from bench.report import print_summary

    data, found = pytest_import.load(Path(args.file))
    folder = Path(args.out) if args.out else RESULTS_DIR / pytest_import.run_id_of(data)
    check_writable(folder)
    statuses = pytest_import.write_run_folder(Path(args.file), data, found, folder)
    print_summary(results.read_csv(folder), console)
    counts = ", ".join(f"{statuses[s]} {s}" for s in results.STATUSES if statuses[s])
    console.print(f"imported {len(found)} benchmarks ({counts}) into {folder}", highlight=False)
    return exitcodes.of_statuses(statuses)


def command_runs(console: Console) -> int:
    """``bench runs``: one line per run folder under results/, oldest first."""
    folders = run_folders(RESULTS_DIR)
    if not folders:
        console.print(f"no run under {RESULTS_DIR}; start one with: python -m bench run", markup=False)
        return 0
    table = Table(title=f"Runs under {RESULTS_DIR}")
    for name in ("run", "when (UTC)", "host", "configurations", "outcome"):
        table.add_column(name, justify="right" if name == "configurations" else "left")
    for folder in folders:
        try:
            info = run_info(folder)
        except results.ResultsError as error:
            table.add_row(folder.name, "", "", "", f"unreadable: {error}")
            continue
        counts = ", ".join(f"{info.counts[s]} {s}" for s in results.STATUSES if info.counts.get(s))
        outcome = ("ok" if info.ok else "not ok") + (f" ({counts})" if counts else "")
        table.add_row(folder.name, info.when, info.host, f"{info.configurations:,}", outcome)
    console.print(table)
    return 0


def command_by_machine(args: argparse.Namespace, console: Console) -> int:
    """``bench report --by-machine``: the tables of :mod:`bench.fleet`, as a terminal table or Markdown."""
    from bench.fleet import FleetError, by_machine_sections
    from bench.report import markdown, print_sections

    if not args.by_machine:
        raise UsageError("--baseline goes with --by-machine")
    if args.format == "csv":
        raise UsageError("--by-machine prints --format table or md")
    run = checked(load_run(args.run, RESULTS_DIR))
    try:
        sections = by_machine_sections(run, args.baseline)
    except FleetError as error:
        raise UsageError(str(error)) from error
    if args.format == "md":
        print(f"Fleet {run.folder.name}: each machine's own medians; us = microseconds.\n")
        print(markdown(sections), end="")
    else:
        console.print(f"fleet {run.folder}", markup=False)
        print_sections(sections, console)
    return 0


def command_merge(args: argparse.Namespace, console: Console) -> int:
    from bench.merge import MergeError, merge

    out = Path(args.out)
    check_writable(out)
    try:
        parts = merge([Path(run) for run in args.runs], out)
    except MergeError as error:
        raise UsageError(str(error)) from error
    rows = len(results.read_csv(out))
    machines = sorted({m for part in parts for m in part.machines})
    console.print(
        f"merged {len(parts)} folders ({rows} configurations, machine {', '.join(machines)}) into {out}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def command_list(console: Console) -> int:
    for name in registry():
        try:
            backend = load_backend(name)
        except BackendUnavailable as error:
            console.print(f"{name}: unavailable: {error}", highlight=False, markup=False)
            continue
        console.print(f"{name} {backend.version()}: devices here: {', '.join(backend.devices())}", markup=False)
        for variant in backend.variants:
            for device in variant.devices:
                reason = backend.unavailable_reason(variant, device)
                console.print(f"  {variant} on {device}: {'can run' if reason is None else reason}", markup=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
    argv, run_options = list(sys.argv[1:] if argv is None else argv), []
    if argv[:1] == ["submit"] and "--" in argv:  # bench submit [engine options] -- [bench run options]
        argv, run_options = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return command_run(args, console)
        if args.command == "report" and (args.by_machine or args.baseline):
            return command_by_machine(args, console)
        if args.command == "report":
            return report_command(args, console)
        if args.command == "plot":
            from bench.plots import command_plot

            return command_plot(one_machine(checked(load_run(args.run, RESULTS_DIR))), console)
        if args.command == "compare":
            from bench.compare import command_compare

            min_effect = fraction(args.min_effect, "the minimum effect")
            q = fraction(args.fdr, "the false discovery rate")
            old, new = load_run(args.old, RESULTS_DIR), load_run(args.new, RESULTS_DIR)
            return command_compare(
                old,
                new,
                min_effect=min_effect,
                q=q,
                form=args.format,
                only_changed=args.only_changed,
                allow_different_machines=args.allow_different_machines,
                fail_on_regression=args.fail_on_regression,
                console=console,
            )
        if args.command == "import-pytest-benchmark":
            return command_import(args, console)
        if args.command == "submit":
            return command_submit(args, run_options, console)
        if args.command == "merge":
            return command_merge(args, console)
        if args.command == "list":
            return command_list(console)
        if args.command == "runs":
            return command_runs(console)
        print(json.dumps(fingerprint(), indent=1))
        return 0
    except (UsageError, RegistryError, results.ResultsError, runfolder.FolderError, shard.ShardError) as error:
        print(f"{program()}: error: {error}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except DiskFullStop as error:
        print(f"{program()}: error: {error}", file=sys.stderr)
        return exitcodes.DISK_FULL
