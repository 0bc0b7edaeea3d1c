"""``bench submit``: fan a sweep's shards out on an engine that already exists, wait, and merge them.

Each shard is an ordinary ``python -m bench run ... --shard I/N --out DIR/shard-I-of-N`` (``--resume`` where
the folder holds a run already), run as a fresh process on the node that the engine picked:

- ``local``: one shard after another on this machine (never two timed shards at once on one machine).
- ``slurm``: one job array through submitit, ``--exclusive`` unless told otherwise (no other job on the
  node: cgroups bound cores, not memory bandwidth or cache), GPUs requested where the sweep has GPU devices.
- ``ray``: one Ray task per shard, each requesting the custom resource :data:`NODE_RESOURCE` that every node
  offers once, so that a node runs one shard at a time (Ray's CPU counts are logical, never enforced).

The submit folder (``--out``, default ``results/<machine>-<sweep id>``) holds ``submit.json`` (what was
submitted), ``submit.log`` (each shard's engine id and outcome), one folder per shard and ``merged/``. A shard
whose run exits with a status above 1 (1: some configurations not ok, an ordinary outcome) or never reports
has failed: it is named in one line and ``submit`` exits 1, keeping every finished shard; the same command
again skips finished shards, resumes partial ones and starts the absent ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import results, shard
from bench.config import Sweep
from bench.environment import PROJECT_ROOT
from bench.runner import plan

EXECUTORS = ("local", "slurm", "ray")
EXTRAS = {"slurm": ("submitit", "slurm"), "ray": ("ray", "ray")}
"""The module each engine needs, and the arraybench extra that installs it."""
NODE_RESOURCE = "arraybench_node"
"""The custom Ray resource each node offers once and each shard requests: one shard per node at a time."""
DEFAULT_MACHINE = {"slurm": "slurm", "ray": "ray"}
"""The machine name of a sweep sharded over a cluster's nodes unless ``--machine`` names it (the host name
would differ between nodes); local shards default to this host's name, as ``bench run`` does."""


class SubmitError(ValueError):
    """A submit that cannot start: reported as one line, exit status 2."""


@dataclass(frozen=True)
class Task:
    """One shard to run: its command line and folder."""

    target: shard.Shard
    folder: Path
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"shard {self.target}"


def run_shard(argv: Sequence[str], log: str | None = None) -> int:
    """Run one shard as ``python -m bench run``; return its exit status. Where the engine runs it (a SLURM
    node, a Ray worker) this is the whole job: a fresh process, the project root as its working folder."""
    command = [sys.executable, "-m", "bench", "run", *argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    if log is None:
        return subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=False).returncode
    with open(log, "ab") as file:
        return subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=file, stderr=subprocess.STDOUT).returncode


def engine_module(executor: str):
    """The engine's Python module, or a :class:`SubmitError` naming the extra that installs it."""
    if executor not in EXTRAS:
        return None
    module, extra = EXTRAS[executor]
    try:
        return __import__(module)
    except ImportError:
        raise SubmitError(
            f"--executor {executor} needs {module}, which is not installed: pip install 'arraybench[{extra}]'"
        ) from None


def shard_state(task: Task, sweep: Sweep) -> str:
    """``done`` (every configuration of the shard in its summary.csv), ``partial`` or ``absent``."""
    if not (task.folder / "sweep.json").is_file():
        return "absent"
    summary = results.read_csv(task.folder, "summary", may_be_empty=True)
    done = set(summary[results.KEY_COLUMNS].itertuples(index=False, name=None))
    expected = {c.key for c in shard.select(plan(sweep), sweep, task.target)}
    return "done" if expected <= done else "partial"


def shard_argv(run_options: Sequence[str], target: shard.Shard, folder: Path, state: str) -> tuple[str, ...]:
    """The ``bench run`` options of one shard: resume its folder if it holds a run, else start it."""
    if state == "partial":
        return ("--resume", str(folder))
    return (*run_options, "--shard", str(target), "--out", str(folder))


