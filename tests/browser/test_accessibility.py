"""Accessibility of the worklist and the patient page: an axe-core scan finds no serious or
critical violation, and both pages work with the keyboard alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import TroughLevel
from tests.browser import pages
from tests.browser.pages import CHART_DRAWN, open_patient

Axe = pytest.importorskip(
    "axe_playwright_python.sync_playwright", reason="pip install axe-playwright-python"
).Axe

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright").expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

demo = pages.demo
clinician = pages.clinician

BLOCKING = ("serious", "critical")


def blocking_violations(page) -> list[str]:
    """Serious and critical axe-core violations, one readable line per failing element."""
    results = Axe().run(page)
    assert results.response["passes"], "axe-core checked nothing"
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] in BLOCKING:
            for node in violation["nodes"]:
                found.append(
                    f"{violation['id']} ({violation['impact']}): {violation['help']} at "
                    f"{', '.join(map(str, node['target']))}: {node['failureSummary']}"
                )
    return found


def test_axe_finds_no_serious_violation(demo, clinician):
    page = clinician
    problems = blocking_violations(page)

    open_patient(page, demo["DEMO-005"])
    page.get_by_text("Add a trough").click()  # the form's fields are scanned open
    problems += blocking_violations(page)
    assert not problems, "\n".join(problems)


# --- the keyboard alone ------------------------------------------------------------------------

FOCUSED = "sel => document.activeElement && document.activeElement.matches(sel)"
DESCRIBE_FOCUS = """() => { const e = document.activeElement;
    return e ? `${e.tagName.toLowerCase()}#${e.id} ${(e.textContent || '').trim().slice(0, 30)}`
             : 'nothing'; }"""


def tab_to(page, selector: str, limit: int = 60) -> int:
    """Press Tab until the focus is on `selector`; the number of presses it took."""
    visited = []
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED, selector):
            return presses
        visited.append(page.evaluate(DESCRIBE_FOCUS))
    raise AssertionError(f"Tab never reached {selector}; focus went to: {visited}")


def type_datetime(page, moment) -> None:
    """Type into a focused datetime-local control as a keyboard user does (en-US segments:
    month day year, Tab, hour minute AM/PM)."""
    page.keyboard.type(moment.strftime("%m%d%Y"))
    page.keyboard.press("Tab")
    page.keyboard.type(moment.strftime("%I%M") + ("A" if moment.hour < 12 else "P"))


def test_keyboard_alone_worklist_to_patient_to_new_trough(demo, clinician):
    page = clinician
    # Native date-time controls order their fields by locale: fix it, for the typing below.
    page.context.new_cdp_session(page).send("Emulation.setLocaleOverride", {"locale": "en-US"})

    # From the top of the page the first Tab lands on the skip link, shown when focused.
    assert tab_to(page, ".skip-link", limit=1) == 1
    assert page.locator(".skip-link").bounding_box()["y"] >= 0
    page.keyboard.press("Enter")
    assert page.evaluate(FOCUSED, "main")
    # The next stop is the search field; typing filters the list.
    assert tab_to(page, "#worklist-q", limit=1) == 1
    page.keyboard.type("DEMO-005")
    expect(page.locator("table.worklist tbody tr")).to_have_count(1)
    assert page.evaluate(FOCUSED, "#worklist-q"), "the table update took the focus away"
    assert tab_to(page, "#worklist-alert", limit=1) == 1
    # Past the other filters, the list's links (CSV, recall list, print) and the column
    # headers' sort links to the patient's own link.
    tab_to(page, "table.worklist tbody a", limit=25)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/patients/{demo['DEMO-005'].pk}/")
    page.wait_for_selector(CHART_DRAWN)

    # Patient page: open the add-trough form, fill and submit it without the mouse.
    tab_to(page, "#add-trough summary")
    page.keyboard.press("Enter")
    assert tab_to(page, "#add_collected_at", limit=1) == 1
    collected = timezone.localtime().replace(hour=8, minute=0, second=0, microsecond=0)
    collected -= timedelta(days=1)
    type_datetime(page, collected)
    tab_to(page, "#add_last_dose_at", limit=3)
    type_datetime(page, collected - timedelta(hours=12))
    tab_to(page, "#add_reported_value", limit=3)
    page.keyboard.type("6.1")
    tab_to(page, "#add_accession", limit=4)
    page.keyboard.type("KEYBOARD-1")
    tab_to(page, "#add-trough button[type=submit]", limit=3)
    page.keyboard.press("Enter")

    page.get_by_text("Trough added: 6.1 ng/mL").wait_for()
    level = TroughLevel.objects.get(patient=demo["DEMO-005"], accession="KEYBOARD-1")
    assert level.collected_at == collected
    assert level.last_dose_at == collected - timedelta(hours=12)
    assert "6.1" in page.locator(f"#level-{level.pk} td.num").inner_text()
