"""What a sweep runs: configurations, presets, and the grid they expand to."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from backends.contract import DEVICES, DTYPES, FORMULATIONS, GRADS, MODES, Problem, Variant

CODE_COLUMNS = ["backend", "grad", "mode", "formulation"]
"""Which code: the backend and its variant's name (one line of a plot, one framework's variant in a table)."""
PLACE_COLUMNS = ["device", "dtype"]
"""Where and in what precision the code runs (with :data:`CODE_COLUMNS`: what one warm-up and one scaling
fit cover, since each of these changes the compiled code)."""
POINT_COLUMNS = ["n", "iterations"]
"""The size of the problem: one point of a preset's grid."""
SIZE_COLUMNS = [*POINT_COLUMNS, "world"]
"""The size of the problem, and how many devices it is spread over (1: one device)."""
KEY_COLUMNS = [*CODE_COLUMNS, *PLACE_COLUMNS, *SIZE_COLUMNS]
"""What identifies a configuration within a run (to resume it, to compare runs): the one definition, read by
:attr:`Configuration.key`, every CSV's columns and every grouping of rows. Each is a field of
:class:`Configuration`."""
VARIANT_COLUMNS = [*CODE_COLUMNS, *PLACE_COLUMNS]
"""The key without the size: a variant on one device in one dtype, across sizes."""


