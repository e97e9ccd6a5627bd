"""In a real browser: a data-entry user uploads a CSV with one bad row, sees the error in the
preview, downloads the error rows, fixes the file, uploads it again and confirms."""

from __future__ import annotations

import pytest
from django.db import connections

from monitoring.importers import run_csv_import
from monitoring.models import TroughLevel

pytestmark = [
    pytest.mark.browser,
    # The live server needs committed data; serialized_rollback puts back the migrations'
    # reference data (groups, target profiles, ...) that the flush after the test removes.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

BAD = (
    "mrn,collected_at,last_dose_at,value,unit,assay,accession\n"
    "MRN-1,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,LCMSMS,ACC-1\n"
    "MRN-1,2025-03-03T08:00,2025-03-02T20:00,abc,ng/mL,LCMSMS,ACC-2\n"
    "MRN-1,2025-04-03T08:00,,5.0,ng/mL,CMIA,ACC-3\n"
)
FIXED = BAD.replace(",abc,", ",4.4,")


@pytest.fixture
def import_page(page_for):
    """A Chromium page signed in as a data-entry user (tests/browser/conftest.py)."""
    yield page_for("data_entry")
    # ORM calls made while Playwright runs get their own database connection (another
    # context); close it, or PostgreSQL refuses to drop the test database at the end.
    connections.close_all()


def choose_and_upload(page, text: str, name: str = "levels.csv") -> None:
    page.get_by_role("radio", name="Tacrolimus trough levels").check()
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode()}]
    )
    page.get_by_role("button", name="Preview").click()
    page.wait_for_load_state()


def test_upload_see_the_error_fix_it_and_confirm(import_page, tmp_path):
    assert run_csv_import(
        "patients", b"mrn,family_name,given_name,birth_date,sex\nMRN-1,Doe,Jane,1988-04-12,F\n"
    ).ok
    page = import_page
    page.get_by_role("link", name="Import").click()
    assert page.get_by_role("heading", name="Import data").is_visible()

    # 1. The file with one bad row: the preview names the row, column, value and rule.
    choose_and_upload(page, BAD)
    bad_row = page.locator("#row-3")
    assert bad_row.get_by_text("error", exact=True).is_visible()
    assert "row 3, column value: value 'abc': is not a number" in bad_row.inner_text()
    assert page.locator("#row-2").get_by_text("new", exact=True).is_visible()
    assert page.get_by_role("button", name="Confirm import").count() == 0
    assert TroughLevel.objects.count() == 0

    # 2. The error rows download as CSV, with what is wrong in a last column.
    with page.expect_download() as info:
        page.get_by_role("button", name="Download the 1 row in error (CSV)").click()
    download = info.value
    assert download.suggested_filename == "levels-errors.csv"
    saved = tmp_path / "errors.csv"
    download.save_as(saved)
    lines = saved.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].endswith(",error")
    assert lines[1].startswith("MRN-1,2025-03-03T08:00,2025-03-02T20:00,abc,")

    # 3. Fixed and uploaded again: every row is new, and confirm writes them.
    choose_and_upload(page, FIXED)
    assert page.get_by_text("Nothing has been written yet").is_visible()
    assert page.locator("#row-3").get_by_text("new", exact=True).is_visible()
    assert TroughLevel.objects.count() == 0
    page.get_by_role("button", name="Confirm import").click()
    # Confirm queues a background job and opens its page (the tasks run at once here:
    # tests/conftest.py); a real worker's progress is test_import_job.py's.
    page.wait_for_url("**/imports/jobs/*/")
    assert page.get_by_role("heading", name="Import of levels.csv").is_visible()
    assert page.get_by_text("Finished: imported").is_visible()
    assert not [
        m for m in page.console_messages if "Content Security Policy" in m or "pageerror" in m
    ]
    assert sorted(TroughLevel.objects.values_list("accession", flat=True)) == [
        "ACC-1",
        "ACC-2",
        "ACC-3",
    ]
