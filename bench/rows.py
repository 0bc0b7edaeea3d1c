"""A configuration's rows: the worker processes' replies checked against the exact reference and summarised.

Every timed repeat is checked against the reference trajectory from its own initial weights (the reply's
``seeds``), so a repeat that did no work and handed back an earlier result disagrees with its reference.
The configuration's status is its worst repeat's (``diverged``, then ``mismatch``, then ``expected-mismatch``: a
disagreement within what the backend declares, see :func:`reference_check`); each raw row keeps its own
repeat's. ``check_power`` says how far the check can see: the error one missing iteration would show, over the
tolerance (see :func:`check_power`); under 1 the check could not tell such a fit from a correct one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import numpy as np

from backends import RegistryError, backend_class
from backends.contract import FitResult, Variant, default_learning_rate
from backends.reference import loss_relative_error, one_iteration_short, reference_fits, relative_error
from bench import results, roofline
from bench.config import Configuration
from bench.protocol import Reply
from bench.stats import summarise


def declared(config: Configuration) -> Variant:
    """The configuration's variant as its backend declares it (by name only, for a backend not known here)."""
    try:
        return backend_class(config.backend).declaration(config.variant)
    except (KeyError, RegistryError):
        return config.variant


def config_columns(
    config: Configuration, run_id: str, host: str, status: str, reason: str, version: str, machine: str | None = None
) -> dict:
    """The columns every row of raw.csv and summary.csv carries; ``form`` is the code the variant declares for
    the configuration's device, dtype and size (what ran, for a row that ran)."""
    return {
        "run_id": run_id,
        **dict(zip(results.KEY_COLUMNS, config.key, strict=True)),
        "form": declared(config).form(config.device, config.dtype, config.n),
        "learning_rate": config.problem.lr,
        "seed": config.seed,
        "threads": config.threads,
        "status": status,
        "reason": reason,
        "backend_version": version,
        "host": host,
        "machine": machine or host,
    }


def first_divergence(config: Configuration, result: FitResult) -> str | None:
    """The reason text for a loss that became NaN or infinite (with the iteration), or None."""
    problem = config.problem
    if config.learning_rate is None:
        rate = f"learning rate {problem.lr:g}, the default for n={config.n}"
    else:
        rate = f"learning rate {problem.lr:g}; the default for n={config.n} is {default_learning_rate(config.n):g}"
    for t, loss in zip(problem.logged_iterations, result.logged_losses, strict=True):
        if not math.isfinite(loss):
            return (
                f"loss is {loss} at iteration {t}, the first non-finite of the losses logged every"
                f" {problem.log_interval} iterations ({rate})"
            )
    if not math.isfinite(result.final_loss) or not all(map(math.isfinite, result.weights)):
        return f"loss or weights non-finite at the last iteration, {config.iterations - 1} ({rate})"
    return None


def malformed(config: Configuration, reply: Reply) -> str | None:
    """Why the results in a worker's ``ran`` reply cannot be checked, or None when they have the expected shape."""
    logged = len(config.problem.logged_iterations)
    counts = {len(reply.seeds), len(reply.weights), len(reply.final_losses), len(reply.logged_losses)}
    if counts != {len(reply.samples_s)}:
        return f"the worker returned {len(reply.weights)} results for {len(reply.samples_s)} timed repeats"
    for weights, losses in zip(reply.weights, reply.logged_losses, strict=True):
        if len(weights) != 4 or len(losses) != logged:
            return f"the backend returned {len(weights)} weights and {len(losses)} logged losses, not 4 and {logged}"
    return None


def reference_check(config: Configuration, result: FitResult, reference: FitResult) -> tuple[str, str, float, float]:
    """Status (``ok``, ``diverged``, ``expected-mismatch`` or ``mismatch``), reason, ``ref_rel_err`` and
    ``loss_rel_err`` of one fit. A disagreement is ``expected-mismatch`` where the variant declares one (for the
    configuration's device, dtype and n) and both errors are within its declared bound."""
    if divergence := first_divergence(config, result):
        return "diverged", divergence, math.nan, math.nan
    rel_err = relative_error(result, reference)
    loss_err = loss_relative_error(result, reference)
    tolerance = results.TOLERANCE[config.dtype]
    if rel_err <= tolerance and loss_err <= tolerance:
        return "ok", "", rel_err, loss_err
    reason = (
        f"disagrees with the exact reference: weights {rel_err:.2e}, losses {loss_err:.2e} (tolerance {tolerance:g})"
    )
    expected = declared(config).expectation(config.device, config.dtype, config.n)
    if expected is None:
        return "mismatch", reason, rel_err, loss_err
    if max(rel_err, loss_err) <= expected.at_most:
        return (
            "expected-mismatch",
            f"{reason}, as declared: {expected.why} (at most {expected.at_most:g})",
            rel_err,
            loss_err,
        )
    return "mismatch", f"{reason}, beyond the declared {expected.at_most:g} ({expected.why})", rel_err, loss_err


def check_power(config: Configuration) -> float:
    """How far one missing iteration would move the fit's result, in units of the tolerance.

    The larger of the relative error in the weights and in the losses that a fit one iteration short
    (:func:`backends.reference.one_iteration_short`) shows against the reference. Under 1 the check
    cannot tell such a fit from a correct one: gradient descent has converged so far that one step moves
    nothing by more than the tolerance.
    """
    reference, short = one_iteration_short(config.problem)
    error = max(relative_error(short, reference), loss_relative_error(short, reference))
    return error / results.TOLERANCE[config.dtype]


