"""``bench report --format html``: one self-contained page of a run (``report.html`` in its folder).

The page holds the same :class:`bench.report.Section` tables as the terminal report, the run's plots as
base64 PNG ``<img>`` data (drawn afresh by :mod:`bench.plots`, so they match the CSVs), what was not ``ok``
and why, and a short summary of the machine and software. No scripts, no fonts or styles from elsewhere,
no network: it opens the same from a laptop's disk, a CI artefact or an e-mail attachment.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from bench import report, results
from bench.runs import Run

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #e4e4e4; }
th { background: #f3f3f3; text-align: left; vertical-align: bottom; white-space: pre-line; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.group td { border-top: 2px solid #999; }
td.marked { font-weight: bold; background: #eef6ee; }
.scroll { overflow-x: auto; }
p.note { color: #555; font-size: 0.9em; max-width: 60em; }
p.answer { font-size: 1.05em; max-width: 60em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; }
"""
PLOTS = (
    ("best_per_framework.png", "Each framework's fastest variant against n, over the machine floor"),
    ("speedup_at_tutorial.png", "At the tutorial's point: speedup over the NumPy tutorial loop"),
    ("variants_*.png", "Every variant of each framework"),
    ("time_per_iteration.png", "Every variant in one figure, with the spread of its repeats"),
    ("speedup.png", "Speedup over the NumPy tutorial loop against n"),
    ("first_call.png", "First call (compilation) against a steady fit"),
    ("losses.png", "Losses against the exact reference"),
)


def table_html(section: report.Section) -> str:
    """One section's table: header, rows, emphasised cells, group rules."""
    out = ['<div class="scroll"><table>', "<thead><tr>"]
    for c, name in enumerate(section.header):
        kind = "" if c < section.label_columns else ' class="number"'
        out.append(f"<th{kind}>{html.escape(name)}</th>")
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(section.rows):
        group = ' class="group"' if r - 1 in section.breaks else ""
        out.append(f"<tr{group}>")
        for c, cell in enumerate(row):
            classes = [
                *([] if c < section.label_columns else ["number"]),
                *(["marked"] if (r, c) in section.marked else []),
            ]
            kind = f' class="{" ".join(classes)}"' if classes else ""
            out.append(f"<td{kind}>{html.escape(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def section_html(section: report.Section, *, titled: bool = True) -> str:
    parts = [f"<h3>{html.escape(section.title)}</h3>"] if titled else []
    if section.rows:
        parts.append(table_html(section))
    if section.note:
        parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    parts += [f'<p class="answer">{html.escape(" ".join(s.split()))}</p>' for s in section.sentences]
    return "\n".join(parts)


def image_html(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(f"{caption} ({path.name})")
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'


def environment_html(environment: dict, summary: pd.DataFrame) -> str:
    """The machine and software in a few lines: CPU, cores, memory, GPU, threads, framework versions."""
    packages = environment.get("packages", {})
    versions = ", ".join(f"{name} {v}" for name, v in packages.items() if v and v != "not installed")
    cores = ", ".join(
        f"{environment[key]} {label}"
        for key, label in (("physical_cores", "physical"), ("logical_cores", "logical"), ("usable_cores", "usable"))
        if key in environment
    )
    threads = sorted(set(summary["threads"].dropna().astype(int))) if "threads" in summary else []
    facts = [
        ("run", environment.get("run_id", "")),
        ("host", environment.get("host", "")),
        ("CPU", environment.get("cpu_model", "")),
        ("cores", cores),
        ("memory", f"{environment['memory_gib']} GiB" if "memory_gib" in environment else ""),
        ("GPU", ", ".join(map(str, environment.get("gpus", []))) or "none"),
        ("threads per framework", ", ".join(map(str, threads)) or str(environment.get("threads_requested", ""))),
        ("Python", environment.get("python", "")),
        ("versions", versions),
        ("commit", environment.get("git_commit", "")),
    ]
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts if v)
    return f"<dl>{rows}</dl>"


def plots_html(run: Run) -> tuple[str, list[str]]:
    """The run's plots, drawn now into its folder, as embedded images; and notes on plots not drawn."""
    from bench.plots import write_plots

    try:
        written, notes = write_plots(run)
    except results.ResultsError as error:  # nothing ok to plot: the page still says what happened
        return "", [f"No plots: {error}."]
    parts = []
    for pattern, caption in PLOTS:
        for path in sorted(p for p in written if p.match(pattern)):
            name = path.stem.removeprefix("variants_")
            parts.append(image_html(path, f"{caption}: {name}" if pattern.startswith("variants") else caption))
    return "\n".join(parts), notes


def write_html(
    run: Run, summary: pd.DataFrame, raw: pd.DataFrame | None, path: Path, *, full: bool = False, best: bool = False
) -> Path:
    """Write the page of ``run`` (its rows ``summary``, samples ``raw``, both filtered) to ``path``."""
    sections = report.report_sections(summary, raw, full=full, best=best, width=10_000)
    answer = [s for s in sections if s.title.startswith("The answer")]
    not_ok = [s for s in sections if s.title == report.not_ok_section(summary).title]
    tables = [s for s in sections if s not in answer and s not in not_ok]
    figures, notes = plots_html(Run(run.folder, summary))
    title = f"arraybench: {run.folder.name}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        "<p>Which framework fits sin(x) with a cubic fastest at each size n, by how much, whether that lead is"
        " beyond noise, and how far it is from this machine's floor. Times are the median of the timed"
        " samples, in microseconds per iteration.</p>",
        "<h2>The answer</h2>",
        *map(section_html, answer),
        "<h2>Plots</h2>",
        figures,
        *(f'<p class="note">{html.escape(note)}</p>' for note in notes),
        "<h2>Every table</h2>",
        *map(section_html, tables),
        "<h2>Not timed, or not trusted</h2>",
        *([section_html(s, titled=False) for s in not_ok] if not_ok else ["<p>Every configuration is ok.</p>"]),
        "<h2>Machine and software</h2>",
        environment_html(run.environment(), summary),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