class Log:
    """``submit.log`` in the submit folder, each line also printed."""

    def __init__(self, path: Path, say: Callable[[str], None]) -> None:
        self.path, self.say = path, say

    def __call__(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.path.open("a") as file:
            file.write(f"{stamp} {line}\n")
        self.say(line)


def run_local(tasks: list[Task], log: Log, options: dict) -> dict[Task, str | None]:
    """Shards one after another, here; a shard's output goes to its own log file beside its folder."""
    outcome: dict[Task, str | None] = {}
    for task in tasks:
        shard_log = task.folder.with_suffix(".log")
        log(f"{task}: running here (output: {shard_log})")
        status = run_shard(task.argv, str(shard_log))
        outcome[task] = None if status in (0, 1) else f"bench run exited with status {status} (see {shard_log})"
    return outcome


@contextlib.contextmanager
def stderr_to_file():
    """Send this process's file descriptor 2 (which child processes inherit) to a temporary file for the
    block; yields a list that holds what was written once the block is done."""
    sys.stderr.flush()
    saved, caught = os.dup(2), []
    with tempfile.TemporaryFile("w+") as file:
        os.dup2(file.fileno(), 2)
        try:
            yield caught
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            caught.append(file.read())


def run_submitit(
    executor, tasks: list[Task], log: Log, what: str, one_at_a_time: bool = False
) -> dict[Task, str | None]:
    """Submit the shards through a submitit executor (one job array unless ``one_at_a_time``, as submitit's
    LocalExecutor starts every job of an array at once) and wait for each."""
    outcome: dict[Task, str | None] = {}  # each task's failure, None where it finished
    if one_at_a_time:
        for task in tasks:
            outcome |= run_submitit(executor, [task], log, what)
        return outcome
    logs = [str(t.folder.with_suffix(".log")) for t in tasks]
    refusal: Exception | None
    with stderr_to_file() as caught:  # sbatch's complaint comes back in the error: print it once, as ours
        try:
            jobs = executor.map_array(run_shard, [t.argv for t in tasks], logs)
        except Exception as error:  # sbatch refused the array (a wrong partition, account or request)
            refusal = error
        else:
            refusal = None
    if refusal is not None:
        text = "\n".join([*caught, str(refusal)])
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        raise SubmitError(f"{what} refused the shards: {lines[-1] if lines else refusal!r}") from refusal
    for task, job in zip(tasks, jobs, strict=True):
        log(f"{task}: {what} job {job.job_id} (output: {task.folder.with_suffix('.log')})")
    for task, job in zip(tasks, jobs, strict=True):
        try:
            status = job.result()
        except Exception as error:  # the job died, was cancelled or timed out
            outcome[task] = f"{what} job {job.job_id}: {' '.join(str(error).split())[:300]}"
            continue
        state = f"{what} job {job.job_id}"
        outcome[task] = None if status in (0, 1) else f"{state}: bench run exited with status {status}"
    return outcome


def slurm_executor(submit_folder: Path, options: dict, sweep: Sweep, count: int):
    """submitit's SLURM executor for one job array of ``count`` shards."""
    import submitit

    if shutil.which("sbatch") is None:
        raise SubmitError("--executor slurm: no sbatch on PATH; run bench submit on a SLURM login node")
    executor = submitit.SlurmExecutor(folder=submit_folder / "slurm" / "%j", max_num_timeout=0)
    gpus = options["gpus_per_node"]
    if gpus is None:
        gpus = 1 if "gpu" in sweep.devices else 0
    parameters = {
        "job_name": "arraybench",
        "time": options["time_min"],
        "cpus_per_task": sweep.threads,
        "array_parallelism": count,
        "exclusive": options["exclusive"],
        "gpus_per_node": gpus or None,
        "partition": options["partition"],
        "account": options["account"],
        "wckey": "",
    }
    executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
    return executor


def run_ray(tasks: list[Task], log: Log, options: dict, sweep: Sweep) -> dict[Task, str | None]:
    """One Ray task per shard, each holding one :data:`NODE_RESOURCE` (one shard per node at a time) and a
    GPU where the sweep has GPU devices, against ``--ray-address`` or a local Ray started here."""
    import ray

    address = options["ray_address"]
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        cpus = max(2, sweep.threads)
        ray.init(num_cpus=cpus, resources={NODE_RESOURCE: 1}, include_dashboard=False, log_to_driver=False)
    try:
        nodes = ray.cluster_resources().get(NODE_RESOURCE, 0)
        if not nodes:
            raise SubmitError(
                f"--executor ray: no node of the Ray cluster at {address} offers the resource {NODE_RESOURCE};"
                f" start each node with: ray start ... --resources '{{\"{NODE_RESOURCE}\": 1}}'"
            )
        gpus = 1 if "gpu" in sweep.devices else 0
        if gpus and not ray.cluster_resources().get("GPU", 0):
            raise SubmitError("--executor ray: the sweep has --devices gpu, and no node of the Ray cluster has a GPU")
        remote = ray.remote(num_cpus=1, num_gpus=gpus, resources={NODE_RESOURCE: 1}, max_retries=0)(run_shard)
        refs = {task: remote.remote(task.argv, str(task.folder.with_suffix(".log"))) for task in tasks}
        for task, ref in refs.items():
            log(f"{task}: Ray task {ref.task_id().hex()} (output: {task.folder.with_suffix('.log')})")
        outcome: dict[Task, str | None] = {}
        for task, ref in refs.items():
            try:
                status = ray.get(ref)
            except Exception as error:  # the task or its node died
                outcome[task] = f"Ray task {ref.task_id().hex()}: {' '.join(str(error).split())[:300]}"
                continue
            outcome[task] = None if status in (0, 1) else f"bench run exited with status {status}"
        return outcome
    finally:
        ray.shutdown()


def slurm_jobs_alive(log_path: Path) -> list[str]:
    """The SLURM jobs of an earlier submit (from its log) that are still pending or running (``squeue``):
    re-running their shards now would put two runs in one folder."""
    arrays = sorted(set(re.findall(r"SLURM job (\d+)_\d+", log_path.read_text()))) if log_path.is_file() else []
    if not arrays or shutil.which("squeue") is None:
        return []
    listing = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-j", ",".join(arrays)], capture_output=True, text=True, check=False
    )
    return listing.stdout.split()


