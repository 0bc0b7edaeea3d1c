"""``python -m bench``: run a sweep, list what can run here, print the machine's fingerprint.

Every option is checked before any work: a bad value gets one line on stderr naming the problem and the
valid choices, exit status 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from backends import BackendUnavailable, load_backend, registry
from backends.contract import DEVICES, DTYPES, FORMULATIONS, GRADS, MODES
from bench import results
from bench.config import PRESETS, Sweep
from bench.environment import PROJECT_ROOT, fingerprint, host_name
from bench.probe import probe
from bench.progress import SweepProgress
from bench.runner import Sweeper, done_keys, plan

RESULTS_DIR = PROJECT_ROOT / "results"


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 2."""


def choices(valid: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """A parser for a comma-separated subset of ``valid``."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
        unknown = [i for i in items if i not in valid]
        if unknown or not items:
            raise UsageError(f"unknown {what} {', '.join(unknown) or repr(text)}; choose from {', '.join(valid)}")
        return items

    return parse


def whole_number(text: str, what: str, minimum: int) -> int:
    """``text`` as an integer of at least ``minimum``; ``1e6`` and ``10_000`` are accepted."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not value.is_integer() or value < minimum:
        raise UsageError(f"{what} must be a whole number of at least {minimum}, got {text!r}")
    return int(value)


def whole_numbers(what: str, minimum: int) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        return tuple(whole_number(t.strip(), what, minimum) for t in text.split(","))

    return parse


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise UsageError(f"the learning rate must be a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="time a sweep and write a run folder under results/")
    run.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="defaults for the grid (quick)")
    run.add_argument("--backends", help="comma-separated backends (default: all known)")
    run.add_argument("--grads", help=f"from {','.join(GRADS)}")
    run.add_argument("--modes", help=f"from {','.join(MODES)}")
    run.add_argument("--formulations", help=f"from {','.join(FORMULATIONS)}")
    run.add_argument("--devices", help=f"from {','.join(DEVICES)}")
    run.add_argument("--dtypes", help=f"from {','.join(DTYPES)}")
    run.add_argument("--sizes", help="comma-separated n (replaces the preset's grid, with --iterations)")
    run.add_argument("--iterations", help="comma-separated iteration counts")
    run.add_argument("--repeats", help="timed fits per configuration (preset: 5 quick, 7 full)")
    run.add_argument("--threads", help="cores and threads given to every framework (default: all)")
    run.add_argument("--seed", default="0", help="seed of the initial weights (0)")
    run.add_argument("--learning-rate", help="fixed learning rate (default: 1e-6 * 2000 / n)")
    run.add_argument("--budget", help="seconds of timed repeats per configuration before repeats are cut")
    run.add_argument("--timeout", help="seconds before a configuration's worker is killed")
    run.add_argument("--out", help="run folder to create (default: results/<run-id>)")
    run.add_argument("--resume", metavar="RUN", help="finish an interrupted run folder")
    run.add_argument("--no-probe", action="store_true", help="skip the machine probe (no floor_us columns)")

    commands.add_parser("list", help="every backend and variant, and whether it can run here")
    commands.add_parser("env", help="print the machine and software fingerprint")
    return parser


def sweep_from(args: argparse.Namespace) -> Sweep:
    """The validated sweep of a ``run`` command line."""
    preset = PRESETS[args.preset]
    known = tuple(registry())
    backends = choices(known, "backend")(args.backends) if args.backends else known
    sizes = whole_numbers("a size", 4)(args.sizes) if args.sizes else None
    iterations = whole_numbers("an iteration count", 1)(args.iterations) if args.iterations else None
    if sizes or iterations:
        points = tuple(
            (n, it)
            for n in sizes or sorted({n for n, _ in preset.points})
            for it in iterations or sorted({it for _, it in preset.points})
        )
    else:
        points = preset.points
    return Sweep(
        backends=backends,
        grads=choices(GRADS, "grad")(args.grads) if args.grads else GRADS,
        modes=choices(MODES, "mode")(args.modes) if args.modes else MODES,
        formulations=choices(FORMULATIONS, "formulation")(args.formulations) if args.formulations else FORMULATIONS,
        devices=choices(DEVICES, "device")(args.devices) if args.devices else DEVICES,
        dtypes=choices(DTYPES, "dtype")(args.dtypes) if args.dtypes else DTYPES,
        points=points,
        repeats=whole_number(args.repeats, "repeats", 1) if args.repeats else preset.repeats,
        threads=whole_number(args.threads, "threads", 1) if args.threads else len(os.sched_getaffinity(0)),
        seed=whole_number(args.seed, "the seed", 0),
        learning_rate=positive_number(args.learning_rate) if args.learning_rate else None,
        budget_s=positive_float(args.budget, "the budget") if args.budget else preset.budget_s,
        timeout_s=positive_float(args.timeout, "the timeout") if args.timeout else preset.timeout_s,
    )


def positive_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{what} must be a positive number of seconds, got {text!r}")
    return value


def check_writable(folder: Path) -> None:
    """Refuse a folder that exists already or whose nearest existing parent cannot be written."""
    if folder.exists():
        raise UsageError(f"output folder {folder} exists already; choose another --out, or --resume it")
    parent = folder.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create output folder {folder}: {parent} is not a writable folder")


def sweep_of_run(folder: Path) -> Sweep:
    """The sweep an existing run folder was started with."""
    saved = folder / "sweep.json"
    if not saved.is_file():
        raise UsageError(f"{folder} is not a run folder to resume (no sweep.json)")
    data = json.loads(saved.read_text())
    data["points"] = tuple(tuple(p) for p in data["points"])
    return Sweep(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def command_run(args: argparse.Namespace, console: Console) -> int:
    if args.resume:
        folder = Path(args.resume)
        sweep = sweep_of_run(folder)
        run_id = json.loads((folder / "environment.json").read_text())["run_id"]
    else:
        sweep = sweep_from(args)
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + host_name()
        folder = Path(args.out) if args.out else RESULTS_DIR / run_id
        check_writable(folder)
    configs = plan(sweep)
    if args.resume:
        done = done_keys(folder)
        configs = [c for c in configs if c.key not in done]
    else:
        folder.mkdir(parents=True)
        (folder / "sweep.json").write_text(json.dumps(asdict(sweep), indent=1))
        environment = {"run_id": run_id, **fingerprint(sweep.threads)}
        if not args.no_probe:
            console.print("arraybench: probing the machine's bandwidth and arithmetic rate", highlight=False)
            environment["probe"] = probe(sweep.threads, environment)
        (folder / "environment.json").write_text(json.dumps(environment, indent=1))

    console.print(
        f"arraybench: {len(configs)} configurations, {sweep.threads} threads each, into {folder}",
        highlight=False,
    )
    progress = SweepProgress(len(configs), console)
    sweeper = Sweeper(sweep, folder, run_id, host_name(), progress)
    sweeper.probe = json.loads((folder / "environment.json").read_text()).get("probe")
    try:
        statuses = sweeper.run(configs)
    except KeyboardInterrupt:
        progress.close()
        console.print(f"interrupted: finished configurations are in {folder}; "
                      f"finish with: python -m bench run --resume {folder}", highlight=False)  # fmt: skip
        return 130
    progress.close()
    environment_path = folder / "environment.json"
    environment = json.loads(environment_path.read_text())
    environment.setdefault("workers", {}).update(sweeper.worker_facts)
    environment_path.write_text(json.dumps(environment, indent=1))

    from bench.report import print_summary

    print_summary(results.read_csv(folder), console)
    counts = ", ".join(f"{statuses[s]} {s}" for s in results.STATUSES if statuses[s])
    console.print(f"status: {counts or 'nothing left to run'}", highlight=False)
    console.print(f"run folder: {folder}", highlight=False)
    return 0 if set(statuses) <= {"ok", "skipped"} else 1


def command_list(console: Console) -> int:
    for name in registry():
        try:
            backend = load_backend(name)
        except BackendUnavailable as error:
            console.print(f"{name}: unavailable: {error}", highlight=False)
            continue
        console.print(f"{name} {backend.version()}: devices here: {', '.join(backend.devices())}", highlight=False)
        for variant in backend.variants:
            for device in DEVICES:
                reason = backend.unavailable_reason(variant, device)
                console.print(f"  {variant} on {device}: {'can run' if reason is None else reason}", highlight=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return command_run(args, console)
        if args.command == "list":
            return command_list(console)
        print(json.dumps(fingerprint(), indent=1))
        return 0
    except (UsageError, results.ResultsError) as error:
        print(f"python -m bench: error: {error}", file=sys.stderr)
        return 2
