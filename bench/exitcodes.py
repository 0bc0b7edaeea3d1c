"""The exit status of every arraybench command, in one table (``docs/statuses.md`` explains each).

``bench run`` and ``bench import-pytest-benchmark`` end with :func:`of_statuses` of the rows they wrote;
``bench compare --fail-on-regression`` exits :data:`NOT_OK` on a regression; every command exits
:data:`BAD_INPUT` on a bad command line or an unreadable run folder (one line on stderr, nothing written),
:data:`DISK_FULL` when the disk filled up while writing, and :data:`INTERRUPTED` after Ctrl-C, SIGTERM or SIGHUP
(the finished configurations stay on disk; ``--resume`` finishes the run). ``make bench`` exits with the run's
status after plotting and reporting what finished.
"""

from __future__ import annotations

from collections.abc import Iterable

OK = 0
"""Everything ran, or failed as expected."""
NOT_OK = 1
"""Some configuration failed, timed out, ran out of memory or mismatched unexpectedly."""
BAD_INPUT = 2
"""A bad command line or run folder: one line on stderr, before any work, nothing written."""
DISK_FULL = 3
"""A run folder's disk filled up: the finished configurations are intact; free space, then ``--resume``."""
INTERRUPTED = 130
"""Ctrl-C, SIGTERM or SIGHUP: the finished configurations are on disk; ``--resume`` finishes the run."""

TABLE = {
    OK: "every configuration ok, skipped, or an expected mismatch within its declared bound",
    NOT_OK: "some configuration failed, timed out, ran out of memory, diverged or mismatched unexpectedly"
    " (compare --fail-on-regression: a configuration got slower or broke)",
    BAD_INPUT: "bad input: an invalid option or value, or a run folder that cannot be read; nothing was written",
    DISK_FULL: "the disk filled up while the run was writing; what was written before is intact",
    INTERRUPTED: "interrupted by Ctrl-C, SIGTERM or SIGHUP; the finished configurations are on disk (--resume)",
}
"""Exit status -> what it means, for every command."""

AS_EXPECTED = ("ok", "skipped", "expected-mismatch")
"""Row statuses that leave a run's exit status at :data:`OK`; any other status of ``bench.results.STATUSES``
makes it :data:`NOT_OK`."""


def of_statuses(statuses: Iterable[str]) -> int:
    """The exit status of a run whose rows have ``statuses``."""
    return OK if set(statuses) <= set(AS_EXPECTED) else NOT_OK
