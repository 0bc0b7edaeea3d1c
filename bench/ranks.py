"""A fit across ``world`` devices: the worker starts the processes, each times its part, the worker merges.

A backend either runs one process per device (torch.distributed's ranks) or one process driving several
devices (JAX); ``processes`` processes meet on a free loopback port (``127.0.0.1``), each pinned to its own
cores (the worker's cores split in equal shares), each with its devices set in its environment before the
framework is imported (:meth:`backends.contract.Backend.local_devices_environment`). Started by
``python -m bench.ranks SPEC``, a process joins the group, warms up on a tiny problem, runs the first call and the
timed repeats (repeat i from the initial weights of seed ``first_seed + i``, each after a barrier, so
every process starts it together), times the all-reduce alone
(``allreduce_us``) and, in process 0 only while the others wait, the variant on one device at n / world
(``local_us``), then writes its reply to a file.

A repeat's time is the slowest process's. If one process dies, or ends without a result, the whole group is
killed at once (its peers would wait in the collective until its timeout) and the row says which process and
why; if the group has not finished by the deadline (a little before the runner's timeout), each process's
Python stack is dumped (faulthandler, ``SIGUSR1``), the group is killed, and the row says where each one was.
Processes stay in the worker's process group and die with the worker (``PR_SET_PDEATHSIG``), so none outlives
it. Every process runs all the requested repeats and iterations: the per-configuration and per-fit budgets,
which each process would decide from its own clock, do not apply.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

from backends import backend_class, load_backend
from backends.contract import Backend, BackendUnavailable, Fit, FitResult, Problem, Shard
from bench.config import Configuration
from bench.memory import rank_bytes, shortfall
from bench.protocol import Reply, Request

ALLREDUCE_ROUNDS = 200
"""All-reduces in a row per timing of the collective alone (the median of three timings is kept)."""
WARM_UP_N = 16
"""Elements per device of the untimed warm-up fit (its 10 iterations compile and touch every code path)."""
LOCAL_REPEATS = 3
"""Timed repeats of the one-device fit at n / world."""
DEFAULT_TIMEOUT_S = 600.0
"""The group's time limit when the request names no timeout."""
DUMP_WAIT_S = 1.0
"""How long a hung process is given to dump its stack before the group is killed."""


def free_port() -> int:
    """A TCP port free on the loopback interface now (the OS picks it; the coordinator binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def layout(backend: type[Backend], world: int, processes: int | None) -> int:
    """How many processes run a fit across ``world`` devices: one per device, or one for all unless asked."""
    if processes is not None:
        return processes
    return world if backend.one_process_per_device else 1


def core_shares(cores: list[int], processes: int) -> list[list[int]]:
    """Each process's own cores: equal contiguous shares; with more processes than cores, one core each in turn."""
    if processes > len(cores):
        return [[cores[p % len(cores)]] for p in range(processes)]
    share = len(cores) // processes
    return [cores[p * share : (p + 1) * share] for p in range(processes)]


def too_few_cores(config: Configuration, processes: int, cores: int) -> str | None:
    """The reason to skip a fit whose processes outnumber the usable cores (they would time-share them)."""
    if processes <= cores:
        return None
    return (
        f"world={config.world} runs {processes} rank processes, more than the {cores} usable cores: they would"
        " measure time-sharing, not scaling (bench run --oversubscribe runs them anyway)"
    )


