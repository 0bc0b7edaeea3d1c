"""The exit statuses of ``python -m bench``: one table."""

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
