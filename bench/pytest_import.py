"""``python -m bench import-pytest-benchmark FILE.json``: a pytest-benchmark JSON file as a run folder.

Every benchmark of ``tests/benchmarks/test_fit.py`` carries in its ``extra_info`` its configuration and
what a runner worker replies (samples, first call, weights, losses, threads), so the run folder is built by
the runner's own :func:`bench.rows.rows_for`: the same reference check, statistics and CSV columns as a
``python -m bench run``. pytest-benchmark leaves skipped benchmarks out of its JSON, so they are absent here.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from datetime import datetime
from pathlib import Path

from bench import results, runfolder
from bench.config import Configuration
from bench.protocol import ProtocolError, Reply
from bench.results import ResultsError
from bench.rows import rows_for
from bench.runner import write_rows

CONFIG_KEYS = tuple(f.name for f in fields(Configuration))
REPLY_KEYS = tuple(f.name for f in fields(Reply))
"""The fields of a worker's reply (:class:`bench.protocol.Reply`): those extra_info holds are the reply's."""


def load(path: Path) -> tuple[dict, list[tuple[Configuration, Reply]]]:
    """The JSON document of ``path`` and each benchmark's (configuration, worker reply).

    Raises :class:`ResultsError` with one clear line when the file is not pytest-benchmark JSON written by
    arraybench's fits.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: not a pytest-benchmark JSON file ({error})") from None
    if not (isinstance(data, dict) and isinstance(data.get("benchmarks"), list) and "machine_info" in data):
        raise ResultsError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list and 'machine_info')")
    if not data["benchmarks"]:
        raise ResultsError(f"{path}: holds no benchmarks (were they all skipped or disabled?)")
    found = []
    for bench in data["benchmarks"]:
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        info = info if isinstance(info, dict) else {}  # no extra_info: it lacks every key
        name = bench.get("fullname", "?") if isinstance(bench, dict) else "?"
        missing = [k for k in (*CONFIG_KEYS, *Reply.RAN) if k not in info]
        if missing:
            raise ResultsError(
                f"{path}: benchmark {name} is not an arraybench fit (extra_info lacks {', '.join(missing)})"
            )
        config = Configuration(**{k: info[k] for k in CONFIG_KEYS})
        try:
            config.problem  # noqa: B018 (validates n, iterations, dtype, learning rate)
        except (TypeError, ValueError) as error:
            raise ResultsError(f"{path}: benchmark {name}: {error}") from None
        try:  # extra_info's status is the benchmark's check; the reply it carries is a "ran" one
            reply = Reply.from_dict({**{k: info[k] for k in REPLY_KEYS if k in info}, "status": "ran"})
        except ProtocolError as error:
            raise ResultsError(f"{path}: benchmark {name}: {error}") from None
        found.append((config, reply))
    return data, found


def run_id_of(data: dict) -> str:
    """A run id like the runner's (UTC start time and host) from the JSON's datetime and machine name."""
    when = datetime.fromisoformat(data.get("datetime", "1970-01-01T00:00:00+00:00"))
    host = str(data["machine_info"].get("node", "host")).split(".")[0] or "host"
    return f"{when:%Y%m%dT%H%M%SZ}-{host}"


def write_run_folder(path: Path, data: dict, found: list[tuple[Configuration, Reply]], folder: Path) -> Counter:
    """Create ``folder`` with raw.csv, summary.csv, losses.csv and environment.json; return the statuses."""
    run_id = run_id_of(data)
    host = run_id.split("-", 1)[1]
    machine = data["machine_info"]
    folder.mkdir(parents=True)
    statuses: Counter[str] = Counter()
    workers = {}
    for config, reply in found:
        rows = rows_for(config, [reply], run_id, host)
        write_rows(folder, rows)
        statuses[rows["summary"][0]["status"]] += 1
        workers[f"{config.backend}/{config.device}"] = reply.threads_used
    environment = {
        "run_id": run_id,
        "schema_version": results.SCHEMA_VERSION,
        **machine.get("arraybench", {}),
        "workers": workers,
        "imported_from": str(Path(path).resolve()),
        "pytest_benchmark": {k: data.get(k) for k in ("version", "datetime", "commit_info")}
        | {"machine_info": {k: v for k, v in machine.items() if k != "arraybench"}},
    }
    runfolder.write_json(folder / "environment.json", environment)
    return statuses
