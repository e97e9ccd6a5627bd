"""The code and docs speak of what things are for, not of the tracker: a reader of the
repository has no issues to look up, so no comment, docstring or document says "issue N"."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Built from parts so that this file does not match itself.
PATTERN = re.compile(r"\b" + "iss" + r"ues?\s*#?\d+", re.IGNORECASE)
SUFFIXES = {".py", ".md", ".html", ".js", ".css", ".toml", ".txt", ".cfg"}
SKIP_DIRS = {".venv", ".git", "node_modules", "staticfiles", "__pycache__", ".pytest_cache"}
# Verbatim copies of the shared specifications (tests/unit/test_docs_in_sync.py).
COPIES = {"docs/data-formats.md", "docs/clinical-rules.md", "docs/model-informed-dosing.md"}


def project_files():
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIP_DIRS for part in relative.parts) or not path.is_file():
            continue
        if path.suffix in SUFFIXES or path.name == "Makefile":
            if relative.as_posix() not in COPIES:
                yield path, relative.as_posix()


def test_no_file_refers_to_an_issue_number():
    found = [
        f"{name}:{number}: {line.strip()}"
        for path, name in project_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PATTERN.search(line)
    ]

    assert found == []


def test_the_url_patterns_are_grouped_by_page_family():
    text = (ROOT / "monitoring" / "urls.py").read_text(encoding="utf-8")

    assert "noqa: E402" not in text  # imports at the top, one list of families
    for family in ["Worklist", "Patient page", "Report", "Audit", "Import", "Export"]:
        assert f"# {family}" in text
