"""Writing a run folder safely: whether it can be written at all, one writer at a time, metadata that is
never half-written, and the checks and repair of a folder before a run is resumed or reported.

The rows themselves are appended by :func:`bench.results.append_rows`, which never leaves half a row.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from bench import results

LOCK = ".lock"
"""The lock file of a run folder: whoever holds a POSIX lock on it is writing the folder. It stays behind
after the run (a lock dies with its process, so a killed run's file blocks nobody)."""


def resume_command(folder: Path) -> str:
    """The command that finishes the interrupted run in ``folder`` (what every "finish with" message names)."""
    return f"python -m bench run --resume {folder}"


class FolderError(ValueError):
    """A run folder that cannot be written, is being written by another run, or was tampered with."""


def nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` (not there yet) cannot be created and written, or None: found by creating a trial
    folder in its nearest existing parent and removing it, since permission bits do not tell a root user
    about /proc, /sys or a read-only mount."""
    parent = nearest_existing(folder.parent)
    if not parent.is_dir():
        return f"{parent} is not a writable folder (it is a file)"
    if os.statvfs(parent).f_flag & os.ST_RDONLY:
        return f"{parent} is not a writable folder (a read-only file system)"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".arraybench-trial-", dir=parent))
    except OSError as error:
        return f"{parent} is not a writable folder ({error.strerror or error})"
    return None


def make(folder: Path) -> None:
    """Create a new run folder (and its missing parents), or raise :class:`FolderError` with one line."""
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        raise FolderError(
            f"output folder {folder} exists already (another run made it); choose another --out"
        ) from None
    except OSError as error:
        raise FolderError(f"cannot create output folder {folder}: {error.strerror or error}") from None


def holder(folder: Path) -> str | None:
    """Who holds ``folder``'s lock (the text its holder wrote), or None when nobody does."""
    path = folder / LOCK
    if not path.is_file():
        return None
    with path.open("r+b") as file:
        try:
            fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            return file.read().decode(errors="replace").strip() or "another process"
        fcntl.lockf(file, fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; raise :class:`FolderError` naming the holder if another run has
    it. The lock is an ``fcntl`` record lock, released by the kernel when its process dies, however it dies."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise FolderError(f"{folder} cannot be written ({error.strerror or error})") from None
    with os.fdopen(fd, "r+b") as file:
        try:
            fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            other = file.read().decode(errors="replace").strip() or "another process"
            raise FolderError(f"{folder} is being written by another run ({other}); wait for it to end") from None
        me = f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
        me += shlex.join(sys.argv[1:])  # the command's arguments (sys.argv[0] is bench/__main__.py)
        with contextlib.suppress(OSError):  # a full disk must not stop the run from reporting so
            file.truncate(0)
            file.write(me.encode())
            file.flush()
        try:
            yield
        finally:
            fcntl.lockf(file, fcntl.LOCK_UN)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON, atomically (:func:`write_atomically`)."""
    write_atomically(path, (json.dumps(data, indent=1) + "\n").encode())


def write_atomically(path: Path, text: bytes) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, flushed to disk, then renamed over
    it, so that a crash or a full disk (:class:`bench.results.DiskFull`) leaves the old file or the new one,
    never half of one."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if results.DiskFull.applies(error):
            raise results.DiskFull(path, error) from None
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself
    finally:
        os.close(directory)


def keys_of(frame: pd.DataFrame) -> list[tuple]:
    return list(frame[results.KEY_COLUMNS].itertuples(index=False, name=None))


def machine_keys_of(frame: pd.DataFrame) -> list[tuple]:
    """Each row's machine and key: a fleet folder (``bench merge`` of several machines' runs) holds each
    configuration once per machine."""
    columns = ["machine", *results.KEY_COLUMNS] if "machine" in frame.columns else results.KEY_COLUMNS
    return list(frame[columns].astype(str).itertuples(index=False, name=None))


def describe(key: tuple) -> str:
    """A key as ``backend=numpy ... iterations=200``; a :func:`machine_keys_of` key adds `` on machine NAME``."""
    if len(key) > len(results.KEY_COLUMNS):
        return f"{describe(key[1:])} on machine {key[0]}"
    return " ".join(f"{column}={value}" for column, value in zip(results.KEY_COLUMNS, key, strict=True))


def read_all(folder: Path, whole_lines: bool) -> dict[str, pd.DataFrame]:
    """The folder's three CSVs; ``whole_lines``: an incomplete last line left out (the one damage a cut
    write causes, which :func:`repair` removes) instead of refused."""
    return {
        kind: results.read_csv(folder / name, kind, may_be_empty=True, whole_lines=whole_lines)
        for kind, name in results.FILES.items()
    }


TIMED = ("ok",)
"""Statuses whose summary row must have all its raw rows: those the report and comparisons time (a
``mismatch`` or ``diverged`` row has them too in a run, but readers do not rely on them)."""


def check(
    folder: Path, run_id: str | None, planned: Iterable[tuple] | None = None, *, whole_lines: bool = False
) -> None:
    """Refuse a folder whose rows cannot be one run's (raise :class:`FolderError` saying what and where):
    rows of another run (a run id other than ``run_id``; with None, other than the first row's), of another
    sweep (a key not in ``planned``, when given), a configuration twice in summary.csv, a repeat or logged
    iteration twice, or an ``ok`` summary row without all its raw rows. ``whole_lines``: read past an
    incomplete last line (before a :func:`repair`) instead of refusing it."""
    frames = read_all(folder, whole_lines)
    expected = run_id
    for kind, frame in frames.items():
        path = folder / results.FILES[kind]
        ids = list(dict.fromkeys(map(str, frame["run_id"])))
        expected = expected if expected is not None else (ids[0] if ids else None)
        foreign = [i for i in ids if i != expected]
        if foreign:
            raise FolderError(f"{path}: rows of another run (run_id {', '.join(foreign)}, not {expected})")
    summary, raw = frames["summary"], frames["raw"]
    if planned is not None:
        plan = set(planned)
        stray = [key for key in keys_of(summary) if key not in plan]
        if stray:
            raise FolderError(
                f"{folder / results.FILES['summary']}: rows of another sweep ({len(stray)} configurations not in"
                f" sweep.json, the first: {describe(stray[0])})"
            )
    for kind, extra in (("summary", []), ("raw", ["process", "repeat"]), ("losses", ["iteration"])):
        frame = frames[kind]
        machine = ["machine"] if "machine" in frame.columns else []
        twice = frame[frame.duplicated([*machine, *results.KEY_COLUMNS, *extra], keep="first")]
        if len(twice):
            line = twice.index[0] + 2  # the header is line 1
            which = " ".join(f"{column} {twice.iloc[0][column]}" for column in extra)
            what = f"{which} of the configuration" if extra else "configuration"
            raise FolderError(
                f"{folder / results.FILES[kind]}: line {line}: {what} {describe(keys_of(twice)[0])} is there twice"
            )
    if not (folder / results.FILES["raw"]).is_file():
        return  # a summary-only folder (made by hand, or an import of summaries) has no raw rows to check
    repeats = Counter(machine_keys_of(raw))
    for line, (key, status, expected) in enumerate(
        zip(machine_keys_of(summary), summary["status"], summary["repeats"], strict=True), start=2
    ):
        if status in TIMED and repeats.get(key, 0) != expected:
            raise FolderError(
                f"{folder / results.FILES['summary']}: line {line}: {describe(key)} is {status} with {expected:g}"
                f" repeats, but raw.csv holds {repeats.get(key, 0)} rows of it"
            )


def repair(folder: Path) -> None:
    """Undo what an interrupted runner leaves: an incomplete last line in any CSV (a write cut short), and
    raw and loss rows of a configuration that never reached summary.csv (stopped between its writes), so
    that a resumed run repeats that configuration cleanly. A file is rewritten by :func:`write_atomically`, so
    a full disk leaves it as it was."""
    paths = {kind: folder / name for kind, name in results.FILES.items()}
    for path in paths.values():
        results.drop_partial_line(path)
    done = set(done_keys(folder))
    for kind in ("raw", "losses"):
        frame = results.read_csv(paths[kind], kind, may_be_empty=True)
        keep = [key in done for key in keys_of(frame)]
        if not all(keep):
            write_atomically(paths[kind], frame[keep].to_csv(index=False).encode())


def done_keys(folder: Path) -> set[tuple]:
    """The keys of the configurations in the folder's summary.csv: those a resumed run does not repeat."""
    return set(keys_of(results.read_csv(folder / results.FILES["summary"], "summary", may_be_empty=True)))
