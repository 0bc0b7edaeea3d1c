"""The runner: drives a sweep through worker processes and appends every finished configuration to disk.

Frameworks never share a timing process: each (backend, device, world) group runs in its own fresh worker, and a
worker that hangs (killed after the timeout) or crashes is replaced by a fresh one for the rest of the
group, as is one whose framework raised (its state can no longer be trusted).

Every configuration is timed in ``processes`` fresh workers, in rounds: round 1 runs every group of the
sweep in turn (A B C), then round 2 runs them all again in fresh workers (A B C), so that what differs from
one process to the next, and slow spells of the machine, fall on every framework alike. Rounds after the
first time the loop length the first chose, from seeds of their own, and only configurations that ran in the
first. A configuration's rows (:mod:`bench.rows`) are written and flushed once its last round is done, or as
soon as a round did not run it; Ctrl-C, SIGTERM or SIGHUP is held back while they are written. So
``--resume`` never finds part of a configuration on disk: a configuration without its summary row runs again,
in every round.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path

import numpy as np

from backends import backend_class
from bench import oomkill, results, roofline
from bench.config import Configuration, Sweep
from bench.memory import host_shortfall
from bench.protocol import ProtocolError, Reply, Request
from bench.rows import rows_for

INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def worker_environment(threads: int) -> dict[str, str]:
    """The environment a worker starts with: every framework's thread knobs set to ``threads``."""
    env = dict(os.environ)
    for knob in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[knob] = str(threads)
    env["ARRAYBENCH_THREADS"] = str(threads)
    if threads == 1:
        env["XLA_FLAGS"] = (
            f"{env.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
        )
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX must not grab 75% of a shared GPU
    env["PYTHONUNBUFFERED"] = "1"
    env["ARRAYBENCH_RUNNER_PID"] = str(os.getpid())
    return env


class WorkerFailure(RuntimeError):
    """The worker hung (``status = "timeout"``), died (``"failed"``; ``"oom"`` when the kernel's
    out-of-memory killer killed it) or sent a broken reply (``"failed"``)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class WorkerProcess:
    """One ``python -m bench.worker`` child: send a request, wait for its reply, within a timeout."""

    def __init__(self, threads: int) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=worker_environment(threads),
            text=True,
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None  # both are pipes (PIPE)
        self.to_worker, self.from_worker = self.process.stdin, self.process.stdout
        self.replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.cgroup = oomkill.memory_cgroup(self.process.pid)
        self.oom_counters: dict[str, int] = {}
        """The memory cgroup's OOM counters before the current request (see :mod:`bench.oomkill`)."""

    def _read(self) -> None:
        for line in self.from_worker:
            self.replies.put(line)
        self.replies.put(None)

    def request(self, request: Request, timeout_s: float) -> Reply:
        """Send one request and return its reply; raise :class:`WorkerFailure` on a hang, a crash or a reply
        that is not the answer to ``request`` (the worker is then killed: what it says can't be trusted)."""
        self.oom_counters = oomkill.counters(self.cgroup)
        try:
            self.to_worker.write(request.to_line())
            self.to_worker.flush()
            line = self.replies.get(timeout=timeout_s)
        except queue.Empty:
            self.kill()
            raise WorkerFailure(
                "timeout",
                f"no result within the {timeout_s:g} s timeout; the worker was killed (--timeout allows longer)",
            ) from None
        except BrokenPipeError:
            line = None
        if line is None:
            raise WorkerFailure(*self._death())
        try:
            return Reply.from_line(line, request.id)
        except ProtocolError as error:
            self.kill()
            raise WorkerFailure("failed", f"a broken reply from the worker: {error}"[:600]) from None

    def _death(self) -> tuple[str, str]:
        """The status (``oom`` when the kernel's out-of-memory killer did it, else ``failed``) and how the
        worker died, with the tail of its error output."""
        code = self.process.wait()
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        status = "failed"
        if code == -signal.SIGKILL:
            found = oomkill.evidence(self.process.pid, self.cgroup, self.oom_counters)
            status = "oom" if found else "failed"
            how += f" from the kernel's out-of-memory killer ({found})" if found else " (possibly the OOM killer)"
        self.stderr.seek(0)
        tail = error_tail(self.stderr.read().decode(errors="replace"))
        return status, (f"worker {how}" + (f": {tail}" if tail else ""))[:600]

    def kill(self) -> None:
        """Kill the worker and anything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        """End the worker normally (closing stdin ends its loop)."""
        try:
            self.to_worker.close()
            self.process.wait(timeout=30)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.kill()


def error_tail(text: str) -> str:
    """The telling end of a dead worker's error output, on one line.

    After a native crash that is faulthandler's "Fatal Python error" and the two innermost Python frames of
    the crashing thread; otherwise the last three lines (the end of a traceback, or a framework's last words).
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
    if fatal:
        stack = lines[fatal[-1] + 1 :]
        current = next((i for i, line in enumerate(stack) if line.startswith("Current thread")), -1)
        frames = [line for line in stack[current + 1 : current + 3] if line.startswith("File")]
        return " | ".join([lines[fatal[-1]], *frames])
    return " | ".join(lines[-3:])


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold back Ctrl-C, SIGTERM and SIGHUP until the block is done, then raise :class:`KeyboardInterrupt`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _: received.append(number)) for sig in INTERRUPTS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


