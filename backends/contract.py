"""The fit-sin-with-cubic contract that every backend implements.

The workload is the warm-up of PyTorch's "Learning PyTorch with Examples": fit ``y = sin(x)`` on
``x = linspace(-pi, pi, n)`` with ``a + b x + c x^2 + d x^3`` by plain gradient descent on the summed
squared error, computing the loss at every iteration and logging it every ``log_interval`` iterations.

Design rules (after einops' ``_backends.py`` and Keras' backend constants):

- A backend is a subclass of :class:`Backend`. Its framework is imported in ``__init__`` and nowhere at
  module level, so listing backends costs nothing and a missing framework costs nothing until used.
- What a backend offers is declared as data (``variants``: each :class:`Variant` says on which devices it
  exists, which code it runs where, where it is expected to miss the reference), not discovered by catching
  exceptions or by ``if``s on the variant; what it cannot do *here* (no package, no GPU, no compiler) is
  reported as a reason string by :meth:`Backend.unavailable_reason`. Whoever needs a new fact of a variant adds
  a field to :class:`Variant` and fills it in the declarations.
- A run is split into :meth:`Backend.prepare` (builds x, y and the initial weights on the device; not
  timed) and the :class:`Fit` it returns. Before each call, :meth:`Fit.reset` (not timed) sets the weights
  that call starts from and fills the fit's output buffers with NaN; the call (timed) runs every iteration,
  ends synchronised and returns host values. So each timed repeat can start from weights of its own and be
  checked against its own reference, and a call that did not run cannot return an earlier call's values.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar, cast

import numpy as np
from numpy.typing import DTypeLike

GRADS = ("manual", "autodiff")
"""``manual``: the tutorial's hand-written backward pass. ``autodiff``: the framework's own."""

MODES = ("eager", "jit-step", "jit-loop", "jit-loop-parallel")
"""``eager``: op by op. ``jit-step``: one compiled call per iteration, driven by a Python loop.
``jit-loop``: the whole fit is one compiled call (or one captured graph). ``jit-loop-parallel``: as
``jit-loop``, with each pass over the data explicitly split across the threads by the code itself (Numba's
``prange``); in the other modes a framework decides its threading on its own."""

FORMULATIONS = ("tutorial", "tuned")
"""``tutorial``: the tutorial's arithmetic as written (``x ** 2`` and ``x ** 3`` recomputed every iteration,
four separate gradient sums), the same in every backend. ``tuned``: the same mathematics written the way an
expert in that framework writes it for speed; each backend's docstring says what its tuned form does."""

DEVICES = ("cpu", "gpu")
"""``gpu`` means a CUDA device, whatever the framework calls it."""

DTYPES = ("float32", "float64")

TUTORIAL_SIZE = 2000
TUTORIAL_LEARNING_RATE = 1e-6


def default_learning_rate(n: int) -> float:
    """The tutorial's 1e-6 scaled by 2000 / n.

    The loss is a *sum* over n points, so its curvature (and the largest stable step) grows with n: the
    tutorial's fixed 1e-6 diverges beyond roughly n = 7,000. Scaling by 2000 / n keeps every size on the
    tutorial's trajectory (at n = 2000 it is exactly 1e-6).
    """
    return TUTORIAL_LEARNING_RATE * TUTORIAL_SIZE / n


