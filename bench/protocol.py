"""What the runner and a worker say to each other: one :class:`Request` line, one :class:`Reply` line.

Both are written and read only here (after pyperf's ``Run``): a reader checks ``schema_version`` and the
shape of every field instead of sniffing for keys, and a reply must echo its request's ``id``, so a line
that a framework or a stale request left on the channel is never taken for the answer to the current one.
A line that fails any of these checks raises :class:`ProtocolError` with the reason; the runner records it
as a ``failed`` configuration and starts a fresh worker.

To add a field, add it to the dataclass with a default: the writer, the reader and the shape check follow
from the declaration. Change :data:`SCHEMA_VERSION` when a field changes meaning or is removed.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, get_args, get_origin, get_type_hints

from bench.config import Configuration

SCHEMA_VERSION = 2
"""The version of both messages: a reader refuses any other."""

REPLY_STATUSES = ("ran", "skipped", "failed", "oom", "timeout")
"""``ran``: timed, the rows' check decides ok, mismatch or diverged. The others become the row's status as
they are (``timeout`` only ever comes from the runner, which killed the worker)."""


class ProtocolError(ValueError):
    """A request or reply line that is not JSON, not of this schema version, of the wrong shape, or the
    answer to another request."""


def conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON-decoded ``value`` fits the type ``hint`` of a message field (ints count as floats)."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in get_args(hint))
    if origin is tuple:
        item = get_args(hint)[0]
        return isinstance(value, list | tuple) and all(conforms(v, item) for v in value)
    if hint is type(None):
        return value is None
    if is_dataclass(hint):
        return isinstance(value, dict)
    if isinstance(value, bool) and hint is not bool:
        return False
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(value, hint)


def type_name(hint: Any) -> str:
    """A field's type in words: ``a list of numbers``, ``a whole number or null``."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in get_args(hint))
    if origin is tuple:
        first, *rest = type_name(get_args(hint)[0]).removeprefix("a ").split(" ", 1)
        return " ".join(["a list of", f"{first}s", *rest])  # a list of numbers, a list of lists of numbers
    names = {float: "a number", int: "a whole number", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)} object")


def checked_fields(cls: type[Request] | type[Reply], data: Any, what: str) -> dict[str, Any]:
    """``data`` as keyword arguments of ``cls``: a JSON object of this schema version holding no unknown
    field and a value of the declared type in each (lists, nested ones too, become tuples); raises
    :class:`ProtocolError`."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{what} is not a JSON object but {type(data).__name__}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ProtocolError(
            f"{what} has schema_version {data.get('schema_version')!r}, not {SCHEMA_VERSION} (a worker of another"
            " arraybench version?)"
        )
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ProtocolError(f"{what} has unknown fields {', '.join(unknown)}")
    missing = [name for name in cls.REQUIRED if name not in data]
    if missing:
        raise ProtocolError(f"{what} lacks {', '.join(missing)}")
    for name, value in data.items():
        if not conforms(value, hints[name]):
            raise ProtocolError(f"{what}: {name} is {short(value)}, not {type_name(hints[name])}")
    kwargs = {name: as_tuples(value) for name, value in data.items()}
    for name, value in data.items():
        if is_dataclass(hints[name]):
            try:
                kwargs[name] = hints[name](**value)
            except TypeError as error:
                raise ProtocolError(f"{what}: {name} is not a {hints[name].__name__} ({error})") from None
    return kwargs


def as_tuples(value: Any) -> Any:
    """``value`` with every list in it, nested ones too, made a tuple (as the dataclasses declare them)."""
    return tuple(as_tuples(v) for v in value) if isinstance(value, list) else value


def short(value: Any) -> str:
    """``value`` for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def decode(line: str, what: str) -> Any:
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ProtocolError(f"{what} is not JSON ({error}): {short(line.strip())}") from None