def cpu_working_sets(configs: Iterable[Configuration]) -> set[int]:
    """The bytes one iteration reads (x and y) for each CPU configuration: where the probe measures bandwidth."""
    return {
        roofline.bytes_per_iteration(config.n, np.dtype(config.dtype).itemsize)
        for config in configs
        if config.device == "cpu"
    }


def write_rows(folder: Path, rows: dict[str, list[dict]]) -> None:
    """Append one configuration's rows: raw and losses first, summary last (it marks the configuration done)."""
    with interrupts_held():
        for kind in ("raw", "losses", "summary"):
            results.append_rows(folder, kind, rows[kind])


class Sweeper:
    """Runs the configurations of a sweep, round by round and group by group, and reports progress."""

    def __init__(self, sweep: Sweep, folder: Path, run_id: str, host: str, progress) -> None:
        self.sweep, self.folder, self.run_id, self.host, self.progress = sweep, folder, run_id, host, progress
        self.statuses: Counter[str] = Counter()
        self.oom_at: dict[tuple, int] = {}
        self.worker_facts: dict[str, str] = {}
        self.worker: WorkerProcess | None = None
        self.request_ids = itertools.count(1)
        self.replies: dict[tuple, list[Reply]] = {}
        """The replies so far of each configuration not yet written, one per round."""
        self.machine: str | None = None
        """The machine's name in every row (``bench run --machine``; None: the host name)."""
        self.probe: dict | None = None
        """The machine probe's record, for the roofline columns (None: no probe, the columns are NaN)."""

    def run(self, configs: list[Configuration]) -> Counter[str]:
        groups = [list(group) for _, group in groupby(configs, key=lambda c: (c.backend, c.device, c.world))]
        for process in range(self.sweep.processes):
            for group in groups:
                try:
                    for config in group:
                        if process == 0 or config.key in self.replies:
                            self._one(config, process)
                except BaseException:
                    self._drop_worker(kill=True)
                    raise
                self._drop_worker(kill=False)
        return self.statuses

    def _drop_worker(self, kill: bool) -> None:
        if self.worker is not None:
            self.worker.kill() if kill else self.worker.close()
            self.worker = None

    def _one(self, config: Configuration, process: int) -> None:
        """Run one round of a configuration in the group's worker (afresh after a hang, crash or error); write
        its rows once it is done."""
        processes = self.sweep.processes
        self.progress.start(config, f" (process {process + 1} of {processes})" if processes > 1 else "")
        earlier = self.replies.pop(config.key, [])
        variant_key = config.variant_key
        skip = host_shortfall(config) if process == 0 else None
        if process == 0 and variant_key in self.oom_at and config.n >= self.oom_at[variant_key]:
            skip = f"n={self.oom_at[variant_key]} of this variant already ran out of memory"
        sweep = self.sweep
        request = Request(
            next(self.request_ids),
            config,
            sweep.repeats,
            sweep.budget_s,
            sweep.fit_budget_s,
            min_repeats=min(sweep.min_repeats, sweep.repeats),
            first_seed=config.seed + process * sweep.repeats,
            iterations_timed=earlier[0].iterations_timed if earlier else None,
            timeout_s=sweep.timeout_s,
            oversubscribe=sweep.oversubscribe,
        )
        if skip:
            reply = Reply(id=request.id, status="skipped", reason=skip)
        else:
            self.worker = self.worker or WorkerProcess(config.threads)
            try:
                reply = self.worker.request(request, self.sweep.timeout_s)
            except WorkerFailure as failure:
                reply, self.worker = Reply(id=request.id, status=failure.status, reason=str(failure)), None
            if reply.status in ("failed", "oom"):
                self._drop_worker(kill=True)  # a framework that raised may be left in a broken state
        if reply.status == "oom":
            self.oom_at[variant_key] = min(config.n, self.oom_at.get(variant_key, config.n))
        if reply.threads_used:
            self.worker_facts[f"{config.backend}/{config.device}"] = reply.threads_used
        replies = [*earlier, reply]
        if reply.status == "ran" and process + 1 < processes:
            self.replies[config.key] = replies
            median_us = statistics.median(reply.samples_s) / reply.iterations_timed * 1e6
            self.progress.finish(config, {"status": "ran", "reason": f"process {process + 1}: {median_us:.1f} us/iter"})
            return
        rows = rows_for(config, replies, self.run_id, self.host, self.probe, self.machine)
        write_rows(self.folder, rows)
        summary = rows["summary"][0]
        self.statuses[summary["status"]] += 1
        self.progress.finish(config, summary, steps=processes - process)


def plan(sweep: Sweep) -> list[Configuration]:
    """Every configuration of ``sweep``, from the variants each backend declares."""
    return sweep.configurations({name: backend_class(name).variants for name in sweep.backends})
