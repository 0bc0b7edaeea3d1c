"""Shards of a sweep: the same split on every host, whole series each, balanced by an estimate of their cost.

A *series* is every size of one (backend, grad, mode, formulation, device, dtype): it stays in one shard and
runs in increasing n there, because the worker's out-of-memory skip and its per-fit estimate read the sizes
run before. The split depends on the sweep alone (never on what this host has installed or how many cores it
has), so each host of a cluster computes the same shards by itself; that is why ``bench run --shard`` wants
``--devices`` and ``--threads`` spelled out, and why :func:`sweep_id` hashes only fields a command line fixes.

Shards are numbered from 0, as ``$SLURM_ARRAY_TASK_ID`` (``--array=0-N-1``), Kubernetes'
``$JOB_COMPLETION_INDEX`` and a Ray task list are: ``--shard 0/3`` is the first of three.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from bench.config import Configuration, Sweep

RECORD_FIELDS = ("schema_version", "sweep_id", "shard_index", "shard_count", "machine")
"""What sweep.json records beside the sweep's own fields (see :func:`record`)."""


class ShardError(ValueError):
    """A shard that cannot be: reported as one line, exit status 2."""


@dataclass(frozen=True)
class Shard:
    """The ``index``-th (from 0) of ``count`` shards."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``I/N`` (0 <= I < N) as a :class:`Shard`; anything else is a :class:`ShardError` saying what is wanted."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ShardError(f"--shard wants INDEX/COUNT, counted from 0 (0/3 is the first of three), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ShardError(f"--shard {text}: the shard count must be at least 1")
    if index >= count:
        raise ShardError(f"--shard {text}: shards are counted from 0, so the index must be 0 to {count - 1}")
    return Shard(index, count)


# Rough costs, only to balance shards (never reported as a measurement): microseconds of per-iteration
# overhead by mode, nanoseconds per element by device, seconds to start a worker and to compile.
OVERHEAD_US = {"eager": 40.0, "jit-step": 15.0, "jit-loop": 3.0, "jit-loop-parallel": 5.0}
AUTODIFF_EAGER_US = 400.0
"""Un-jitted autodiff builds a graph (or traces) every iteration: an order of magnitude more overhead."""
PER_ELEMENT_NS = {"cpu": 2.0, "gpu": 0.02}
WORKER_START_S = 3.0
COMPILE_S = {"eager": 0.0, "jit-step": 1.0, "jit-loop": 1.5, "jit-loop-parallel": 1.5}


def estimated_seconds(config: Configuration, sweep: Sweep) -> float:
    """A rough wall-clock estimate of one configuration: compile, a warm-up fit, then the timed repeats as
    the runner cuts them (the per-fit budget shortens a fit, the per-configuration budget the repeats)."""
    overhead = AUTODIFF_EAGER_US if (config.grad, config.mode) == ("autodiff", "eager") else OVERHEAD_US[config.mode]
    per_iteration_s = (overhead + config.n * PER_ELEMENT_NS[config.device] / 1e3) / 1e6
    fit_s = per_iteration_s * config.iterations
    if sweep.fit_budget_s is not None:
        fit_s = min(fit_s, sweep.fit_budget_s)
    timed_s = min(sweep.repeats * fit_s, max(sweep.budget_s, fit_s))
    return COMPILE_S[config.mode] + fit_s + timed_s


def series(configs: list[Configuration]) -> dict[tuple, list[Configuration]]:
    """The configurations grouped by series, their :attr:`Configuration.variant_key` (first appearance order), each
    in increasing (n, iterations)."""
    found: dict[tuple, list[Configuration]] = {}
    for config in configs:
        found.setdefault(config.variant_key, []).append(config)
    return {key: sorted(group, key=lambda c: (c.n, c.iterations)) for key, group in found.items()}


def split(configs: list[Configuration], sweep: Sweep, count: int) -> list[list[Configuration]]:
    """``configs`` in ``count`` shards of whole series, by longest processing time first: the series in
    decreasing estimated cost (ties by key), each to the shard with the least estimate so far (ties to the
    lowest index). Each shard keeps the run order of ``configs`` between series. Deterministic."""
    groups = series(configs)
    costs = {key: WORKER_START_S + sum(estimated_seconds(c, sweep) for c in group) for key, group in groups.items()}
    order = sorted(groups, key=lambda key: (-costs[key], key))
    loads = [(0.0, index) for index in range(count)]
    owner: dict[tuple, int] = {}
    for key in order:
        load, index = heapq.heappop(loads)
        owner[key] = index
        heapq.heappush(loads, (load + costs[key], index))
    shards: list[list[Configuration]] = [[] for _ in range(count)]
    for key, group in groups.items():
        shards[owner[key]].extend(group)
    return shards


def shard_estimates(configs: list[Configuration], sweep: Sweep, count: int) -> list[float]:
    """The estimated seconds of each of ``count`` shards (what :func:`split` balances)."""
    return [
        sum(WORKER_START_S + sum(estimated_seconds(c, sweep) for c in group) for group in series(shard).values())
        for shard in split(configs, sweep, count)
    ]


def select(configs: list[Configuration], sweep: Sweep, shard: Shard | None) -> list[Configuration]:
    """The configurations of ``shard`` (all of ``configs`` for None), each series in increasing n."""
    if shard is None:
        return configs
    return split(configs, sweep, shard.count)[shard.index]


def sweep_id(sweep: Sweep) -> str:
    """A short hash of everything that decides which configurations a sweep runs and how: the same on every
    host given the same command line (``--threads`` included, which is why sharded runs must give it)."""
    fields = asdict(sweep)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record(sweep: Sweep, shard: Shard | None, machine: str | None) -> dict:
    """What sweep.json holds: the sweep's fields, its id, the shard (null for a whole run) and the machine (null
    for a merge of several)."""
    return {
        **asdict(sweep),
        "sweep_id": sweep_id(sweep),
        "shard_index": None if shard is None else shard.index,
        "shard_count": None if shard is None else shard.count,
        "machine": machine,
    }


def from_record(data: dict[str, Any]) -> tuple[Sweep, Shard | None, str | None]:
    """The sweep, shard and machine of a sweep.json (one from before shards has neither: None, None)."""
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k not in RECORD_FIELDS
    }
    fields["points"] = tuple(tuple(p) for p in fields["points"])
    sweep = Sweep(**fields)
    index, count = data.get("shard_index"), data.get("shard_count")
    shard = None if index is None or count is None else Shard(int(index), int(count))
    return sweep, shard, data.get("machine")


def balance(estimates: list[float]) -> float:
    """The largest shard's estimate over the mean (1.0: perfectly even)."""
    mean = math.fsum(estimates) / len(estimates)
    return max(estimates) / mean if mean else 1.0


MACHINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A machine name: a host-name-like word (it names folders and table columns)."""


def from_command_line(shard_text: str | None, machine: str | None, given: dict) -> tuple[Shard | None, str]:
    """The shard and machine name of a ``bench run`` command line, checked (``given``: the run options
    that were given). A shard needs ``--devices`` and ``--threads``: their defaults depend on the host."""
    from bench.environment import host_name

    if machine is not None and not MACHINE_NAME.fullmatch(machine):
        raise ShardError(
            f"--machine {machine!r}: a machine name is 1 to 64 letters, digits, '.', '_' or '-', starting with a"
            " letter or digit"
        )
    if shard_text is None:
        return None, machine or host_name()
    target = parse_shard(shard_text)
    missing = [f"--{name}" for name in ("devices", "threads") if name not in given]
    if missing:
        raise ShardError(
            f"--shard {shard_text} needs {' and '.join(missing)}: their defaults depend on the host, and every host"
            " must compute the same split"
        )
    return target, machine or host_name()


def select_checked(configs: list[Configuration], sweep: Sweep, target: Shard | None) -> list[Configuration]:
    """:func:`select`, refusing more shards than the sweep has series (a shard would be empty)."""
    if target is not None and target.count > (available := len(series(configs))):
        raise ShardError(
            f"--shard {target}: the sweep has {available} series (a series is all sizes of one variant, device and"
            f" dtype), so at most {available} shards"
        )
    return select(configs, sweep, target)
