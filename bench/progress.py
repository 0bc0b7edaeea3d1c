"""Progress of a sweep on the terminal: step k of K (a configuration in one worker process), what runs, elapsed
and estimated time left."""

from __future__ import annotations

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


def outcome(summary: dict) -> str:
    """One configuration's result in a few words (``ran``: one process of several done, more to come)."""
    if summary["status"] == "ran":
        return f"ran {summary['reason']}"
    if summary["status"] == "ok":
        return f"ok {summary['us_per_iter']:.1f} us/iter"
    return f"{summary['status']}: {summary['reason']}"


class SweepProgress:
    """A live bar on a terminal; one line per configuration elsewhere (CI logs, pipes)."""

    def __init__(self, total: int, console: Console) -> None:
        self.total, self.console, self.done, self.started = total, console, 0, time.monotonic()
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console,
            )  # fmt: skip
            self.task = self.bar.add_task("starting", total=total)
            self.bar.start()

    def start(self, config: Configuration, where: str = "") -> None:
        if self.bar:
            self.bar.update(self.task, description=f"{config.label()}{where}")

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
