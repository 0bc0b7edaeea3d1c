"""A deliberately faulty backend, for the reliability tests only (it is not part of arraybench).

It is added the way a user adds their own framework, without editing arraybench:
``ARRAYBENCH_BACKENDS=tests.faulty_backend:FaultyBackend``, or an entry point in the group
``arraybench.backends``. Its one variant is ``manual/eager`` on the CPU (the names the command line accepts),
and the problem size ``n`` chooses the fault, so that one sweep can mix faulty and sound configurations:
``--sizes 5,16`` hangs at n=5 and fits correctly at n=16. Every size not in :data:`FAULTS` fits correctly,
with the NumPy tutorial loop. Faults strike inside the timed fit, after the worker's warm-up (n=16).

Across devices (``--worlds 2``) the variant runs PyTorch's gloo ranks (its ``manual/eager tuned`` fit), with
the faults of :data:`RANK_FAULTS` striking in rank 1 only, inside the timed fit: rank 0 then waits in a real
``all_reduce`` for a peer that died or hangs.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import math
import os
import stat
import sys
import time
from collections.abc import Callable

import numpy as np

from backends.contract import Backend, Fit, FitResult, Problem, Shard, Variant
from backends.numpy_backend import fit_tutorial
from bench.protocol import SCHEMA_VERSION

FAULTS = {
    5: "hang",  # sleeps for ever: the runner's --timeout must kill it
    6: "segfault",  # reads address 0 through ctypes, as a broken C extension does
    7: "abort",  # os.abort(), as a failed C++ assertion does
    8: "exit",  # a last word on stderr, then os._exit(3)
    9: "raise",  # a RuntimeError from inside the framework, which leaves the process broken
    10: "oom",  # MemoryError, as an allocator raises when memory runs out; leaves the process broken too
    11: "nan",  # the losses turn NaN from the second logged iteration on: divergence
    12: "malformed",  # a result with three weights instead of four
    13: "slow",  # correct, but every fit takes SLOW_S seconds (to interrupt a sweep in mid-run)
    15: "stale-result",  # runs its first call only; every later call returns that first result again
    17: "hog",  # touches memory in 64 MiB steps up to HOG_BYTES: where a memory cgroup limits it, the
    # kernel's out-of-memory killer ends the worker with SIGKILL
    18: "garbage",  # a line that is not JSON on the worker's reply channel, as a native library might write
    19: "stale",  # a well-formed reply line to another request on the reply channel
    20: "wrong-shape",  # weights that are strings, not numbers
    21: "chatter",  # prints on stdout (Python's and the C file descriptor's): must stay harmless
}
HOG_BYTES = 4 * 2**30
RANK_FAULTS = {
    14: "exit",  # rank 1 says its last word on stderr and exits with status 3
    15: "hang",  # rank 1 sleeps for ever before its first all-reduce
}
FAULTY_RANK = 1
SLOW_S = 0.4
FREE_MEMORY_BYTES = 2**20
"""The memory the faulty backend says its device has free: an n whose estimate exceeds it is skipped."""
broken = False
"""Set by a raised error: every later fit in this process fails, as a GPU context does after a device error."""


def faulty_fit(fault: str, fit: Callable[[], FitResult], first: list[FitResult]) -> FitResult:
    """Run ``fit``, spoiled by ``fault`` (``first`` holds the fit's first result, once there is one)."""
    global broken
    if broken:
        raise RuntimeError("faulty backend: unusable after an earlier error in this process")
    if fault in ("raise", "oom"):
        broken = True
    if fault == "hang":
        time.sleep(3600)
    elif fault == "segfault":
        ctypes.string_at(0)
    elif fault == "abort":
        os.abort()
    elif fault == "exit":
        print("faulty backend: giving up with exit status 3", file=sys.stderr, flush=True)
        os._exit(3)
    elif fault == "raise":
        raise RuntimeError("faulty backend: kernel launch failed")
    elif fault == "oom":
        raise MemoryError("faulty backend: cannot allocate 8 GiB")
    elif fault == "slow":
        time.sleep(SLOW_S)
    elif fault == "hog":
        hog = [np.ones(2**23) for _ in range(HOG_BYTES // 2**26)]  # 8 Mi float64 = 64 MiB each, written
        del hog
    elif fault in ("garbage", "stale"):
        line = "not json: framework says hello\n"
        if fault == "stale":
            stale = {"id": 0, "status": "skipped", "reason": "stale", "schema_version": SCHEMA_VERSION}
            line = json.dumps(stale) + "\n"
        os.write(reply_channel(), line.encode())
    elif fault == "chatter":
        print("faulty backend: chatter on Python's stdout", flush=True)
        os.write(1, b"faulty backend: chatter on file descriptor 1\n")
    elif fault == "stale-result" and first:
        return first[0]
    result = fit()
    first.append(result)
    if fault == "nan":
        losses = result.logged_losses[:1] + [math.nan] * (len(result.logged_losses) - 1)
        return FitResult(result.weights, math.nan, losses)
    if fault == "malformed":
        return FitResult(result.weights[:3], result.final_loss, result.logged_losses)  # type: ignore[arg-type]
    if fault == "wrong-shape":
        return FitResult(tuple(map(str, result.weights)), result.final_loss, result.logged_losses)  # type: ignore[arg-type]
    return result


def reply_channel() -> int:
    """The worker's reply pipe: the one write-only pipe among this process's file descriptors (fd 1 is
    pointed at stderr while a worker runs)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                return fd
    raise RuntimeError("faulty backend: no reply channel found")


class FaultyBackend(Backend):
    """The NumPy tutorial loop, except at the sizes listed in :data:`FAULTS`."""

    name = "faulty"
    variants = (Variant("manual", "eager", distributed=True),)
    torch = None
    """PyTorch's backend, which runs the fits across devices."""

    def version(self) -> str:
        return "0-faulty"

    def free_memory(self, device: str) -> int | None:
        return FREE_MEMORY_BYTES

    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        x, y = problem.x_and_y()
        weights = problem.initial_weights()
        fault = FAULTS.get(problem.n, "none")
        first: list[FitResult] = []
        return Fit(lambda initial: faulty_fit(fault, lambda: fit_tutorial(x, y, initial, problem), first), weights)

    def shard_unavailable_reason(self, problem: Problem, variant: Variant, device: str, world: int) -> str | None:
        return None

    def _torch(self):
        from backends.torch_backend import TorchBackend

        self.torch = self.torch or TorchBackend()
        return self.torch

    def join(self, shard: Shard, device: str, timeout_s: float) -> None:
        self._torch().join(shard, device, timeout_s)

    def barrier(self, shard: Shard) -> None:
        self._torch().barrier(shard)

    def collective_seconds(self, shard: Shard, device: str, dtype: str, rounds: int) -> float:
        return self._torch().collective_seconds(shard, device, dtype, rounds)

    def prepare_shard(self, problem: Problem, variant: Variant, device: str, shard: Shard) -> Fit:
        fit = self._torch().prepare_shard(problem, Variant("manual", "eager", "tuned"), device, shard)
        fault = RANK_FAULTS.get(problem.n, "none") if shard.process == FAULTY_RANK else "none"
        return Fit(lambda _: faulty_fit(fault, fit, []), problem.initial_weights(), fit.reset)
