"""Run folders as readers see them: a :class:`Run`, finding one (a path, ``latest``, the newest), listing
them, and the one label of a variant that every table, plot and summary prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backends.contract import Variant
from bench import results
from bench.config import CODE_COLUMNS

LATEST = "latest"
"""The RUN argument that names the newest run folder under results/."""


@dataclass(frozen=True)
class Run:
    """A run folder and its summary.csv (raw.csv and losses.csv are read on demand)."""

    folder: Path
    summary: pd.DataFrame

    def read(self, kind: str) -> pd.DataFrame:
        """The folder's ``raw`` or ``losses`` CSV, checked like the summary."""
        return results.read_csv(self.folder / results.FILES[kind], kind)

    def environment(self) -> dict:
        """The folder's environment.json, or ``{}`` when it has none (an imported or hand-made folder)."""
        path = self.folder / "environment.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            return {}


def run_folders(results_dir: Path, holding: str = results.FILES["summary"]) -> list[Path]:
    """Every folder under ``results_dir`` holding the file ``holding``, oldest first (by that file's mtime)."""
    found = results_dir.glob(f"*/{holding}") if results_dir.is_dir() else []
    return [path.parent for path in sorted(found, key=lambda p: p.stat().st_mtime)]


def load_run(text: str | None, results_dir: Path) -> Run:
    """The run named by ``text`` (a run folder or its summary.csv; ``latest`` or None: the newest run under
    ``results_dir``)."""
    if text is None or text == LATEST:
        folders = run_folders(results_dir)
        if not folders:
            raise results.ResultsError(f"no run under {results_dir}; run `python -m bench run` first, or name a RUN")
        path = folders[-1]
    else:
        path = Path(text)
        if not path.exists():
            raise results.ResultsError(f"{path}: no such run folder or file")
    folder = path if path.is_dir() else path.parent
    results.check_schema(folder)
    return Run(folder, results.read_csv(path))


def variant_label(backend: str, grad: str, mode: str, formulation: str = "tutorial") -> str:
    """``numba manual/jit-loop-parallel tuned``: the backend, then the variant as :class:`Variant` names it.

    The one label of a variant in tables, plots, the end-of-run summary and the GPU check."""
    return f"{backend} {Variant(grad, mode, formulation)}"


def short_label(label: str) -> str:
    """A :func:`variant_label` for narrow tables: ``manual/`` (the default grad) left out."""
    return label.replace(" manual/", " ", 1)


def variant_names(frame: pd.DataFrame) -> pd.Series:
    """The :func:`variant_label` of each row of a frame with backend, grad, mode and formulation columns."""
    columns = frame[CODE_COLUMNS].itertuples(index=False, name=None)
    return pd.Series([variant_label(*row) for row in columns], index=frame.index, dtype=object)


@dataclass(frozen=True)
class RunInfo:
    """One line of ``bench runs``."""

    folder: Path
    run_id: str
    when: str
    host: str
    configurations: int
    counts: dict[str, int]

    @property
    def ok(self) -> bool:
        """Every configuration ``ok`` or ``skipped`` (nothing failed, mismatched, timed out or ran out of memory)."""
        return set(self.counts) <= {"ok", "skipped"}


def run_info(folder: Path) -> RunInfo:
    """What ``bench runs`` shows of one folder; a damaged folder raises :class:`results.ResultsError`."""
    summary = results.read_csv(folder, may_be_empty=True)
    environment = Run(folder, summary).environment()
    run_id = str(environment.get("run_id") or (summary["run_id"].iloc[0] if len(summary) else folder.name))
    when = run_id[:16] if run_id[:8].isdigit() else ""
    when = f"{when[:4]}-{when[4:6]}-{when[6:8]} {when[9:11]}:{when[11:13]}" if when else ""
    host = str(environment.get("host") or (summary["host"].iloc[0] if len(summary) else ""))
    counts = summary["status"].value_counts().to_dict()
    return RunInfo(folder, run_id, when, host, len(summary), {str(k): int(v) for k, v in counts.items()})
