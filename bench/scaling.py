"""The scaling model: time per iteration = overhead + n * per-element cost, and where variants cross.

The fit. For one variant (backend, grad, mode, formulation, device, dtype) and one of its forms (the code it
runs: a variant that switches code at some n, such as JAX's float32 tuned step, gets one fit per form, never one
line across the switch), every ``ok`` configuration is a point (n, median microseconds per iteration); a size
timed with several iteration counts gives several points.
The model ``t(n) = overhead + n * per_element`` is fitted by least squares on *relative* residuals,
``sum(((overhead + n * per_element) - t) / t) ** 2``, which is ordinary weighted least squares with weights
``1 / t**2``, solved in closed form. Why this and not the alternatives:

- Plain least squares on the times lets the largest size decide everything (its time is 1,000 times the
  smallest's), so the overhead comes out as noise, often negative. Dropping the small sizes, as "least
  squares on the larger sizes" does, throws away exactly the points that measure the overhead.
- Least squares in log space gives every size the same say too, but is non-linear (iterative, starting
  values, no exact answer); relative residuals give the same weighting to first order, stay linear, and
  recover an exact overhead and per-element cost from exact data.
- Timing noise is multiplicative (a busy core slows a fit by a fraction, not by microseconds), which is
  what relative residuals assume. Each point is already the median of the repeats, so a stray slow repeat
  has no pull; no further robust loss is applied, because a size that misfits (a cache boundary, a
  switch to multi-threading) is a real effect the reader should see in the reported residuals, not one to
  be down-weighted.

Both parameters are kept non-negative: if the unconstrained fit gives a negative one, it is fixed at zero
and the other refitted alone. The fit's quality is the root mean square and the worst of the relative
residuals: "the model is within 3 % of every measured size" reads more directly than an R².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.config import CODE_COLUMNS, VARIANT_COLUMNS

FIT_COLUMNS = [*VARIANT_COLUMNS, "form"]
"""What one scaling fit covers: a variant on one device in one dtype, in one form."""


@dataclass(frozen=True)
class ScalingFit:
    """``us_per_iter(n) = overhead_us + n * per_element_ns / 1000``, fitted over ``n_min..n_max``."""

    overhead_us: float
    per_element_ns: float
    points: int
    n_min: int
    n_max: int
    rms_rel: float
    """Root mean square of (model - measured) / measured over the points."""
    worst_rel: float
    """Largest absolute relative residual."""

    def us_per_iter(self, n: float | np.ndarray) -> float | np.ndarray:
        """The model's microseconds per iteration at size ``n``."""
        return self.overhead_us + np.asarray(n, dtype=float) * self.per_element_ns / 1e3


def fit_scaling(n: np.ndarray, us: np.ndarray) -> ScalingFit:
    """Fit ``us = overhead + n * per_element`` by least squares on relative residuals (see module docstring).

    Needs at least two distinct sizes and positive times; raises ``ValueError`` otherwise.
    """
    n = np.asarray(n, dtype=float)
    us = np.asarray(us, dtype=float)
    if len(np.unique(n)) < 2:
        raise ValueError("a scaling fit needs at least two distinct sizes")
    if not (np.all(us > 0) and np.all(np.isfinite(us))):
        raise ValueError("a scaling fit needs positive, finite times")
    scale = n.max()  # per-element cost is fitted per `scale` elements, keeping the columns comparable
    design = np.column_stack([np.ones_like(n), n / scale]) / us[:, None]
    (overhead, per_scale), *_ = np.linalg.lstsq(design, np.ones_like(n), rcond=None)
    if overhead < 0:
        overhead, per_scale = 0.0, _one_parameter(design[:, 1])
    elif per_scale < 0:
        overhead, per_scale = _one_parameter(design[:, 0]), 0.0
    per_element_us = per_scale / scale
    relative = (overhead + n * per_element_us - us) / us
    return ScalingFit(
        overhead_us=float(overhead),
        per_element_ns=float(per_element_us * 1e3),
        points=len(n),
        n_min=int(n.min()),
        n_max=int(n.max()),
        rms_rel=float(np.sqrt(np.mean(relative**2))),
        worst_rel=float(np.abs(relative).max()),
    )


