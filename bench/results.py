"""The run folder and its CSVs: columns, tolerances, appending rows as they finish, reading them back.

Every finished configuration is appended (with pandas) and the file closed at once, so an interrupted
sweep leaves valid CSVs holding every finished configuration.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from bench.config import KEY_COLUMNS

SCHEMA_VERSION = 3
"""The version of the run folder's layout: its files and every column below. Written into environment.json and
sweep.json as ``schema_version``; readers refuse a folder of another version (:func:`check_schema`). A folder
written before versions existed counts as version 1. Whoever changes a column list changes it here and says so
in their commit; the version moves once per landing that changes the layout, and ``results/example`` is
regenerated then."""

STATUSES = ("ok", "skipped", "expected-mismatch", "failed", "mismatch", "timeout", "oom", "diverged")
"""``ok``: timed and agrees with the reference. ``skipped``: not run here (reason says why).
``expected-mismatch``: disagrees with the reference where and by no more than its backend declares
(``backends.contract.Expected``; the reason says why). ``failed``: crashed or raised. ``mismatch``: ran, but
disagrees with the reference unexpectedly (or beyond the declared bound). ``timeout``: killed after
``--timeout`` seconds. ``oom``: ran out of memory. ``diverged``: the loss became NaN or infinite.
``docs/statuses.md`` says what a user sees of each, and ``bench.exitcodes`` which leave the exit status 0."""

CONFIG_COLUMNS = [
    "run_id",
    *KEY_COLUMNS,
    "form",
    "learning_rate",
    "seed",
    "threads",
    "status",
    "reason",
    "backend_version",
    "host",
    "machine",
]
"""``host``: the host name the row was measured on; ``machine``: the name the user gave that machine
(``--machine``, default the host name), the one fleets compare by (see bench/fleet.py)."""
RAW_COLUMNS = [*CONFIG_COLUMNS, "process", "repeat", "start_seed", "iterations_timed", "seconds", "gpu_seconds"]
"""One row per timed repeat: ``process`` (0, 1, ...: the worker process, i.e. the round, that timed it), ``repeat``
(its index within that process), ``start_seed`` (the seed of its initial weights; every repeat starts from its
own), and its own reference check in ``status`` and ``reason``."""
SUMMARY_COLUMNS = [
    *CONFIG_COLUMNS,
    "repeats",
    "processes",
    "iterations_timed",
    "median_s",
    "gpu_median_s",
    "min_s",
    "mean_s",
    "std_s",
    "iqr_s",
    "cv",
    "process_cv",
    "us_per_iter",
    "first_call_s",
    "compile_s",
    "final_loss",
    "a",
    "b",
    "c",
    "d",
    "ref_rel_err",
    "ref_ok",
    "loss_rel_err",
    "check_power",
    "threads_used",
    "note",
    "floor_us",
    "x_floor",
    "gb_per_s",
    "allreduce_us",
    "local_us",
]
"""``form`` (every row): the code the variant ran, as it declares it for the row's device, dtype and size
(``horner``, ``powers``, ``while-loop``, ``cuda-graph``, ...; see ``backends.contract.Form``).
``repeats``: timed repeats in all, over ``processes`` worker processes. ``cv``: the spread within a process,
``process_cv``: the spread of the per-process medians (both NaN where there are too few to spread; see
:func:`bench.stats.summarise`). ``ref_rel_err``, ``loss_rel_err``: the worst repeat's. ``check_power``: the
error one missing iteration would show, over the tolerance (see :func:`bench.rows.check_power`); under 1 the
check could not see a missing iteration, and the note says so.
``gpu_seconds`` (raw) and ``gpu_median_s`` (summary): the same timed repeats on the GPU's own clock
(CUDA events recorded just before and just after each fit), for backends that have one (PyTorch, CuPy); empty
elsewhere. ``seconds`` and ``median_s`` (the host clock) stay the main figures.

``world``: the devices the fit was spread over (1: one device). A fit across devices also gives
``allreduce_us`` (one all-reduce of the five sums across the ``world`` devices, timed alone, in us) and
``local_us`` (the same variant on one device at n / world, us per iteration): ``us_per_iter`` is about their
sum. Both are empty at world 1."""
LOSS_COLUMNS = ["run_id", "machine", *KEY_COLUMNS, "iteration", "loss", "reference_loss"]
"""``KEY_COLUMNS`` (what identifies a configuration within a run) is defined once, in :mod:`bench.config`."""

TOLERANCE = {"float64": 1e-10, "float32": 2e-5}
"""Largest ``ref_rel_err`` (and relative loss error) that counts as agreeing with the exact reference.

Measured (tests/test_backends.py, every backend and variant, n from 777 to 10^7, up to 2000 iterations):
float64 agrees to about 2e-16 in the weights and 1e-15 in the losses, so 1e-10 leaves room for other
summation orders while catching any real error. float32 agrees to at most 5e-7: x = linspace(...) itself is
rounded to float32 (relative 6e-8), each gradient sum adds rounding of order 1e-7, and gradient descent
damps rather than amplifies these. 2e-5 is 40 times the worst measured. A wrong gradient misses by orders of
magnitude more; a missed iteration moves the result by one step of gradient descent, which shrinks as the fit
converges (exactly, at n = 2000: 3.9e-5 in the weights after 2000 iterations, 7.8e-8 after 5000, 2.5e-12 after
10^4), so whether the check sees one depends on the configuration: ``check_power`` in summary.csv says.
"""

ADDED_COLUMNS = {"world": 1, "allreduce_us": float("nan"), "local_us": float("nan")}
"""Columns added after runs were first written, and their value in a run (or a row written by a tool) that
predates them or leaves them blank: everything ran on one device then."""

FILES = {"raw": "raw.csv", "summary": "summary.csv", "losses": "losses.csv"}
COLUMNS = {"raw": RAW_COLUMNS, "summary": SUMMARY_COLUMNS, "losses": LOSS_COLUMNS}


class ResultsError(ValueError):
    """A results file that is missing, empty, truncated or not arraybench's."""