@dataclass(frozen=True)
class Configuration:
    """One timed point of a sweep: a backend's variant on a device, for one problem."""

    backend: str
    grad: str
    mode: str
    device: str
    dtype: str
    n: int
    iterations: int
    learning_rate: float | None
    seed: int
    threads: int
    formulation: str = "tutorial"
    world: int = 1
    """Devices the fit is spread over (1: one device; more only for variants declared ``distributed``)."""

    @property
    def variant(self) -> Variant:
        """The variant by name only; its declaration is the backend's (``Backend.declaration``)."""
        return Variant(self.grad, self.mode, self.formulation)

    @property
    def problem(self) -> Problem:
        return Problem(self.n, self.iterations, self.dtype, self.learning_rate, self.seed)

    @property
    def key(self) -> tuple:
        """The values of :data:`KEY_COLUMNS`, in their order."""
        return tuple(getattr(self, column) for column in KEY_COLUMNS)

    @property
    def variant_key(self) -> tuple:
        """The values of :data:`VARIANT_COLUMNS`: everything that changes the compiled code (the warm-up key)."""
        return tuple(getattr(self, column) for column in VARIANT_COLUMNS)

    def label(self) -> str:
        world = f" world={self.world}" if self.world > 1 else ""
        return f"{self.backend} {self.variant} {self.device} {self.dtype} n={self.n} it={self.iterations}{world}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    """Defaults for a sweep. ``points`` pairs sizes with iteration counts; every configuration is timed in
    ``processes`` fresh worker processes, ``repeats`` timed fits in each; ``budget_s`` caps a process's timed
    repeats, never below ``min_repeats``; ``fit_budget_s`` (None: no cap) shortens the loop of a configuration
    whose one fit would take longer than it, or than ``budget_s / min_repeats``."""

    points: tuple[tuple[int, int], ...]
    repeats: int
    budget_s: float
    timeout_s: float
    fit_budget_s: float | None = None
    min_repeats: int = 3
    processes: int = 2


QUICK_POINTS = ((2_000, 2_000), (10_000, 200), (100_000, 200), (1_000_000, 20))
FULL_POINTS = (
    *((n, it) for n in (100, 1_000, 10_000, 100_000) for it in (200, 2_000)),
    *((1_000_000, 200), (1_000_000, 2_000), (10_000_000, 20), (10_000_000, 200)),
)
GPU_CHECK_POINTS = ((1_000, 100), (10_000, 100), (100_000, 100), (1_000_000, 50), (10_000_000, 10))

PRESETS = {
    # About 6 minutes on 2 cores from a fresh clone (setup included) with every variant of both formulations:
    # the tutorial's own point (2000 x 2000), 10^4 and 10^5 with 200 iterations, and 10^6 with 20, where
    # NumPy's x ** 3 alone costs tens of milliseconds per iteration; 2 processes x 4-5 repeats, so every
    # configuration has at least 8 samples (what ``compare`` needs for a verdict). The budgets (1 s a fit,
    # 1 s of repeats per process) shorten the loops of the variants whose every iteration costs milliseconds
    # of dispatch (JAX's un-jitted autodiff: 5-10 ms per iteration).
    "quick": Preset(QUICK_POINTS, repeats=5, budget_s=1.0, timeout_s=180.0, fit_budget_s=1.0, min_repeats=4),
    # 2 processes x 5-7 repeats. The per-fit budget (6 s: 30 s over the 5 repeats every configuration keeps)
    # bounds the largest points, where NumPy's tutorial loop takes over a second per iteration at 10^7; a fit
    # of one log interval (100 iterations) can exceed it, and the timeout leaves room for that.
    "full": Preset(FULL_POINTS, repeats=7, budget_s=30.0, timeout_s=1_800.0, fit_budget_s=30.0, min_repeats=5),
    # The GPU check (bench.gpu_check): 10^3 to 10^7 in one go on a lent GPU machine, within minutes; fewer
    # iterations at the top sizes, where the CPU's time per iteration is tens to hundreds of milliseconds.
    "gpu-check": Preset(
        GPU_CHECK_POINTS, repeats=3, budget_s=1.0, timeout_s=120.0, fit_budget_s=2.0, min_repeats=3, processes=1
    ),
}


@dataclass(frozen=True)
class Sweep:
    """Everything ``bench run`` was asked to do, validated."""

    backends: tuple[str, ...]
    grads: tuple[str, ...] = GRADS
    modes: tuple[str, ...] = MODES
    formulations: tuple[str, ...] = FORMULATIONS
    devices: tuple[str, ...] = DEVICES
    dtypes: tuple[str, ...] = DTYPES
    points: tuple[tuple[int, int], ...] = PRESETS["quick"].points
    repeats: int = 5
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    seed: int = 0
    learning_rate: float | None = None
    budget_s: float = PRESETS["quick"].budget_s
    timeout_s: float = PRESETS["quick"].timeout_s
    fit_budget_s: float | None = PRESETS["quick"].fit_budget_s
    min_repeats: int = 1
    """No time budget cuts a process's timed repeats below this (nor below ``repeats``)."""
    processes: int = 1
    """Fresh worker processes (rounds) each configuration is timed in."""
    worlds: tuple[int, ...] = (1,)
    """Devices to spread each fit over; beyond 1 only the variants declared ``distributed`` run."""
    oversubscribe: bool = False
    """Run rank processes beyond the usable cores (skipped otherwise: they would measure time-sharing)."""

    def configurations(self, variants: dict[str, tuple[Variant, ...]]) -> list[Configuration]:
        """The grid, in run order: grouped by (backend, device, world), then dtype, variant, size.

        ``variants`` maps each backend to the variants it declares; combinations that do not exist (NumPy has
        no autodiff; a variant on a device it is not declared for, such as NumPy on a GPU; a variant not declared
        ``distributed`` at a world above 1) are not configurations and are left out. Whether a device is present
        here is the worker's question.
        """
        return [
            Configuration(
                backend,
                v.grad,
                v.mode,
                device,
                dtype,
                n,
                iterations,
                self.learning_rate,
                self.seed,
                self.threads,
                formulation=v.formulation,
                world=world,
            )
            for backend in self.backends
            for device in self.devices
            for world in self.worlds
            for dtype in self.dtypes
            for v in variants[backend]
            if device in v.devices
            and v.grad in self.grads
            and v.mode in self.modes
            and v.formulation in self.formulations
            and (world == 1 or v.distributed)
            for n, iterations in self.points
        ]