class Group:
    """The processes of one fit across devices, started at once, watched until all report or one fails."""

    def __init__(self, config: Configuration, seeds: list[int], processes: int, timeout_s: float) -> None:
        backend = backend_class(config.backend)
        self.folder = Path(tempfile.mkdtemp(prefix="arraybench-ranks-"))
        self.coordinator = f"127.0.0.1:{free_port()}"
        cores = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        )
        shares = core_shares(cores, processes)
        local = config.world // processes
        self.processes: list[subprocess.Popen] = []
        self.ended: dict[int, float] = {}
        self.stderr = []
        for p in range(processes):
            spec = {
                "configuration": config.to_dict(),
                "shard": {"world": config.world, "process": p, "processes": processes, "coordinator": self.coordinator},
                "timeout_s": timeout_s,
                "seeds": seeds,
                "reply": str(self.folder / f"reply{p}.json"),
            }
            path = self.folder / f"spec{p}.json"
            path.write_text(json.dumps(spec))
            env = dict(os.environ)
            for knob in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
                env[knob] = str(len(shares[p]))
            env["ARRAYBENCH_THREADS"] = str(len(shares[p]))
            env["ARRAYBENCH_CORES"] = ",".join(map(str, shares[p]))
            env["ARRAYBENCH_RUNNER_PID"] = str(os.getpid())
            env.update(backend.local_devices_environment(config.device, local))
            stderr = (self.folder / f"stderr{p}.txt").open("wb")
            self.stderr.append(stderr)
            command = [sys.executable, "-m", "bench.ranks", str(path)]
            quiet = subprocess.DEVNULL
            self.processes.append(subprocess.Popen(command, stdin=quiet, stdout=stderr, stderr=stderr, env=env))
        for p, process in enumerate(self.processes):
            threading.Thread(target=self._watch, args=(p, process), daemon=True).start()

    def _watch(self, p: int, process: subprocess.Popen) -> None:
        process.wait()
        self.ended[p] = time.monotonic()

    def reply_of(self, p: int) -> dict | None:
        try:
            return json.loads((self.folder / f"reply{p}.json").read_text())
        except (OSError, ValueError):
            return None

    def stderr_text(self, p: int) -> str:
        return (self.folder / f"stderr{p}.txt").read_text(errors="replace")

    def wait(self, deadline: float) -> tuple[list[dict] | None, str, str]:
        """Every process's reply; or ``None``, the status (``failed``, ``oom``, ``timeout``) and the reason."""
        try:
            while time.monotonic() < deadline:
                # One snapshot of the ended processes (the watcher threads add to self.ended meanwhile): one that
                # ends after it is checked next time round, never counted as done without its reply checked.
                ended = list(self.ended.items())
                replies = {p: self.reply_of(p) for p, _ in ended}
                ran = {p: reply for p, reply in replies.items() if reply is not None and reply.get("status") == "ran"}
                bad = sorted((t, p) for p, t in ended if p not in ran)
                if bad:
                    return (None, *self._failure(bad[0][1]))
                if len(ran) == len(self.processes):
                    return [ran[p] for p in range(len(self.processes))], "", ""
                time.sleep(0.02)
            return None, "timeout", self._hung()
        finally:
            self.kill()

    def _failure(self, p: int) -> tuple[str, str]:
        """The status and reason of a group whose process ``p`` ended first without a result."""
        reply = self.reply_of(p)
        code = self.processes[p].returncode
        if reply is not None:
            status = reply.get("status", "failed")
            if status == "skipped":
                return "skipped", f"process {p}: {reply.get('reason', '')}"
            return status, f"rank {p} of {len(self.processes)}: {reply.get('reason', '')}"[:600]
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        from bench.runner import error_tail

        tail = error_tail(self.stderr_text(p))[:400]
        reason = f"rank {p} of {len(self.processes)} {how}; the group was killed"
        return "failed", reason + (f": {tail}" if tail else "")

    def _hung(self) -> str:
        """Where each unfinished process was: the innermost frame of its dumped Python stack."""
        running = [p for p in range(len(self.processes)) if p not in self.ended]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                self.processes[p].send_signal(signal.SIGUSR1)
        time.sleep(DUMP_WAIT_S)
        places = []
        for p in running:
            dump = self.stderr_text(p).rpartition("most recent call first")[2]
            frames = [line.strip() for line in dump.splitlines() if line.strip().startswith("File ")]
            where = frames[0] if frames else "no stack dumped"
            places.append(f"rank {p} at {where}")
        return ("no result by the deadline; the group was killed: " + "; ".join(places))[:600]

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for process in self.processes:
            process.wait()
        for stderr in self.stderr:
            stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def run_group(backend: Backend, request: Request, processes: int | None = None) -> Reply:
    """The reply to ``request`` (a configuration with ``world`` > 1): skipped, or timed by a group of processes
    (``processes`` of them; by default as the backend runs: one per device, or one for all) and merged."""
    config, version = request.configuration, backend.version()

    def answer(status: str, reason: str) -> Reply:
        return Reply(id=request.id, status=status, reason=reason, backend_version=version)

    declared = next((v for v in type(backend).variants if v == config.variant), None)
    if declared is None or not declared.distributed:
        return answer("skipped", f"{config.backend} {config.variant} does not run across devices")
    reason = backend.shard_unavailable_reason(config.problem, config.variant, config.device, config.world)
    count = layout(type(backend), config.world, processes)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if reason is None and config.world % count:
        reason = f"world={config.world} does not split over {count} processes"
    if reason is None and not request.oversubscribe:
        reason = too_few_cores(config, count, cores)
    if reason:
        return answer("skipped", reason)
    timeout_s = request.timeout_s or DEFAULT_TIMEOUT_S
    started = time.monotonic()
    first_seed = config.seed if request.first_seed is None else request.first_seed
    seeds = [first_seed + i for i in range(request.repeats)]
    group = Group(config, seeds, count, timeout_s)
    replies, status, reason = group.wait(started + timeout_s * 0.9)
    if replies is None:
        return answer(status, reason)
    first = replies[0]
    for p, other in enumerate(replies[1:], 1):
        if other["results"] != first["results"]:
            return answer("failed", f"rank {p}'s result differs from rank 0's: the ranks disagree")
    fits = first["results"]
    samples = tuple(max(reply["samples_s"][i] for reply in replies) for i in range(request.repeats))
    shared = f"; {config.world} devices share {cores} cores" if config.world > cores else ""
    return Reply(
        id=request.id,
        status="ran",
        backend_version=first["backend_version"],
        first_call_s=max(reply["first_call_s"] for reply in replies),
        samples_s=samples,
        iterations_timed=config.iterations,
        note=f"{config.world} devices in {count} processes{shared}; each repeat the slowest process's time",
        seeds=tuple(seeds),
        weights=tuple(tuple(weights) for weights, _, _ in fits),
        final_losses=tuple(final for _, final, _ in fits),
        logged_losses=tuple(tuple(logged) for _, _, logged in fits),
        threads_used="; ".join(f"rank {p}: {reply['threads_used']}" for p, reply in enumerate(replies)),
        allreduce_us=max(reply["allreduce_s"] for reply in replies) * 1e6,
        local_us=first["local_s"] * 1e6,
    )