def roofline_columns(config: Configuration, us_per_iter: float, probe: dict | None) -> dict[str, float]:
    """``floor_us`` (from the machine probe; NaN without one, or off the CPU), ``x_floor`` and ``gb_per_s``."""
    itemsize = np.dtype(config.dtype).itemsize
    floor = math.nan
    if config.device == "cpu":
        floor = roofline.machine_floor_us(probe, config.n, config.dtype, itemsize, config.threads)
    return {
        "floor_us": floor,
        "x_floor": us_per_iter / floor,
        "gb_per_s": roofline.achieved_gb_per_s(config.n, itemsize, us_per_iter),
    }


def repeat_result(reply: Reply, i: int) -> FitResult:
    """What timed repeat ``i`` of ``reply`` returned, as a :class:`FitResult` (of a reply :func:`malformed`
    passed: four weights)."""
    a, b, c, d = reply.weights[i]
    return FitResult((a, b, c, d), reply.final_losses[i], list(reply.logged_losses[i]))


def rows_for(
    config: Configuration,
    replies: list[Reply],
    run_id: str,
    host: str,
    probe: dict | None = None,
    machine: str | None = None,
) -> dict[str, list[dict]]:
    """The raw, summary and loss rows of one configuration from the replies of its worker processes (in
    order), every repeat checked against its own reference, with the machine's floor (``probe``: the machine
    probe's record, see :mod:`bench.probe`).

    A process that did not run the configuration (failed, timed out, ran out of memory, skipped) gives the
    configuration its status and reason, and no timings.
    """
    version = next((r.backend_version for r in replies if r.backend_version), "")
    # The configuration as timed: the per-fit budget may have shortened its loop (the same in every process).
    timed = replace(config, iterations=replies[0].iterations_timed) if replies[0].status == "ran" else config
    replies = [
        replace(r, status="failed", reason=problem) if r.status == "ran" and (problem := malformed(timed, r)) else r
        for r in replies
    ]
    broken = next(((p, r) for p, r in enumerate(replies) if r.status != "ran"), None)
    if broken is not None:
        p, reply = broken
        where = f"process {p + 1} of {len(replies)}: " if p > 0 else ""
        base = config_columns(config, run_id, host, reply.status, where + reply.reason, version, machine)
        return {"summary": [base], "raw": [], "losses": []}

    repeats = []  # (process, repeat, seed, seconds, result, device seconds) of every timed repeat
    for p, reply in enumerate(replies):
        device_s = reply.device_samples_s or (math.nan,) * len(reply.samples_s)
        for i, (seed, seconds) in enumerate(zip(reply.seeds, reply.samples_s, strict=True)):
            repeats.append((p, i, seed, seconds, repeat_result(reply, i), device_s[i]))
    starts = [replace(timed.problem, seed=seed).initial_weights() for _, _, seed, *_ in repeats]
    references = reference_fits(timed.problem, starts)
    checks = [reference_check(timed, r[4], ref) for r, ref in zip(repeats, references, strict=True)]
    status, reason = "ok", ""
    for worst in ("diverged", "mismatch", "expected-mismatch"):
        bad = [(r, c) for r, c in zip(repeats, checks, strict=True) if c[0] == worst]
        if bad:
            (p, i, seed, *_), check = bad[0]
            status = worst
            reason = f"{check[1]} (repeat {i + 1} of process {p + 1}, from seed {seed}; {len(bad)} of {len(repeats)})"
            break
    base = config_columns(config, run_id, host, status, reason, version, machine)
    first = replies[0]
    stats = summarise([r[3] for r in repeats], timed.iterations, [r[0] for r in repeats])
    result, reference = repeats[0][4], references[0]  # repeat 1 of process 1, from the configuration's own seed
    a, b, c, d = result.weights
    device_samples = [r[5] for r in repeats if not math.isnan(r[5])]
    power = check_power(timed)
    notes = list(dict.fromkeys(note for r in replies if (note := r.note)))
    if power < 1:
        notes.append(
            f"the check cannot see a missing iteration here (check_power {power:.2g}: one iteration moves the"
            " weights and losses by less than the tolerance)"
        )
    errors = [(c[2], c[3]) for c in checks]
    summary = {
        **base,
        "iterations_timed": timed.iterations,
        **stats,
        "gpu_median_s": statistics.median(device_samples) if device_samples else math.nan,
        "first_call_s": first.first_call_s,
        "compile_s": first.first_call_s - stats["median_s"],
        "final_loss": result.final_loss,
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "ref_rel_err": float(np.max([e[0] for e in errors])),
        "ref_ok": status == "ok",
        "loss_rel_err": float(np.max([e[1] for e in errors])),
        "check_power": power,
        "threads_used": first.threads_used,
        "note": "; ".join(notes),
        **roofline_columns(config, stats["us_per_iter"], probe),
        "allreduce_us": float(np.median([r.allreduce_us for r in replies])),
        "local_us": float(np.median([r.local_us for r in replies])),
    }
    raw = [
        {
            **config_columns(config, run_id, host, check[0], check[1], version, machine),
            "process": p,
            "repeat": i,
            "start_seed": seed,
            "iterations_timed": timed.iterations,
            "seconds": seconds,
            "gpu_seconds": gpu_seconds,
        }
        for (p, i, seed, seconds, _, gpu_seconds), check in zip(repeats, checks, strict=True)
    ]
    key = {k: summary[k] for k in ("run_id", "machine", *results.KEY_COLUMNS)}
    losses = [
        {**key, "iteration": t, "loss": got, "reference_loss": want}
        for t, got, want in zip(
            timed.problem.logged_iterations, result.logged_losses, reference.logged_losses, strict=True
        )
    ]
    return {"summary": [summary], "raw": raw, "losses": losses}
