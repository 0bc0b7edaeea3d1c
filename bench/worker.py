"""The worker process: times configurations of one (backend, device) group, one JSON line at a time.

The runner starts ``python -m bench.worker`` with the thread settings already in its environment (see
:func:`bench.runner.worker_environment`), so they are in force before any framework is imported. The
worker pins itself to that many cores, then reads one :class:`bench.protocol.Request` per line on stdin and answers one
:class:`bench.protocol.Reply` line each on a private copy of stdout; anything a framework prints goes to stderr.
A crash in native code leaves the Python stack on stderr (``faulthandler``), for the runner's failure reason,
and on Linux the worker dies with the runner, so no worker outlives an interrupted sweep.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import statistics
import sys
import traceback
from dataclasses import replace
from typing import TextIO

from backends import load_backend
from backends.contract import Backend, BackendUnavailable, Problem
from bench.config import Configuration
from bench.memory import shortfall
from bench.protocol import ProtocolError, Reply, Request
from bench.ranks import run_group
from bench.timing import Measurement, affordable_iterations, measure, timed_call

WARM_UP_PROBLEM = {"n": 16, "iterations": 10}
"""Before its first configuration of each variant and device, the worker runs that variant on this tiny
problem, untimed, so one-time costs of the process (loading a compiler, building its caches) are not charged
to the first size measured; ``first_call_s`` then measures what a new shape costs. A second, timed, tiny fit
gives the variant's cost per iteration at a size where nothing but overhead counts: a floor on its cost at
any size, from which the per-fit budget decides whether a configuration's loop must be shortened."""


def pin_threads(threads: int) -> None:
    """Restrict this process to ``threads`` cores, so every framework gets the same share of the machine."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[: max(1, threads)])


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a framework's out-of-memory error (host or device)."""
    text = f"{type(error).__name__} {error}".lower()
    return isinstance(error, MemoryError) or "out of memory" in text or "resource_exhausted" in text


def warm_up(backend: Backend, config: Configuration) -> float:
    """Run ``config``'s variant on the tiny :data:`WARM_UP_PROBLEM`, untimed, then once more, timed; return
    that second fit's seconds per iteration."""
    tiny = Problem(dtype=config.dtype, seed=config.seed, **WARM_UP_PROBLEM)
    fit = backend.prepare(tiny, config.variant, config.device)
    fit()
    seconds, _ = timed_call(fit)
    return seconds / tiny.iterations


def warm_up_once(warmed: dict[tuple, float], backend: Backend, config: Configuration) -> float:
    """:func:`warm_up` of ``config``, unless a configuration of the same :attr:`Configuration.variant_key` (backend,
    variant with its formulation, device, dtype: all that changes the compiled code) was warmed up already;
    ``warmed`` keeps each key's seconds per iteration on the tiny problem."""
    if config.variant_key not in warmed:
        warmed[config.variant_key] = warm_up(backend, config)
    return warmed[config.variant_key]


def ran_reply(
    backend: Backend, measurement: Measurement, iterations_timed: int, seeds: list[int], notes: tuple[str, ...] = ()
) -> Reply:
    """The reply for a configuration that ran (``id`` 0: :meth:`Worker.answer` sets the request's);
    ``seeds[i]`` is the seed of the initial weights timed repeat ``i`` started from."""
    facts: dict[str, object] = {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    }
    facts.update(backend.describe())
    return Reply(
        id=0,
        status="ran",
        backend_version=backend.version(),
        first_call_s=measurement.first_call_s,
        samples_s=tuple(measurement.samples_s),
        device_samples_s=tuple(measurement.device_samples_s),
        iterations_timed=iterations_timed,
        note="; ".join(note for note in (*notes, measurement.note) if note),
        seeds=tuple(seeds[: len(measurement.results)]),
        weights=tuple(tuple(r.weights) for r in measurement.results),
        final_losses=tuple(r.final_loss for r in measurement.results),
        logged_losses=tuple(tuple(r.logged_losses) for r in measurement.results),
        threads_used="; ".join(f"{k}={v}" for k, v in facts.items()),
    )