def timed(backend: Backend, shard: Shard, fit: Fit) -> tuple[float, FitResult]:
    """One fit, started by every process together (a barrier first), timed in this process."""
    backend.barrier(shard)
    start = time.perf_counter_ns()
    result = fit()
    return (time.perf_counter_ns() - start) / 1e9, result


def serve_rank(spec: dict) -> dict:
    """This process's part: join, warm up, time the fit, the collective and (process 0) one device at n / world."""
    config = Configuration(**spec["configuration"])
    shard = Shard(**spec["shard"])
    try:
        backend = load_backend(config.backend)
    except BackendUnavailable as error:
        return {"status": "skipped", "reason": str(error)}
    free = backend.free_memory(config.device)
    share = replace(config, n=-(-config.n // config.world), world=1)
    if free is not None and (reason := shortfall(share, free, f"{config.device} memory")):
        return {"status": "skipped", "reason": f"per rank ({rank_bytes(config):,} bytes): {reason}"}
    backend.join(shard, config.device, spec["timeout_s"])
    problem = config.problem
    tiny = Problem(n=WARM_UP_N * config.world, iterations=10, dtype=config.dtype, seed=config.seed)
    backend.prepare_shard(tiny, config.variant, config.device, shard)()
    fit = backend.prepare_shard(problem, config.variant, config.device, shard)
    first_call_s, _ = timed(backend, shard, fit)
    samples, fits = [], []
    for seed in spec["seeds"]:
        fit.reset(replace(problem, seed=seed).initial_weights())
        seconds, result = timed(backend, shard, fit)
        samples.append(seconds)
        fits.append([list(result.weights), result.final_loss, list(result.logged_losses)])
    allreduce_s = backend.collective_seconds(shard, config.device, config.dtype, ALLREDUCE_ROUNDS)
    local_s = float("nan")
    backend.barrier(shard)
    if shard.process == 0:
        local = Problem(config.n // config.world, problem.iterations, config.dtype, problem.lr, config.seed)
        local_fit = backend.prepare(local, config.variant, config.device)
        local_fit()
        local_s = statistics.median(timed(backend, Shard(1), local_fit)[0] for _ in range(LOCAL_REPEATS))
        local_s /= local.iterations
    backend.barrier(shard)
    facts = {"cores": os.environ.get("ARRAYBENCH_CORES", ""), **backend.describe()}
    return {
        "status": "ran",
        "backend_version": backend.version(),
        "first_call_s": first_call_s,
        "samples_s": samples,
        "results": fits,
        "allreduce_s": allreduce_s,
        "local_s": local_s,
        "threads_used": ", ".join(f"{k}={v}" for k, v in facts.items()),
    }


def main() -> None:
    from bench.worker import die_with_runner, is_out_of_memory

    die_with_runner()
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=False)
    if hasattr(os, "sched_setaffinity") and os.environ.get("ARRAYBENCH_CORES"):
        os.sched_setaffinity(0, [int(c) for c in os.environ["ARRAYBENCH_CORES"].split(",")])
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        reply = serve_rank(spec)
    except Exception as error:
        last_line = (str(error).strip().splitlines() or [""])[-1]
        status = "oom" if is_out_of_memory(error) else "failed"
        reply = {"status": status, "reason": f"{type(error).__name__}: {last_line}"[:500]}
        traceback.print_exc()
    partial = Path(spec["reply"] + ".tmp")
    partial.write_text(json.dumps(reply))
    partial.replace(spec["reply"])
    sys.stderr.flush()
    os._exit(0 if reply["status"] == "ran" else 1)  # skip the frameworks' exit handlers (a process group's)


if __name__ == "__main__":
    main()
