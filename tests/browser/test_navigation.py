"""Moving around the site in a real browser: Back after an htmx filter, a session that
expired while a page was open, the keyboard, and a 1024 px wide window."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from monitoring.middleware import SESSION_ENDED_MESSAGE
from monitoring.models import Patient
from tests.browser import pages
from tests.browser.pages import MARKER_KEPT, SET_MARKER
from tests.conftest import TEST_PASSWORD

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright").expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

demo = pages.demo
clinician = pages.clinician


def _controls(page) -> dict[str, str]:
    return {
        "q": page.get_by_label("Search MRN or name").input_value(),
        "alert": page.locator("#worklist-alert").input_value(),
        "range": page.locator("#worklist-range").input_value(),
    }


def _from_url(page) -> dict[str, str]:
    query = parse_qs(urlsplit(page.url).query)
    return {name: query.get(name, [""])[0] for name in ("q", "alert", "range")}


def test_back_after_a_filter_shows_controls_that_match_the_address(demo, clinician):
    page = clinician
    page.evaluate(SET_MARKER)
    page.locator("#worklist-alert").select_option("trough_above_range")
    page.wait_for_url(lambda url: "alert=trough_above_range" in url)
    page.get_by_label("Search MRN or name").fill("DEMO")
    page.wait_for_url(lambda url: "q=DEMO" in url)
    page.locator("#worklist-range").select_option("above")
    page.wait_for_url(lambda url: "range=above" in url)
    assert page.evaluate(MARKER_KEPT)

    for expected in (
        {"q": "DEMO", "alert": "trough_above_range", "range": ""},
        {"q": "", "alert": "trough_above_range", "range": ""},
        {"q": "", "alert": "", "range": ""},
    ):
        page.go_back()
        page.wait_for_url(lambda url, e=expected: _from_url_of(url) == e)
        expect(page.get_by_label("Search MRN or name")).to_have_value(expected["q"])
        assert _controls(page) == expected == _from_url(page)

    page.go_forward()
    expect(page.locator("#worklist-alert")).to_have_value("trough_above_range")
    assert _controls(page) == _from_url(page)


def _from_url_of(url: str) -> dict[str, str]:
    query = parse_qs(urlsplit(url).query)
    return {name: query.get(name, [""])[0] for name in ("q", "alert", "range")}


def test_a_trough_sent_after_the_session_ended_is_not_lost_silently(demo, clinician):
    page = clinician
    patient = demo["DEMO-001"]
    pages.open_patient(page, patient, "?unit=nmol")
    before = patient.levels.count()
    Session.objects.all().delete()  # the session ends (idle timeout) while the page is open

    page.get_by_text("Add a trough").click()
    page.get_by_label("Value as reported").fill("7.3")
    page.get_by_label("Unit as reported").fill("ng/mL")
    page.get_by_role("button", name="Add trough").click()

    # The whole page goes to the login form: not the form swapped into the patient area.
    page.wait_for_url(lambda url: urlsplit(url).path == "/accounts/login/")
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    expect(page.get_by_text(SESSION_ENDED_MESSAGE)).to_be_visible()
    assert not page.get_by_text("Signed in as").count()
    assert patient.levels.count() == before

    page.get_by_label("Username").fill(page.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == f"/patients/{patient.pk}/")
    assert "unit=nmol" in page.url  # back where the user was
    page.wait_for_selector(pages.CHART_DRAWN)


def test_a_filter_after_the_session_ended_goes_to_the_login_page(demo, clinician):
    page = clinician
    Session.objects.all().delete()
    page.locator("#worklist-alert").select_option("trough_above_range")
    page.wait_for_url(lambda url: urlsplit(url).path == "/accounts/login/")
    assert page.locator("table.worklist").count() == 0
    assert not page.get_by_text("Signed in as").count()


def _active(page) -> dict:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return {tag: e.tagName, text: e.textContent.trim(), name: e.name || '',"
        " inRowForm: !!e.closest('form.row-form'), row: (e.closest('tr') || {}).id || ''}; }"
    )


def test_focus_follows_the_new_content_and_escape_closes_a_row_form(demo, clinician):
    page = clinician
    patient = demo["DEMO-001"]
    pages.open_patient(page, patient)
    collected = timezone.localtime() - timedelta(hours=2)
    page.get_by_text("Add a trough").click()
    page.get_by_label("Collected at").fill(collected.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Value as reported").fill("7.3")
    page.get_by_label("Unit as reported").fill("ng/mL")
    page.get_by_label("Accession").fill("FOCUS-1")
    page.get_by_role("button", name="Add trough").press("Enter")
    page.get_by_text("Trough added: 7.3 ng/mL").wait_for()
    page.wait_for_function(
        "() => document.activeElement.matches('.message')"
        " && document.activeElement.textContent.includes('Trough added')"
    )

    # A sent form with an error: the focus goes to the field to correct.
    page.get_by_text("Add a trough").click()
    page.get_by_label("Value as reported").fill("not a number")
    page.get_by_role("button", name="Add trough").press("Enter")
    page.locator("#add-trough .field--error").first.wait_for()
    page.wait_for_function("() => !!document.activeElement.closest('.field--error')")

    # A row's action link opens its form: the focus is in the form's first field.
    link = page.locator("#levels a", has_text="Mark in error").first
    row = link.evaluate("a => a.closest('tr').id")
    link.focus()
    page.keyboard.press("Enter")
    page.locator("#levels form.row-form").wait_for()
    page.wait_for_function("() => !!document.activeElement.closest('form.row-form')")
    active = _active(page)
    assert active["tag"] in ("INPUT", "SELECT", "TEXTAREA") and active["row"] == row, active

    # Escape closes it and the focus goes back to the row.
    page.keyboard.press("Escape")
    expect(page.locator("#levels form.row-form")).to_have_count(0)
    page.wait_for_function(f"() => (document.activeElement.closest('tr') || {{}}).id === '{row}'")
    assert _active(page)["tag"] == "A"


def _overflow(page, selector: str) -> int:
    """How many pixels of the table do not fit its box (0: every column in view)."""
    return page.eval_on_selector(selector, "w => w.scrollWidth - w.clientWidth")


def test_at_1024_px_the_tables_and_an_open_row_form_fit(demo, clinician):
    page = clinician
    page.set_viewport_size({"width": 1024, "height": 768})
    pages.open_patient(page, demo["DEMO-005"])  # a mistimed trough: the longest timing text
    page.locator("#levels a", has_text="Mark in error").first.click()
    form = page.locator("#levels form.row-form")
    form.wait_for()
    levels = "#levels .table-wrap"
    drugs = "#drugs .table-wrap"
    assert _overflow(page, levels) <= 0
    assert _overflow(page, drugs) <= 0
    assert _overflow(page, "#regimens .table-wrap") <= 0
    # The whole form, its button included, inside the table's box and the window.
    wrap = page.locator(levels).bounding_box()
    box = form.bounding_box()
    assert wrap["x"] <= box["x"] and box["x"] + box["width"] <= wrap["x"] + wrap["width"]
    assert box["x"] + box["width"] <= 1024
    header = page.locator("table.levels-table thead th").last.bounding_box()
    assert header["x"] + header["width"] <= wrap["x"] + wrap["width"]


def test_next_page_scrolls_to_the_top_of_the_table(demo, clinician):
    page = clinician
    Patient.objects.bulk_create(
        Patient(
            mrn=f"PAGE-{i:03d}",
            family_name="Pager",
            given_name=f"P{i}",
            birth_date=date(1990, 1, 1),
            sex="F",
        )
        for i in range(60)
    )
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto("/")
    page.get_by_role("link", name="Next page →").scroll_into_view_if_needed()
    page.get_by_role("link", name="Next page →").click()
    page.wait_for_url(lambda url: "page=2" in url)
    expect(page.locator("#worklist-count")).to_contain_text("page 2 of 2")
    page.wait_for_timeout(300)
    top = page.locator("#worklist-table").bounding_box()["y"]
    assert -2 <= top <= 100, top  # the table's top, not the bottom of the list