@dataclass(frozen=True)
class Problem:
    """One instance of the workload: what to fit and for how long."""

    n: int = TUTORIAL_SIZE
    iterations: int = 2000
    dtype: str = "float64"
    learning_rate: float | None = None
    """``None`` means :func:`default_learning_rate` of ``n``."""
    seed: int = 0
    log_interval: int = 100

    def __post_init__(self) -> None:
        if self.n < 4:
            raise ValueError(f"n must be at least 4 (four coefficients), got {self.n}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.learning_rate is not None and not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning rate must be a positive number, got {self.learning_rate}")
        if self.log_interval < 1:
            raise ValueError(f"log interval must be at least 1, got {self.log_interval}")

    @property
    def lr(self) -> float:
        """The learning rate in use."""
        return default_learning_rate(self.n) if self.learning_rate is None else self.learning_rate

    def is_logged(self, t: int) -> bool:
        """Whether the tutorial prints the loss of iteration ``t`` (t % 100 == 99)."""
        return t % self.log_interval == self.log_interval - 1

    @property
    def logged_iterations(self) -> list[int]:
        """The iterations whose loss the fit returns, in order."""
        return list(range(self.log_interval - 1, self.iterations, self.log_interval))

    def initial_weights(self) -> np.ndarray:
        """a, b, c, d drawn in float64 from ``default_rng(seed)``, then cast to the problem's dtype (another
        ``seed`` gives another start, as each timed repeat takes: ``replace(problem, seed=...)``)."""
        return np.random.default_rng(self.seed).standard_normal(4).astype(self.dtype)

    def x_and_y(self) -> tuple[np.ndarray, np.ndarray]:
        """x = linspace(-pi, pi, n) and y = sin(x), on the host, in the problem's dtype."""
        x = np.linspace(-math.pi, math.pi, self.n, dtype=self.dtype)
        return x, np.sin(x)

    def x_and_y_block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Elements ``start:stop`` of :meth:`x_and_y`, bit for bit, built without the rest (see
        :func:`linspace_block`): what one of the devices of a distributed fit holds."""
        x = linspace_block(self.n, start, stop, self.dtype)
        return x, np.sin(x)


def linspace_block(n: int, start: int, stop: int, dtype: DTypeLike = "float64") -> np.ndarray:
    """``np.linspace(-pi, pi, n, dtype=dtype)[start:stop]``, bit for bit, in memory for ``stop - start`` only.

    NumPy's linspace computes ``arange(n) * step + start`` in float64 (``step = (stop - start) / (n - 1)``), sets
    the last point to ``stop`` exactly, then casts; the same formula on a range of indices gives that range."""
    step = (math.pi - -math.pi) / (n - 1)
    x = np.arange(start, stop, dtype=np.float64) * step + -math.pi
    if stop == n and stop > start:
        x[-1] = math.pi
    return x.astype(dtype, copy=False)


def block_bounds(n: int, world: int, index: int) -> tuple[int, int]:
    """The ``start, stop`` of block ``index`` of ``world`` contiguous blocks of ``range(n)``: the first
    ``n % world`` blocks hold one element more, so the blocks differ in size by one at most."""
    size, extra = divmod(n, world)
    start = index * size + min(index, extra)
    return start, start + size + (index < extra)


@dataclass(frozen=True)
class FitResult:
    """What a fit returns, as host floats.

    ``final_loss`` is the loss of the last iteration (computed, as in the tutorial, before that
    iteration's update); ``weights`` are a, b, c, d after the last update.
    """

    weights: tuple[float, float, float, float]
    final_loss: float
    logged_losses: list[float] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Where a declared fact holds: on ``device`` and in ``dtype`` (``None``: any), for ``n_from <= n < n_below``."""

    device: str | None = None
    dtype: str | None = None
    n_from: int = 0
    n_below: int | None = None

    def holds(self, device: str, dtype: str, n: int) -> bool:
        return (
            self.device in (None, device)
            and self.dtype in (None, dtype)
            and n >= self.n_from
            and (self.n_below is None or n < self.n_below)
        )


@dataclass(frozen=True)
class Form(Scope):
    """The code a variant runs within its scope, as a short name (``horner``, ``powers``, ``while-loop``, ...):
    one variant name may cover several codes (a compiled loop on the CPU, a CUDA graph on a GPU), and a row says
    which one ran."""

    name: str


@dataclass(frozen=True)
class Expected(Scope):
    """A disagreement with the exact reference that the backend predicts within its scope: why, and the largest
    relative error (of the weights and of the losses) it predicts. A row within ``at_most`` is an
    ``expected-mismatch``; beyond it, an ordinary ``mismatch``."""

    why: str
    at_most: float


@dataclass(frozen=True)
class Variant:
    """A way to run the fit: how gradients are computed, how the loop is compiled, how the arithmetic is written.

    ``grad``, ``mode`` and ``formulation`` name the variant (they alone decide equality); the other fields are
    its declaration, read by the planner, the worker, the rows and the tests instead of ``if``s on the names.
    """

    grad: str
    mode: str
    formulation: str = "tutorial"
    devices: tuple[str, ...] = field(default=("cpu",), compare=False)
    """The devices on which the variant exists at all (whether one is present here is a machine fact)."""
    forms: tuple[Form, ...] = field(default=(), compare=False)
    """Which code runs where; the first form whose scope holds names it (none declared: the formulation)."""
    expected: tuple[Expected, ...] = field(default=(), compare=False)
    """Where the variant is expected to miss the reference, why, and by how much at most."""
    compiler: str | None = field(default=None, compare=False)
    """What compiles the variant's code (``torch.compile``, ``XLA``, ``Numba``), or ``None`` when it runs op by op."""
    distributed: bool = field(default=False, compare=False)
    """Whether the variant also runs across ``world`` devices (:meth:`Backend.prepare_shard`): each device holds
    a contiguous block of x and y, and the five local sums (loss and four gradient sums) are all-reduced once per
    iteration before the same update everywhere. Reducing the moments once and iterating on 4x4 matrices would
    also pass the reference, but is a different benchmark: not allowed."""

    def __str__(self) -> str:
        return f"{self.grad}/{self.mode}" + ("" if self.formulation == "tutorial" else f" {self.formulation}")

    def form(self, device: str, dtype: str, n: int) -> str:
        """The name of the code this variant runs on ``device`` in ``dtype`` at size ``n``."""
        return next((f.name for f in self.forms if f.holds(device, dtype, n)), self.formulation)

    def expectation(self, device: str, dtype: str, n: int) -> Expected | None:
        """The predicted disagreement with the reference on ``device`` in ``dtype`` at ``n``, or ``None``."""
        return next((e for e in self.expected if e.holds(device, dtype, n)), None)


class Fit:
    """A prepared fit: :meth:`reset` (not timed) chooses the initial weights, each call (timed) runs the fit.

    A backend builds it from ``run`` (the timed work, given what ``place`` made of the weights: device arrays,
    or nothing when ``place`` copies them into a static buffer of the fit), ``place`` and ``clear`` (fills the
    fit's output buffers with NaN; none when the fit allocates its outputs afresh every call). ``run`` must not
    change what ``place`` returned, so that calls without a reset in between repeat the same fit. It starts
    from ``weights``, the problem's initial weights.
    """

    def __init__(
        self,
        run: Callable[[Any], FitResult],
        weights: np.ndarray,
        place: Callable[[np.ndarray], Any] = np.copy,
        clear: Callable[[], None] | None = None,
    ) -> None:
        self._run, self._place, self._clear = run, place, clear
        self.reset(weights)

    def reset(self, weights: np.ndarray) -> None:
        """Start the next call from ``weights`` (a, b, c, d in the problem's dtype); clear the outputs to NaN."""
        if self._clear is not None:
            self._clear()
        self._start = self._place(weights)

    def __call__(self) -> FitResult:
        """Run every iteration from the weights of the last reset; end synchronised; return host values."""
        return self._run(self._start)


DeviceTimer = Callable[[], Callable[[], float]]
"""A device's own clock (CUDA events): calling it records a start mark on the device and returns ``stop``;
``stop()`` records the end mark, waits for it and returns the device seconds between the two marks."""


def cuda_event_timer(new_event: Callable[[], Any], elapsed_ms: Callable[[Any, Any], float]) -> DeviceTimer:
    """A :data:`DeviceTimer` from a framework's CUDA events: ``new_event()`` makes a timing event (with
    ``record()`` and ``synchronize()``), ``elapsed_ms(begin, end)`` reads the milliseconds between two."""

    def start() -> Callable[[], float]:
        begin, end = new_event(), new_event()
        begin.record()

        def stop() -> float:
            end.record()
            end.synchronize()
            return elapsed_ms(begin, end) / 1e3

        return stop

    return start


@dataclass(frozen=True)
class Shard:
    """Where one process sits in a fit spread over ``world`` devices: process ``process`` of ``processes``, which
    meet at ``coordinator`` (``host:port``), each driving ``world // processes`` devices; process ``p``'s devices
    hold the blocks ``p * local .. (p + 1) * local - 1`` of :func:`block_bounds`."""

    world: int
    process: int = 0
    processes: int = 1
    coordinator: str = ""

    @property
    def local_devices(self) -> int:
        return self.world // self.processes


class BackendUnavailable(RuntimeError):
    """Raised by a backend's ``__init__`` when its framework cannot be used here; the message is the reason."""


def require(
    module: str,
    framework: str,
    errors: tuple[type[Exception], ...] = (ImportError,),
    absent: str = "is not installed",
    hint: str = "",
) -> ModuleType:
    """``import module`` for a backend's ``__init__``, or :class:`BackendUnavailable`: "``framework`` ``absent``
    (the error)``hint``" (``errors``: what counts as absent, e.g. CuPy's ``OSError`` when CUDA cannot load)."""
    try:
        return importlib.import_module(module)
    except errors as error:
        raise BackendUnavailable(f"{framework} {absent} ({error}){hint}") from error


class Backend(ABC):
    """One framework's implementation of the fit."""

    name: ClassVar[str]
    """Short name used on the command line and in every CSV (``numpy``, ``torch``, ...)."""
    variants: ClassVar[tuple[Variant, ...]]
    """Every (grad, mode, formulation) this backend implements on some device."""

    @abstractmethod
    def version(self) -> str:
        """The framework's version string."""

    @classmethod
    def declaration(cls, variant: Variant) -> Variant:
        """The declared ``variant`` (with its devices, forms, expectations), found by its name; ``variant`` itself
        when the backend does not implement it."""
        return next((v for v in cls.variants if v == variant), variant)

    @classmethod
    def absent_reason(cls, variant: Variant, device: str) -> str | None:
        """Why ``variant`` on ``device`` does not exist in this backend on any machine, or ``None`` when it does."""
        declared = next((v for v in cls.variants if v == variant), None)
        if declared is None:
            return f"{cls.name} does not implement {variant}"
        if device not in declared.devices:
            return f"{cls.name} {variant} exists on {' and '.join(declared.devices)} only"
        return None

    def devices(self) -> tuple[str, ...]:
        """The devices this backend can use on this machine."""
        return ("cpu",)

    def unavailable_reason(self, variant: Variant, device: str) -> str | None:
        """Why ``variant``, which exists on ``device`` (see :meth:`absent_reason`), cannot run there on this
        machine (no package, no GPU, no compiler), or ``None`` when it can."""
        if device not in self.devices():
            return f"{self.name} has no {device} device here"
        return None

    def describe(self) -> dict[str, str]:
        """Facts about the framework worth recording beside its numbers (threads, BLAS, device names)."""
        return {}

    def free_memory(self, device: str) -> int | None:
        """Bytes free on ``device`` as the framework sees them, or ``None`` when it cannot tell."""
        return None

    def device_timer(self, device: str) -> DeviceTimer | None:
        """The device's own clock for timing a fit (CUDA events), or ``None`` where there is none."""
        return None

    @abstractmethod
    def prepare(self, problem: Problem, variant: Variant, device: str) -> Fit:
        """Build x, y and the initial weights on ``device`` and return the fit to time."""

    # A fit across devices (variants declared ``distributed``). The caller starts the processes, each with
    # :meth:`local_devices_environment` in its environment before the framework is imported.

    one_process_per_device: ClassVar[bool] = True
    """Whether a fit across ``world`` devices runs one process per device (torch.distributed's ranks) rather than
    one process driving several devices (JAX)."""

    @classmethod
    def local_devices_environment(cls, device: str, count: int) -> dict[str, str]:
        """Environment variables that give a process ``count`` devices of ``device`` (set before the import)."""
        return {}

    def shard_unavailable_reason(self, problem: Problem, variant: Variant, device: str, world: int) -> str | None:
        """Why ``variant`` cannot run across ``world`` devices here (too few devices, an n the blocks cannot
        split), or ``None`` when it can."""
        return f"{self.name} does not run across devices"

    def join(self, shard: Shard, device: str, timeout_s: float) -> None:
        """Meet the other processes of ``shard`` (a process group); collectives then wait ``timeout_s`` at most."""
        raise NotImplementedError

    def prepare_shard(self, problem: Problem, variant: Variant, device: str, shard: Shard) -> Fit:
        """This process's part of ``variant``'s fit across ``shard.world`` devices: its blocks of x and y
        (:meth:`Problem.x_and_y_block`) on its devices, one all-reduce of the five local sums per iteration; every
        process's fit returns the same result."""
        raise NotImplementedError

    def barrier(self, shard: Shard) -> None:  # noqa: B027 (a single process has nothing to wait for)
        """Wait until every process of ``shard`` has reached this point."""

    def collective_seconds(self, shard: Shard, device: str, dtype: str, rounds: int) -> float:
        """Seconds per all-reduce of five ``dtype`` numbers across ``shard``'s devices: ``rounds`` of them in a
        row, each depending on the one before, timed in this process."""
        raise NotImplementedError


def unstack_result(values: Sequence[float]) -> FitResult:
    """The :class:`FitResult` of one flat read-back: a, b, c, d, the final loss, then the logged losses."""
    return make_result(values[:4], values[4], values[5:])


def make_result(weights, final_loss, logged_losses) -> FitResult:
    """A :class:`FitResult` from framework scalars (anything ``float()`` accepts)."""
    # Four weights by the contract, a count the types cannot check; one returning another count is passed on
    # as it is, for the harness's check of the reply's shape to report.
    four = cast(tuple[float, float, float, float], tuple(float(w) for w in weights))
    return FitResult(
        weights=four,
        final_loss=float(final_loss),
        logged_losses=[float(v) for v in logged_losses],
    )
