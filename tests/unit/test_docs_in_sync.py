"""The specifications users need are in docs/, so a clone has them: copies of the shared
specs, kept equal to them (the project's own rules are appended after the shared text)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
COPIES = ["data-formats.md", "clinical-rules.md", "model-informed-dosing.md"]
SAMPLES = ["levels.csv", "patients.csv", "regimens.csv", "oru_r01_tacrolimus.hl7"]

needs_shared = pytest.mark.skipif(
    not (SHARED / "data-formats.md").exists(), reason="the shared specs are not beside the clone"
)


@needs_shared
@pytest.mark.parametrize("name", COPIES)
def test_the_docs_copy_starts_with_the_shared_spec_unchanged(name):
    shared = (SHARED / name).read_text(encoding="utf-8")
    copy = (ROOT / "docs" / name).read_text(encoding="utf-8")

    assert copy.startswith(shared), f"docs/{name} differs from ../shared/{name}: copy it again"


@needs_shared
@pytest.mark.parametrize("name", SAMPLES)
def test_the_samples_are_copied(name):
    assert (ROOT / "docs" / "samples" / name).read_bytes() == (
        SHARED / "samples" / name
    ).read_bytes()


def test_the_readme_links_only_to_files_in_the_clone():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert "../shared" not in readme
    for target in ["docs/data-formats.md", "docs/clinical-rules.md", "docs/samples/"]:
        assert target in readme
        assert (ROOT / target).exists()


def test_the_data_contract_states_the_appended_rules():
    text = (ROOT / "docs" / "data-formats.md").read_text(encoding="utf-8")
    appended = text.split("## Rules added by this project", 1)[1]

    assert "every CSV the site or a command writes" in appended
    assert "may not begin with `-` or `+`" in appended