def _one_parameter(column: np.ndarray) -> float:
    """Least squares of ``column * p = 1`` (the other parameter fixed at zero)."""
    return float(column.sum() / (column**2).sum())


def fit_variants(summary: pd.DataFrame) -> dict[tuple, ScalingFit]:
    """A :class:`ScalingFit` per variant and form of the ``ok`` rows of ``summary``, keyed by :data:`FIT_COLUMNS`
    values; those measured at fewer than two sizes are left out."""
    ok = summary[(summary["status"] == "ok") & (summary["us_per_iter"] > 0)].fillna({"form": ""})
    fits = {}
    for key, rows in ok.groupby(FIT_COLUMNS, sort=True):
        if rows["n"].nunique() >= 2:
            fits[key] = fit_scaling(rows["n"].to_numpy(), rows["us_per_iter"].to_numpy())
    return fits


@dataclass(frozen=True)
class Crossover:
    """Where variant ``x`` is faster than variant ``y`` according to their fits.

    ``kind`` is ``always`` (at every n > 0), ``never``, ``above`` (for n > ``n``) or ``below`` (for n <
    ``n``). ``extrapolated`` is true when ``n`` lies outside the sizes both variants were measured at.
    """

    x: tuple
    y: tuple
    kind: str
    n: float | None
    measured: tuple[int, int]
    extrapolated: bool


def crossover(x_key: tuple, x: ScalingFit, y_key: tuple, y: ScalingFit) -> Crossover:
    """Solve ``x(n) = y(n)`` for the size from (or below) which ``x`` is faster than ``y``."""
    d_overhead = x.overhead_us - y.overhead_us
    d_per_element = x.per_element_ns - y.per_element_ns
    measured = (max(x.n_min, y.n_min), min(x.n_max, y.n_max))
    at = -d_overhead / d_per_element * 1e3 if d_per_element else None
    if at is None or at <= 0:
        # no crossing at a positive size: one sign everywhere (the sign of the per-element gap wins at
        # large n; with equal per-element costs, the overhead gap decides)
        faster = d_per_element < 0 if d_per_element else d_overhead < 0
        return Crossover(x_key, y_key, "always" if faster else "never", None, measured, False)
    kind = "above" if d_per_element < 0 else "below"
    return Crossover(x_key, y_key, kind, at, measured, not measured[0] <= at <= measured[1])


def crossovers(fits: dict[tuple, ScalingFit], baseline: tuple[str, ...]) -> list[Crossover]:
    """The crossovers worth reading: every variant against the ``baseline`` (backend, grad, mode, formulation)
    on the CPU in the same dtype, and every GPU variant against the same variant on the CPU (each in every form
    it was fitted in)."""
    by_variant: dict[tuple, list[tuple]] = {}
    for key in fits:
        by_variant.setdefault(key[: len(VARIANT_COLUMNS)], []).append(key)
    found = []
    for key, fit in fits.items():
        where = dict(zip(FIT_COLUMNS, key, strict=True))
        base = variant_of({**where, **dict(zip(CODE_COLUMNS, baseline, strict=True)), "device": "cpu"})
        cpu_twin = variant_of({**where, "device": "cpu"})
        against = [b for b in by_variant.get(base, []) if b != key]
        if where["device"] != "cpu":
            against += by_variant.get(cpu_twin, [])
        found += [crossover(key, fit, other, fits[other]) for other in against]
    return found


def variant_of(values: dict) -> tuple:
    """The values of :data:`VARIANT_COLUMNS`, in order, from a dict holding them."""
    return tuple(values[column] for column in VARIANT_COLUMNS)
