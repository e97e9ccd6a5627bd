"""In a real browser: the worklist and the patient page.

Sign in, filter the worklist without a page load, open a patient, read the chart (target
band, dose annotations, ng/mL ↔ nmol/L), add a trough inline and see the table and the
chart follow, all without a full reload. Also takes the README screenshots
(docs/worklist.png, docs/patient.png) from the demo data.

The demo data (``seed_demo``) is written relative to today, so these tests hold on any day.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from monitoring.models import TroughLevel
from tests.browser import pages
from tests.browser.pages import (
    CHART,
    CHART_DRAWN,
    CHART_POINTS,
    MARKER_KEPT,
    SET_MARKER,
    open_patient,
)

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright").expect

pytestmark = [
    pytest.mark.browser,
    # The live server needs committed data; serialized_rollback puts back the migrations'
    # reference data (groups, target profiles, ...) that the flush after each test removes.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

demo = pages.demo
clinician = pages.clinician


DRAWN_POINTS = ".js-plotly-plot .scatterlayer path.point"


def count_rows(page) -> int:
    return page.locator("table.worklist tbody tr").count()


def test_sign_in_then_filter_the_worklist_without_a_page_load(demo, clinician):
    page = clinician
    # Signed in (tests/browser/conftest.py), the user lands on the worklist, the home page.
    assert urlsplit(page.url).path == "/"
    assert page.get_by_role("heading", name="Worklist", level=1).is_visible()
    assert page.get_by_text(f"Signed in as {page.user.username}").is_visible()
    assert page.locator("#worklist-count").inner_text().startswith(f"{len(demo)} patients")
    before = count_rows(page)
    assert before == len(demo)
    page.evaluate(SET_MARKER)

    page.get_by_label("Alert").select_option("trough_above_range")
    expect(page.locator("#worklist-count")).to_contain_text("match the filters")
    after = count_rows(page)
    expected = [p for p in demo.values() if "trough_above_range" in p.alerts]
    assert 0 < after == len(expected) < before
    assert page.evaluate(MARKER_KEPT), "the filter reloaded the whole page"
    assert "alert=trough_above_range" in page.url  # hx-push-url: the filtered list has its address
    shown = page.locator("table.worklist .worklist__mrn").all_inner_texts()
    assert sorted(shown) == sorted(p.mrn for p in expected)

    # The search box narrows it further as one types.
    page.get_by_label("Search MRN or name").fill(expected[0].mrn)
    expect(page.locator("table.worklist tbody tr")).to_have_count(1)
    assert page.evaluate(MARKER_KEPT)
    assert f"q={expected[0].mrn}" in page.url


def test_patient_chart_band_dose_annotations_and_unit_switch(demo, clinician):
    page = clinician
    # DEMO-006: tacrolimus started at 3 mg/day, raised to 4 mg/day three days ago.
    page.get_by_role("link", name=re.compile("DEMO-006")).click()
    page.wait_for_selector(CHART_DRAWN)
    assert page.get_by_role("heading", level=1).inner_text().startswith("Dummer, Fay")

    assert page.locator(".js-plotly-plot .main-svg").first.is_visible()
    # The target band: a filled rectangle in the shape layer drawn below the troughs.
    band_fills = page.eval_on_selector_all(
        ".js-plotly-plot .layer-subplot .shapelayer path, .js-plotly-plot .layer-below path",
        "paths => paths.map(p => p.style.fill)",
    )
    assert any("0, 158, 115" in fill for fill in band_fills), band_fills
    annotations = page.locator(".js-plotly-plot .annotation-text").all_text_contents()
    assert "start 3 mg/day IR BID" in annotations, annotations
    assert "3 → 4 mg/day" in annotations, annotations
    legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
    assert "Target 4–6 ng/mL (shaded band)" in legend, legend
    assert "Trough (ng/mL)" in page.locator(".js-plotly-plot .g-ytitle").all_text_contents()

    page.evaluate(SET_MARKER)
    page.get_by_role("navigation", name="Unit").get_by_role("link", name="nmol/L").click()
    expect(page.locator(".js-plotly-plot .g-ytitle").first).to_have_text("Trough (nmol/L)")
    assert page.evaluate(MARKER_KEPT), "the unit switch reloaded the whole page"
    assert "unit=nmol" in page.url
    assert "Value (nmol/L)" in page.locator("table.levels-table thead").inner_text()


def test_add_a_trough_inline_updates_table_and_chart(demo, clinician):
    page = clinician
    patient = demo["DEMO-001"]
    open_patient(page, patient)
    points = page.eval_on_selector(CHART, CHART_POINTS)
    drawn = page.locator(DRAWN_POINTS).count()  # troughs and labs, as SVG markers
    rows = page.locator("table.levels-table tbody tr").count()
    assert points > 0
    page.evaluate(SET_MARKER)

    collected = timezone.localtime() - timedelta(hours=2)
    collected = collected.replace(second=0, microsecond=0)
    page.get_by_text("Add a trough").click()
    page.get_by_label("Collected at").fill(collected.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Last dose before the draw").fill(
        (collected - timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
    )
    page.get_by_label("Value as reported").fill("7.3")
    page.get_by_label("Unit as reported").fill("ng/mL")
    page.get_by_label("Accession").fill("BROWSER-1")
    page.get_by_role("button", name="Add trough").click()

    page.get_by_text("Trough added: 7.3 ng/mL").wait_for()
    # (A function, not an expression: the page's CSP forbids the eval a string would need.)
    page.wait_for_function(
        f"() => {{ const el = document.querySelector('{CHART}'); "
        f"return !!el.data && ({CHART_POINTS})(el) === {points + 1}; }}"
    )
    assert page.evaluate(MARKER_KEPT), "adding a trough reloaded the whole page"
    assert page.locator(DRAWN_POINTS).count() == drawn + 1
    assert page.locator("table.levels-table tbody tr").count() == rows + 1
    level = TroughLevel.objects.get(patient=patient, accession="BROWSER-1")
    row = page.locator(f"#level-{level.pk}")
    assert "7.3" in row.locator("td.num").inner_text()
    assert "BROWSER-1" in row.inner_text()
    # The newest trough is the first row of the table.
    assert page.locator("table.levels-table tbody tr").first.get_attribute("id") == (
        f"level-{level.pk}"
    )
    assert page.locator(".js-plotly-plot").count() == 1  # redrawn in place, not added


@pytest.mark.forecast  # the README shows the page as a clinic sees it, forecast card included
def test_screenshots_for_the_readme(demo, clinician, docs_dir):
    """docs/worklist.png and docs/patient.png, shown in the README: the demo data, at the
    1280 × 900 viewport; the patient page down to the end of its chart."""
    page = clinician
    page.screenshot(path=docs_dir / "worklist.png")

    # DEMO-002: a trough below range, its alert and the dose suggestion.
    open_patient(page, demo["DEMO-002"])
    page.mouse.move(0, 0)  # no hover label in the picture
    chart = page.locator("#chart").bounding_box()
    bottom = chart["y"] + chart["height"] + 16
    page.screenshot(
        path=docs_dir / "patient.png",
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": bottom},
    )
    for name in ("worklist.png", "patient.png"):
        assert (docs_dir / name).stat().st_size > 20_000


def test_leaving_the_search_box_does_not_fetch_the_list_again(demo, clinician):
    # A keyboard user types a name and tabs on towards the table: a second fetch of the same
    # list on the box's "change" event would swap the table under the focus.
    page = clinician
    fetched = []
    page.on(
        "request",
        lambda request: fetched.append(request.url) if "q=DEMO-005" in request.url else None,
    )
    page.get_by_label("Search MRN or name").fill("DEMO-005")
    expect(page.locator("table.worklist tbody tr")).to_have_count(1)
    assert len(fetched) == 1
    page.keyboard.press("Tab")  # leaves the box: fires "change"
    page.wait_for_timeout(1000)  # longer than the search box's 400 ms delay
    assert len(fetched) == 1, fetched
