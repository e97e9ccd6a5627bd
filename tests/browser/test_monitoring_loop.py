"""In a real browser, keyboard only: a clinician reads the dose suggestion, records the new
dose on the patient page, sees the alert turn into a dated re-check, and finds the
patient's worklist row moved below the problems still open.

Sign-in fills the login form (tests/browser/conftest.py); from there every step is a key
press: Tab to move, Enter to follow a link, open a section or submit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import Patient, Regimen

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright").expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TODAY = timezone.localdate()


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


@pytest.fixture
def clinic() -> Patient:
    """LOOP-LOW: a valid low trough (3.2 ng/mL on 3 mg/day): 'consider 4.5 mg/day'.
    LOOP-TIME: a trough without a last-dose time, ranked after it."""
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start\n"
        f"LOOP-LOW,Lowe,Lara,1988-04-12,F,ln_maintenance,{TODAY - timedelta(days=700)}\n"
        f"LOOP-TIME,Timms,Tom,1979-02-03,M,ln_maintenance,{TODAY - timedelta(days=700)}\n",
    )
    load(
        "regimens",
        "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
        f"LOOP-LOW,{stamp(400, 20)},IR,BID,3\nLOOP-TIME,{stamp(400, 20)},IR,BID,4\n",
    )
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"LOOP-LOW,{stamp(10)},{stamp(11, 20)},3.2,ng/mL,L-1\n"
        f"LOOP-TIME,{stamp(5)},,5.0,ng/mL,T-1\n",
    )
    return Patient.objects.get(mrn="LOOP-LOW")


def tab_to(page, selector: str, limit: int = 250) -> None:
    """Press Tab until the focused element matches ``selector`` (the way a keyboard user
    moves through the page); fail if it is never reached."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} was never reached with Tab")


def worklist_order(page) -> list[str]:
    return page.locator("table.worklist .worklist__mrn").all_inner_texts()


def test_record_a_new_dose_by_keyboard_and_see_the_re_check_and_the_row_move(clinic, page_for):
    page = page_for("clinician")
    assert worklist_order(page) == ["LOOP-LOW", "LOOP-TIME"]

    tab_to(page, f'a[href="/patients/{clinic.pk}/"]')
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-dose-suggestion]")
    suggestion = page.locator("[data-dose-suggestion]").inner_text()
    assert "Consider 4.5 mg/day (currently 3 mg/day)" in suggestion
    expect(page.locator("[data-next-action]")).to_contain_text("Review dose")

    tab_to(page, "#record-regimen > summary")
    page.keyboard.press("Enter")  # opens the form
    tab_to(page, "#regimen_daily_dose_mg")
    page.keyboard.type("4.5")
    tab_to(page, "#regimen_reason")
    page.keyboard.type("trough 3.2 below target")
    page.keyboard.press("Enter")  # submits (htmx)

    due = (TODAY + timedelta(days=14)).isoformat()
    expect(page.locator("[data-next-action]")).to_contain_text(
        f"Re-check trough at steady state, due by {due}"
    )
    expect(page.locator("[data-next-due]")).to_contain_text(due)
    expect(page.get_by_role("status")).to_contain_text("Regimen recorded")
    regimen = Regimen.objects.filter(patient=clinic).latest("effective_at")
    assert (regimen.daily_dose_mg, regimen.note) == (4.5, "trough 3.2 below target")
    assert regimen.entered_by == page.user

    tab_to(page, 'a[href="/"]')
    page.keyboard.press("Enter")
    page.wait_for_selector("table.worklist")
    assert worklist_order(page) == ["LOOP-TIME", "LOOP-LOW"]
    row = page.locator("table.worklist tbody tr", has_text="LOOP-LOW")
    expect(row).to_contain_text(f"Re-check trough at steady state, due by {due}")
    assert not [m for m in page.console_messages if m.startswith(("error", "pageerror"))]
    connections.close_all()
