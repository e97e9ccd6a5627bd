"""The forecast in the clinic: card, chart, diagnostics, exclusion, model choice, report,
export and the forecast-check page, through the Django client."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from monitoring import forecasting
from monitoring.models import ForecastCheckRun, Patient, PatientForecast, TroughLevel

from .test_forecast import load, make_patient, stamp

pytestmark = [pytest.mark.django_db, pytest.mark.forecast]

HX = {"HX-Request": "true"}


def page(client, patient, **extra):
    response = client.get(reverse("monitoring:patient", args=[patient.pk]), **extra)
    assert response.status_code == 200
    return response.content.decode()


def figure(html: str) -> dict:
    found = re.search(
        r'<script id="trough-figure" type="application/json">(.*?)</script>', html, re.S
    )
    return json.loads(found.group(1))


def test_an_ir_patient_sees_the_model_card_with_a_dose_to_consider(client_for):
    patient = make_patient("PG-IR", troughs=((30, "2.6"), (10, "2.5")))
    html = page(client_for("clinician"), patient)
    assert 'data-forecast-method="map"' in html
    assert "Woillard 2011" in html
    assert "Outside the model's population: developed in kidney transplant recipients" in html
    assert "Haematocrit (default 35 %)" in html
    assert "◆ consider" in html and "Consider " in html
    assert "Decision support, not an order" in html
    suggested = PatientForecast.objects.get(patient=patient).suggested_daily_dose_mg
    assert f"Consider {suggested:g} mg/day" in html


def test_an_er_patient_is_forecast_once_daily(client_for):
    patient = make_patient("PG-ER", formulation="ER", frequency="QD", dose="4")
    html = page(client_for("viewer"), patient)
    assert "once daily" in html and 'data-forecast-method="map"' in html


def test_lcp_shows_the_proportional_rule_and_says_why(client_for):
    patient = make_patient("PG-LCP", formulation="LCP", frequency="QD", dose="2.5")
    html = page(client_for("viewer"), patient)
    assert 'data-forecast-method="proportional"' in html
    assert "No shipped model covers" in html


def test_without_troughs_the_page_says_population_model_alone(client_for):
    patient = make_patient("PG-POP", troughs=())
    html = page(client_for("viewer"), patient)
    assert 'data-forecast-method="population"' in html
    assert "population model alone" in html


def test_the_chart_draws_the_predicted_trough_and_band_behind_the_troughs(client_for):
    patient = make_patient("PG-CH")
    data = figure(page(client_for("viewer"), patient))["data"]
    metas = [trace.get("meta") for trace in data]
    assert metas.count("forecast") == 3
    first_trough = metas.index("troughs")
    assert max(i for i, m in enumerate(metas) if m == "forecast") < first_trough
    band = [t for t in data if t.get("fill") == "tonexty"][0]
    assert band["fillpattern"]["shape"] == "."  # readable in black and white
    line = [t for t in data if t.get("meta") == "forecast" and t.get("showlegend")][0]
    assert "80 %" in line["name"] and "Predicted trough" in line["customdata"][0]


def test_each_trough_shows_the_model_prediction_and_outliers_are_pointed_out(client_for):
    patient = make_patient("PG-OUT", troughs=((40, "5.0"), (30, "5.2"), (20, "4.9"), (10, "19.0")))
    html = page(client_for("viewer"), patient)
    assert "far from what the model expects" in html
    forecast = PatientForecast.objects.get(patient=patient)
    odd = TroughLevel.objects.get(accession="PG-OUT-A3")
    assert abs(forecast.residuals[str(odd.pk)][1]) > 3


def test_a_clinician_leaves_a_trough_out_of_the_fit_with_a_reason(client_for):
    patient = make_patient("PG-EX", troughs=((30, "5.0"), (20, "5.1"), (10, "14.0")))
    before = PatientForecast.objects.get(patient=patient).predicted_trough
    odd = TroughLevel.objects.get(accession="PG-EX-A2")
    client = client_for("clinician")
    url = reverse("monitoring:level_fit", args=[patient.pk, odd.pk])
    form = client.get(url, headers=HX)
    assert form.status_code == 200 and "Leave out of the model fit" in form.content.decode()
    response = client.post(url, {"reason": "drawn 2 h after the morning dose"}, headers=HX)
    assert response.status_code == 200
    assert "left out of the model fit" in response.content.decode()
    odd.refresh_from_db()
    assert odd.fit_excluded_reason == "drawn 2 h after the morning dose"
    latest = odd.history.latest()
    assert latest.history_user.groups.filter(name="clinician").exists()
    assert "excluded from the PK fit" in latest.history_change_reason
    forecast = PatientForecast.objects.get(patient=patient)
    assert forecast.n_troughs_used == 2 and forecast.predicted_trough < before
    # Taken back in, the same way.
    client.post(url, {"reason": "time confirmed with the patient"})
    odd.refresh_from_db()
    assert odd.fit_excluded_reason == ""
    assert PatientForecast.objects.get(patient=patient).n_troughs_used == 3


def test_leaving_out_needs_a_reason_and_the_right_role(client_for):
    patient = make_patient("PG-EX2")
    level = TroughLevel.objects.filter(patient=patient).first()
    url = reverse("monitoring:level_fit", args=[patient.pk, level.pk])
    response = client_for("clinician").post(url, {"reason": "  "})
    assert response.status_code == 422
    assert client_for("viewer").post(url, {"reason": "x"}).status_code == 403
    assert client_for("data_entry").post(url, {"reason": "x"}).status_code == 403
    level.refresh_from_db()
    assert level.fit_excluded_reason == ""


def test_the_model_choice_is_recorded_in_the_history(client_for):
    patient = make_patient("PG-MOD")
    client = client_for("clinician")
    url = reverse("monitoring:patient_model", args=[patient.pk])
    response = client.post(url, {"pk_model": "chen2020", "reason": "adolescent, LN cohort"})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.pk_model == "chen2020"
    assert "chen2020" in patient.history.latest().history_change_reason
    assert PatientForecast.objects.get(patient=patient).model_id == "chen2020"
    bad = client.post(url, {"pk_model": "nonmem_magic", "reason": "x"}, headers=HX)
    assert bad.status_code == 422 and "value &#x27;nonmem_magic&#x27;" in bad.content.decode()
    patient.refresh_from_db()
    assert patient.pk_model == "chen2020"


def test_the_report_has_a_forecast_section(client_for):
    patient = make_patient("PG-REP")
    response = client_for("viewer").get(reverse("monitoring:report", args=[patient.pk]))
    html = response.content.decode()
    assert "Dose forecast: model-informed" in html and "◆ consider" in html
    assert "Decision support, not an order" in html
    printed = json.loads(
        re.search(
            rf'<script id="report-figure-{patient.pk}" type="application/json">(.*?)</script>',
            html,
            re.S,
        ).group(1)
    )
    forecast = [t for t in printed["data"] if t.get("meta") == "forecast"]
    assert len(forecast) == 3 and forecast[1]["fillpattern"]["shape"] == "."


def test_the_forecast_export_has_one_row_per_patient(client_for, tmp_path):
    make_patient("PG-X1")
    make_patient("PG-X2", formulation="LCP", frequency="QD", dose="2.5")
    out = tmp_path / "forecast.csv"
    call_command("export_csv", "forecast", output=str(out))
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == forecasting.FORECAST_COLUMNS
    by_mrn = {r["mrn"]: r for r in rows}
    assert by_mrn["PG-X1"]["model"] == "woillard2011"
    assert float(by_mrn["PG-X1"]["predicted_p10"]) < float(by_mrn["PG-X1"]["predicted_trough"])
    assert by_mrn["PG-X2"]["model"] == "" and by_mrn["PG-X2"]["predicted_trough"] == ""
    download = client_for("data_entry").get(
        reverse("monitoring:export"), {"kind": "forecast", "as_of": "2026-01-01"}
    )
    text = b"".join(download.streaming_content).decode()
    assert next(csv.reader(io.StringIO(text))) == forecasting.FORECAST_COLUMNS


def test_a_page_view_reads_the_stored_fit_and_never_refits(client_for, fits):
    patient = make_patient("PG-Q")
    client = client_for("viewer")
    fits.clear()
    page(client, patient)
    with CaptureQueriesContext(connection) as small:
        page(client, patient)
    assert fits == []
    # More troughs do not mean more queries.
    rows = "".join(
        f"PG-Q,{stamp(60 + i)},{stamp(61 + i, 20)},5.0,ng/mL,PG-Q-X{i}\n" for i in range(20)
    )
    load("levels", "mrn,collected_at,last_dose_at,value,unit,accession\n" + rows)
    page(client, patient)
    fits.clear()
    with CaptureQueriesContext(connection) as large:
        page(client, patient)
    assert fits == []
    assert len(large.captured_queries) == len(small.captured_queries)


def test_the_forecast_check_page_shows_the_last_run(client_for):
    make_patient("PG-FC", troughs=((90, "4.0"), (60, "5.5"), (30, "4.8"), (10, "3.9")))
    call_command("forecast_check")
    html = client_for("clinician").get(reverse("monitoring:forecast_check")).content.decode()
    run = ForecastCheckRun.objects.get()
    assert f"{run.patients} patient" in html
    assert "Median absolute error" in html and "proportional" in html
    assert client_for("viewer").get(reverse("monitoring:forecast_check")).status_code == 403
    assert Patient.objects.count() == 1