def prepare(run_options: Sequence[str], count: int, executor: str, machine: str | None, out: str | None):
    """Check everything before any work: the engine, the run options (as ``bench run --shard`` would), the
    submit folder. Returns (sweep, machine, submit folder, the options with ``--machine``)."""
    from bench.cli import UsageError, build_parser, given_options, sweep_from

    engine_module(executor)
    for reserved in ("--shard", "--out", "--resume"):
        if any(option == reserved or option.startswith(reserved + "=") for option in run_options):
            raise SubmitError(f"{reserved} is set by bench submit for each shard; drop it after --")
    try:
        args = build_parser().parse_args(["run", *run_options])
    except UsageError as error:
        raise SubmitError(f"bench run options after --: {error}") from error
    sweep = sweep_from(args)
    given_machine = args.machine or machine or DEFAULT_MACHINE.get(executor)
    try:
        _, machine = shard.from_command_line(f"0/{count}", given_machine, given_options(args))
        shard.select_checked(plan(sweep), sweep, shard.Shard(0, count))
    except shard.ShardError as error:
        raise SubmitError(f"bench run options after --: {error}") from error
    folder = Path(out) if out else PROJECT_ROOT / "results" / f"{machine}-{shard.sweep_id(sweep)}"
    options = list(run_options)
    if args.machine is None:
        options += ["--machine", machine]
    return sweep, machine, folder, options


def submit(
    executor: str,
    count: int,
    run_options: Sequence[str],
    options: dict,
    say: Callable[[str], None],
    engine: Callable | None = None,
) -> int:
    """``bench submit``: run the missing shards on ``executor``, then merge into ``<folder>/merged``.

    ``engine`` replaces the engine's runner (tests pass submitit's local or debug executor)."""
    from bench.merge import merge

    sweep, machine, folder, run_options = prepare(run_options, count, executor, options["machine"], options["out"])
    record = {"sweep_id": shard.sweep_id(sweep), "shards": count, "machine": machine, "run_options": run_options}
    if (folder / "submit.json").is_file():
        before = json.loads((folder / "submit.json").read_text())
        if any(before.get(k) != record[k] for k in ("sweep_id", "shards", "machine")):
            raise SubmitError(
                f"{folder} holds a submit of another sweep, shard count or machine ({before.get('shards')} shards"
                f" of sweep {before.get('sweep_id')} on {before.get('machine')}); choose another --out"
            )
    elif folder.exists():
        raise SubmitError(f"{folder} exists and is not a submit folder; choose another --out")
    new_folder = not folder.exists()
    if alive := slurm_jobs_alive(folder / "submit.log"):
        raise SubmitError(
            f"{folder}: SLURM job {', '.join(alive)} of the earlier submit is still queued or running; wait for it"
            " (squeue) or cancel it (scancel) first"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "submit.json").write_text(json.dumps(record, indent=1))
    log = Log(folder / "submit.log", say)

    tasks, finished = [], []
    for index in range(count):
        target = shard.Shard(index, count)
        shard_folder = folder / f"shard-{index}-of-{count}"
        state = shard_state(Task(target, shard_folder, ()), sweep)
        if state == "done":
            finished.append(shard_folder)
            continue
        tasks.append(Task(target, shard_folder, shard_argv(run_options, target, shard_folder, state)))
    log(
        f"submit {count} shards of sweep {record['sweep_id']} on {executor} as machine {machine}:"
        f" {len(finished)} finished already, {len(tasks)} to run"
    )
    if tasks:
        try:
            if engine is not None:
                outcome = engine(tasks, log)
            elif executor == "local":
                outcome = run_local(tasks, log, options)
            elif executor == "slurm":
                outcome = run_submitit(slurm_executor(folder, options, sweep, len(tasks)), tasks, log, "SLURM")
            else:
                outcome = run_ray(tasks, log, options, sweep)
        except SubmitError:
            if new_folder:
                shutil.rmtree(folder)  # refused before any shard ran: leave nothing behind
            raise
        failed = {task: why for task, why in outcome.items() if why is not None}
        for task in outcome:
            if task not in failed:
                log(f"{task}: finished")
        if failed:
            task, why = next(iter(failed.items()))
            others = f" ({len(failed) - 1} more failed, see {log.path})" if len(failed) > 1 else ""
            log(
                f"{task} failed: {why}{others}; the finished shards are kept in {folder}: run the same bench submit"
                " again to finish the rest"
            )
            return 1
        unfinished = [t for t in tasks if shard_state(t, sweep) != "done"]
        if unfinished:
            log(f"{unfinished[0]} reported success but its folder {unfinished[0].folder} is not finished")
            return 1
    merged = folder / "merged"
    if merged.exists():
        shutil.rmtree(merged)  # derived from the shards: merged again, with any shard that was re-run
    merge([folder / f"shard-{index}-of-{count}" for index in range(count)], merged)
    summary = results.read_csv(merged)
    log(f"merged {count} shards ({len(summary)} configurations) into {merged}")
    return 0 if set(summary["status"]) <= {"ok", "skipped"} else 1
