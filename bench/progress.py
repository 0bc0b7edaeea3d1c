"""Progress of a sweep on the terminal: step k of K (a configuration in one worker process), what runs, elapsed
and estimated time left.

On a terminal, one live line that fits its width (80 columns and up): the bar, count, elapsed and time
left keep their room, and the label of what runs gives way (:func:`fit_label`). Elsewhere (CI logs,
pipes), one line per finished step.
"""

from __future__ import annotations

import re
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.config import Configuration

BAR_WIDTH = 8


def outcome(summary: dict) -> str:
    """One configuration's result in a few words (``ran``: one process of several done, more to come)."""
    if summary["status"] == "ran":
        return f"ran {summary['reason']}"
    if summary["status"] == "ok":
        return f"ok {summary['us_per_iter']:.1f} us/iter"
    return f"{summary['status']}: {summary['reason']}"


def fixed_width(total: int) -> int:
    """Columns the live line needs besides the label: bar, ``k/K``, elapsed, ``left``, time left, gaps."""
    count = 2 * len(str(total)) + 1
    return BAR_WIDTH + count + len("0:00:00") + len("left") + len("0:00:00") + 5


SHORTER = ((" manual/", " "), (" cpu ", " "), (" float32 ", " f32 "), (" float64 ", " f64 "))


def fit_label(label: str, room: int) -> str:
    """``label`` in at most ``room`` columns: ``manual/`` and ``cpu`` dropped and dtypes shortened first, then
    `` it=...`` dropped and n written as a power of ten where it is one, then the end cut with ``…``."""
    if len(label) <= room:
        return label
    for old, new in SHORTER:
        label = label.replace(old, new)
    if len(label) > room:
        label, _, n = label.rsplit(" it=", 1)[0].rpartition(" n=")
        digits = n.rstrip("0")
        label += f" n={n}" if digits != "1" or len(n) < 4 else f" n=10^{len(n) - 1}"
    return label if len(label) <= room else label[: max(room - 1, 0)] + "…"


class SweepProgress:
    """A live bar on a terminal; one line per configuration elsewhere (CI logs, pipes)."""

    def __init__(self, total: int, console: Console) -> None:
        self.total, self.console, self.done, self.started = total, console, 0, time.monotonic()
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=BAR_WIDTH),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = self.bar.add_task("starting", total=total)
            self.bar.start()

    def label(self, config: Configuration, where: str = "") -> str:
        """What runs (and, as ``p1/2``, which of its processes), shortened to the room the live line leaves."""
        where = re.sub(r" \(process (\d+) of (\d+)\)", r" p\1/\2", where)
        return fit_label(config.label(), self.console.width - fixed_width(self.total) - len(where)) + where

    def start(self, config: Configuration, where: str = "") -> None:
        if self.bar:
            self.bar.update(self.task, description=self.label(config, where))

    def finish(self, config: Configuration, summary: dict, steps: int = 1) -> None:
        """``steps`` steps done, ending with ``config``'s ``summary`` (status ``ran``: a process of several)."""
        self.done += steps
        if self.bar:
            self.bar.update(self.task, advance=steps)
            if summary["status"] not in ("ok", "skipped", "ran"):
                self.bar.console.print(f"{config.label()}: {outcome(summary)}", markup=False)
            return
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        self.console.print(
            f"[{self.done}/{self.total}] {config.label()}: {outcome(summary)}"
            f"  (elapsed {elapsed:.0f} s, about {left:.0f} s left)",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
