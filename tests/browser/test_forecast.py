"""In a real browser: the model's predicted band on the chart and the dose table; leaving a
trough out of the fit changes the forecast on the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import Patient, PatientForecast

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright").expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.forecast,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TODAY = timezone.localdate()


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


@pytest.fixture
def patient() -> Patient:
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
        f"FC-B,Banda,Bea,1985-06-01,F,{TODAY - timedelta(days=700)}\n",
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\nFC-B,{stamp(300, 20)},IR,BID,3\n",
    )
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"FC-B,{stamp(60)},{stamp(61, 20)},4.8,ng/mL,B-1\n"
        f"FC-B,{stamp(40)},{stamp(41, 20)},5.1,ng/mL,B-2\n"
        f"FC-B,{stamp(10)},{stamp(11, 20)},16.0,ng/mL,B-3\n",
    )
    return Patient.objects.get(mrn="FC-B")


def test_the_band_and_dose_table_then_an_excluded_trough_changes_the_forecast(page_for, patient):
    page = page_for("clinician")
    page.goto(f"/patients/{patient.pk}/")
    card = page.locator("#forecast")
    expect(card).to_contain_text("Woillard 2011")
    expect(card.locator("table.forecast-doses")).to_be_visible()
    expect(card).to_contain_text("consider")
    plot = page.locator(".trough-chart__plot.js-plotly-plot")
    expect(plot).to_be_visible()
    names = plot.evaluate("el => el.data.map(trace => trace.name)")
    assert "Model-predicted trough, 80 % band" in names
    assert page.locator(".legendtext", has_text="Model-predicted trough").count() == 1
    before = card.locator(".forecast-facts").inner_text()

    row = page.locator("tr", has_text="16.0 ng/mL")
    expect(row).to_contain_text("far from what the model expects")
    row.get_by_role("link", name="Leave out of the model fit").click()
    reason = row.get_by_label("Reason")
    expect(reason).to_be_focused()
    reason.fill("drawn after the morning dose")
    reason.press("Enter")
    expect(page.locator(".message--success")).to_contain_text("left out of the model fit")
    expect(page.locator("#forecast .forecast-facts")).not_to_have_text(before)
    assert PatientForecast.objects.get(patient=patient).n_troughs_used == 2
    assert not [m for m in page.console_messages if m.startswith(("error", "pageerror"))]
