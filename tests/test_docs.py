"""The documentation stays true to the code: every CSV column described, the README short and its links whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import results

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kind", sorted(results.COLUMNS))
def test_every_column_of_every_csv_is_described(kind: str) -> None:
    page = (ROOT / "docs" / "results-format.md").read_text()
    described = set(re.findall(r"`([a-z_]+)`", page))
    missing = [column for column in results.COLUMNS[kind] if column not in described]
    assert not missing, f"describe these {results.FILES[kind]} columns in docs/results-format.md: {missing}"


def test_the_readme_is_a_short_users_document() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make bench" in readme and "make test" in readme and "docs/README.md" in readme


@pytest.mark.parametrize("page", ["README.md", "docs/README.md", "docs/report.md", "docs/results-format.md"])
def test_links_to_files_of_the_repository_resolve(page: str) -> None:
    path = ROOT / page
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        if not (path.parent / target).exists():
            assert target.endswith(".md") and page != "README.md", f"{page} links {target}, which does not exist"