def seconds_per_iteration(raw: pd.DataFrame) -> pd.Series:
    """Each timed repeat of a raw.csv over the iterations it ran."""
    return raw["seconds"] / raw["iterations_timed"]


def check_schema(folder: Path) -> None:
    """Refuse a run folder whose environment.json names another :data:`SCHEMA_VERSION` (none: version 1), with
    one line saying what to do; a folder without environment.json (a bare CSV) is read as it is."""
    path = Path(folder) / "environment.json"
    if not path.is_file():
        return
    try:
        version = json.loads(path.read_text()).get("schema_version", 1)
    except (ValueError, AttributeError) as error:
        raise ResultsError(f"{path}: not readable JSON ({error})") from error
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{folder}: a run folder of schema version {version}, and this arraybench reads version"
            f" {SCHEMA_VERSION}; run the sweep again with this version (python -m bench run), or read it with"
            " the arraybench that wrote it"
        )


class DiskFull(OSError):
    """A run folder's file could not be written for want of space (exit status 3); what was written
    before is intact."""

    def __init__(self, path: Path, error: OSError) -> None:
        try:
            free = f"{shutil.disk_usage(path.parent).free:,} bytes free"
        except OSError:
            free = "free space unknown"
        super().__init__(error.errno, f"no space left on the disk writing {path} ({free} on its file system)")
        self.path = path

    @staticmethod
    def applies(error: OSError) -> bool:
        return error.errno in (errno.ENOSPC, errno.EDQUOT)


def append_rows(folder: Path, kind: str, rows: list[dict]) -> None:
    """Append ``rows`` to the run folder's ``kind`` CSV (with the header on first use) and flush them to disk.

    The rows go out in one ``write`` call, so a killed runner leaves whole rows, never half of one; a write
    that fails part way (a full disk) is cut back to where it started, and raises :class:`DiskFull`.
    """
    if not rows:
        return
    path = folder / FILES[kind]
    header = not path.exists() or path.stat().st_size == 0
    data = pd.DataFrame(rows, columns=COLUMNS[kind]).to_csv(header=header, index=False).encode()
    try:
        with path.open("ab", buffering=0) as file:
            start = file.seek(0, os.SEEK_END)
            try:
                while data:
                    data = data[file.write(data) :]
                os.fsync(file.fileno())
            except OSError:
                file.truncate(start)
                raise
    except OSError as error:
        if DiskFull.applies(error):
            raise DiskFull(path, error) from None
        raise


def drop_partial_line(path: Path) -> None:
    """Cut an incomplete last line (a write that never finished) from ``path``, if it has one."""
    data = path.read_bytes() if path.is_file() else b""
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def read_csv(
    path: Path, kind: str = "summary", *, may_be_empty: bool = False, whole_lines: bool = False
) -> pd.DataFrame:
    """Read and check one of arraybench's CSVs; raise :class:`ResultsError` with a clear reason.

    ``may_be_empty`` turns a missing, empty or header-only file into an empty table instead of an error;
    ``whole_lines`` reads past an incomplete last line (a cut write) instead of refusing the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILES[kind]
    nothing = pd.DataFrame(columns=COLUMNS[kind])
    if not path.is_file():
        if may_be_empty:
            return nothing
        raise ResultsError(f"{path}: no such file")
    if path.stat().st_size == 0:
        if may_be_empty:
            return nothing
        raise ResultsError(f"{path}: is empty")
    source: Path | io.BytesIO = path
    if whole_lines:
        data = path.read_bytes()
        source = io.BytesIO(data[: data.rfind(b"\n") + 1])
        if not source.getbuffer().nbytes:
            if may_be_empty:
                return nothing
            raise ResultsError(f"{path}: truncated (not even its header line is complete)")
    else:
        with path.open("rb") as file:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                raise ResultsError(f"{path}: truncated (its last line is incomplete)")
    try:
        frame = pd.read_csv(source)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path}: not a readable CSV ({error})") from error
    if "machine" not in frame.columns and "host" in frame.columns:
        frame.insert(len(frame.columns), "machine", frame["host"])  # a run from before machine names
    if "machine" in frame.columns and "host" in frame.columns:
        frame["machine"] = frame["machine"].fillna(frame["host"])
    for column, value in ADDED_COLUMNS.items():
        if column in COLUMNS[kind]:
            known = frame[column] if column in frame.columns else pd.Series(value, index=frame.index)
            frame[column] = known.fillna(value).astype(type(value))
    missing = [c for c in COLUMNS[kind] if c not in frame.columns and not (c == "machine" and kind == "losses")]
    if missing:
        raise ResultsError(f"{path}: not an arraybench {FILES[kind]} (missing columns: {', '.join(missing)})")
    damaged = frame[KEY_COLUMNS].isna().any(axis=1)
    if damaged.any():
        raise ResultsError(f"{path}: truncated or damaged ({damaged.sum()} rows lack some of {', '.join(KEY_COLUMNS)})")
    unknown = sorted(map(str, set(frame["status"]) - set(STATUSES))) if "status" in COLUMNS[kind] else []
    if unknown:
        raise ResultsError(f"{path}: unknown status {', '.join(unknown)}; arraybench writes {', '.join(STATUSES)}")
    if frame.empty and not may_be_empty:
        raise ResultsError(f"{path}: holds no rows")
    return frame