@dataclass(frozen=True)
class Request:
    """Time one configuration: the runner's line to a worker."""

    id: int
    configuration: Configuration
    repeats: int
    budget_s: float
    fit_budget_s: float | None = None
    min_repeats: int = 1
    """No budget cuts the timed repeats below this (nor below ``repeats``)."""
    first_seed: int | None = None
    """Timed repeat i starts from the initial weights of seed ``first_seed + i`` (None: the configuration's seed)."""
    iterations_timed: int | None = None
    """The loop length to time, as an earlier process of the same configuration chose it (None: choose)."""
    timeout_s: float | None = None
    """The runner's timeout for this configuration: a fit across devices ends its group a little before it."""
    oversubscribe: bool = False
    """Run rank processes beyond the usable cores (skipped otherwise)."""
    schema_version: int = SCHEMA_VERSION

    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "configuration", "repeats", "budget_s")

    def to_line(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Request:
        return cls(**checked_fields(cls, decode(line, "the request"), "the request"))


@dataclass(frozen=True)
class Reply:
    """A worker's answer to one :class:`Request`: raw facts, which :func:`bench.rows.rows_for` checks
    against the reference and turns into rows. The runner also makes replies of its own (``timeout``, a
    dead worker's ``failed``, a skip it decides before asking)."""

    id: int
    status: str
    reason: str = ""
    backend_version: str = ""
    first_call_s: float = math.nan
    samples_s: tuple[float, ...] = ()
    device_samples_s: tuple[float, ...] = ()
    """Seconds of each timed repeat on the device's own clock; empty without one."""
    iterations_timed: int = 0
    """The iterations each timed fit ran (fewer than the configuration's when the per-fit budget cut them)."""
    note: str = ""
    seeds: tuple[int, ...] = ()
    """The seed of the initial weights each timed repeat started from; the three fields after it hold each
    repeat's result, in the same order: a, b, c, d; the final loss; the logged losses."""
    weights: tuple[tuple[float, ...], ...] = ()
    final_losses: tuple[float, ...] = ()
    logged_losses: tuple[tuple[float, ...], ...] = ()
    threads_used: str = ""
    allreduce_us: float = math.nan
    """A fit across devices: one all-reduce of the five sums alone, in us (the slowest process's)."""
    local_us: float = math.nan
    """A fit across devices: the same variant on one device at n / world, in us per iteration."""
    traceback: str = field(default="", repr=False)
    schema_version: int = SCHEMA_VERSION

    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "status")
    RAN: ClassVar[tuple[str, ...]] = (
        "backend_version",
        "first_call_s",
        "samples_s",
        "iterations_timed",
        "note",
        "seeds",
        "weights",
        "final_losses",
        "logged_losses",
        "threads_used",
    )
    """The fields a ``ran`` reply must hold (the others have defaults that mean "none")."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_line(self) -> str:
        return json.dumps(self.to_dict()) + "\n"

    @classmethod
    def from_dict(cls, data: Any, what: str = "the reply") -> Reply:
        kwargs = checked_fields(cls, data, what)
        if kwargs["status"] not in REPLY_STATUSES:
            raise ProtocolError(f"{what} has status {short(kwargs['status'])}, not one of {', '.join(REPLY_STATUSES)}")
        if kwargs["status"] == "ran":
            missing = [name for name in cls.RAN if name not in kwargs]
            if missing:
                raise ProtocolError(f"{what} says ran but lacks {', '.join(missing)}")
            if not kwargs["samples_s"]:
                raise ProtocolError(f"{what} says ran but holds no timed samples")
        return cls(**kwargs)

    @classmethod
    def from_line(cls, line: str, expected_id: int) -> Reply:
        """The reply in ``line``, which must answer request ``expected_id``."""
        reply = cls.from_dict(decode(line, "the reply"))
        if reply.id != expected_id:
            raise ProtocolError(f"the reply answers request {reply.id}, not the current request {expected_id}")
        return reply