class Worker:
    """Keeps the loaded backends, the warmed-up variants and the times per iteration measured so far."""

    def __init__(self) -> None:
        self.backends: dict[str, Backend | str] = {}
        self.per_iteration_s: dict[tuple, float] = {}
        """Seconds per iteration on the tiny problem of each warmed-up :attr:`Configuration.variant_key`."""
        self.timed_s: dict[tuple, dict[int, float]] = {}
        """Seconds per iteration of each :attr:`Configuration.variant_key`, by n, for the sizes timed so far."""

    def backend(self, name: str) -> Backend | str:
        """The loaded backend, or the reason it cannot be loaded."""
        if name not in self.backends:
            try:
                self.backends[name] = load_backend(name)
            except BackendUnavailable as error:
                self.backends[name] = str(error)
        return self.backends[name]

    def answer(self, line: str) -> Reply:
        """The reply to one request line, carrying its id (a request that cannot be read is ``failed``)."""
        try:
            request = Request.from_line(line)
        except ProtocolError as error:
            return Reply(id=-1, status="failed", reason=f"the worker could not read its request: {error}")
        return replace(self.run(request), id=request.id)

    def run(self, request: Request) -> Reply:
        """Time one configuration; the reply holds raw facts, which the runner checks and summarises."""
        config = request.configuration
        backend = self.backend(config.backend)
        if isinstance(backend, str):
            return Reply(id=request.id, status="skipped", reason=backend)
        version = backend.version()
        reason = backend.absent_reason(config.variant, config.device) or backend.unavailable_reason(
            config.variant, config.device
        )
        if reason:
            return Reply(id=request.id, status="skipped", reason=reason, backend_version=version)
        if config.world > 1:
            return run_group(backend, request)
        free = backend.free_memory(config.device)
        if free is not None and (reason := shortfall(config, free, f"{config.device} memory")):
            return Reply(id=request.id, status="skipped", reason=reason, backend_version=version)
        try:
            warm_up_once(self.per_iteration_s, backend, config)
            problem, notes = self.timed_problem(config, request)
            fit = backend.prepare(problem, config.variant, config.device)
            first_seed = config.seed if request.first_seed is None else request.first_seed
            seeds = [first_seed + i for i in range(request.repeats)]
            measurement = measure(
                fit,
                lambda i: replace(problem, seed=seeds[i]).initial_weights(),
                request.repeats,
                request.min_repeats,
                request.budget_s,
                backend.device_timer(config.device),
            )
        except Exception as error:
            last_line = (str(error).strip().splitlines() or [""])[-1]
            return Reply(
                id=request.id,
                status="oom" if is_out_of_memory(error) else "failed",
                reason=f"{type(error).__name__}: {last_line}"[:500],
                backend_version=version,
                traceback=traceback.format_exc()[-2000:],
            )
        per_iteration_s = statistics.median(measurement.samples_s) / problem.iterations
        self.timed_s.setdefault(config.variant_key, {})[config.n] = per_iteration_s
        return ran_reply(backend, measurement, problem.iterations, seeds, notes)

    def estimated_per_iteration_s(self, config: Configuration) -> tuple[float, str]:
        """A cautious estimate of ``config``'s seconds per iteration, and where it comes from: the tiny fit's
        (overhead only, a floor at any size) or, if larger, the largest smaller size timed so far of the same
        variant scaled in proportion to n (an overestimate where overhead counts)."""
        tiny = self.per_iteration_s[config.variant_key]
        estimate, source = tiny, f"a tiny fit took {tiny * 1e3:.3g} ms per iteration"
        timed = self.timed_s.get(config.variant_key, {})
        smaller_n = max((n for n in timed if n < config.n), default=None)
        if smaller_n is not None and timed[smaller_n] * config.n / smaller_n > estimate:
            estimate = timed[smaller_n] * config.n / smaller_n
            source = f"{timed[smaller_n] * 1e3:.3g} ms per iteration at n={smaller_n}, scaled to n={config.n}"
        return estimate, source

    def timed_problem(self, config: Configuration, request: Request) -> tuple[Problem, tuple[str, ...]]:
        """``config``'s problem, its loop shortened when one fit is estimated to exceed the per-fit budget.

        The budget is the request's ``fit_budget_s`` (None: never shortened), and no more than the
        configuration's ``budget_s`` over its ``min_repeats``, so that the minimum repeats fit in it. A request
        that names ``iterations_timed`` (every process after a configuration's first) gets that loop length,
        so that every process times the same loop.
        """
        problem = config.problem
        if request.iterations_timed is not None:
            return replace(problem, iterations=request.iterations_timed), ()
        if request.fit_budget_s is None:
            return problem, ()
        fit_budget_s = min(request.fit_budget_s, request.budget_s / request.min_repeats)
        per_iteration_s, source = self.estimated_per_iteration_s(config)
        iterations = affordable_iterations(problem.iterations, per_iteration_s, fit_budget_s, problem.log_interval)
        if iterations == problem.iterations:
            return problem, ()
        note = (
            f"timed over {iterations} of {problem.iterations} iterations by the {fit_budget_s:g} s per-fit budget"
            f" ({source})"
        )
        if per_iteration_s * iterations > fit_budget_s:
            note += f"; a fit of {iterations} iterations still exceeds it: loops are not cut below one log interval"
        return replace(problem, iterations=iterations), (note,)


def serve(requests: TextIO, replies: TextIO) -> None:
    """Answer each request line with one reply line until stdin closes."""
    worker = Worker()
    for line in requests:
        if line.strip():
            replies.write(worker.answer(line).to_line())
            replies.flush()


def die_with_runner() -> None:
    """On Linux, have the kernel kill this worker when the runner that started it dies, even by SIGKILL."""
    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if str(os.getppid()) != os.environ.get("ARRAYBENCH_RUNNER_PID", str(os.getppid())):
        os._exit(1)  # the runner died before the request above took effect


def main() -> None:
    die_with_runner()
    faulthandler.enable()
    pin_threads(int(os.environ.get("ARRAYBENCH_THREADS", os.cpu_count() or 1)))
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # framework chatter must not corrupt the protocol
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
