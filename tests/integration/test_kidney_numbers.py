"""Kidney function in numbers on the patient page and in the report."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring import rules
from monitoring.importers import run_csv_import
from monitoring.models import Patient

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


@pytest.fixture
def patient() -> Patient:
    """F, born 1990-06-01 (35 on the worked example's terms when the lab was drawn)."""
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex\nKID-1,Doe,Jane,1990-06-01,F\n",
    )
    load(
        "labs",
        "mrn,collected_at,test,value,unit\n"
        f"KID-1,{stamp(60)},creatinine,0.7,mg/dL\n"
        f"KID-1,{stamp(5)},creatinine,80,umol/L\n"
        f"KID-1,{stamp(5)},egfr,82,mL/min/1.73m2\n"
        f"KID-1,{stamp(6)},upcr,0.45,g/g\n"
        f"KID-1,{stamp(7)},potassium,4.1,mmol/L\n"
        f"KID-1,{stamp(8)},magnesium,0.62,mmol/L\n"
        f"KID-1,{stamp(9)},c3,0.9,g/L\n",
    )
    return Patient.objects.get(mrn="KID-1")


def section(body: str, start: str, end: str) -> str:
    i = body.index(start)
    return body[i : body.index(end, i)]


def expected_egfr(patient: Patient) -> str:
    age = rules.age_in_years(patient.birth_date, TODAY - timedelta(days=5))
    scr = rules.creatinine_mg_dl(Decimal("80"), "umol/L")
    return str(rules.round_to(rules.egfr_ckd_epi_2021(scr, age, "F"), 0))


def test_the_patient_page_shows_the_latest_kidney_numbers_with_dates(viewer_client, patient):
    body = viewer_client.get(reverse("monitoring:patient", args=[patient.pk])).content.decode()
    kidney = section(body, 'id="kidney"', "</section>")
    day5 = (TODAY - timedelta(days=5)).isoformat()
    assert "<strong>80 umol/L</strong>" in kidney and day5 in kidney  # latest creatinine
    assert f"<strong>{expected_egfr(patient)} mL/min/1.73m²</strong>" in kidney  # computed
    assert "<strong>82 mL/min/1.73m2</strong>" in kidney  # recorded
    assert "<strong>0.45 g/g</strong>" in kidney
    assert "<strong>4.1 mmol/L</strong>" in kidney
    assert "<strong>0.62 mmol/L</strong>" in kidney
    table = section(kidney, "<table", "</table>")
    assert table.count('<tr><th scope="row">') == 6  # every kidney lab, not C3
    assert "CKD-EPI 2021" in table


def test_the_report_shows_them_too(viewer_client, patient):
    body = viewer_client.get(reverse("monitoring:report", args=[patient.pk])).content.decode()
    kidney = section(body, 'class="report-kidney"', "</section>")
    assert "<strong>80 umol/L</strong>" in kidney
    assert f"<strong>{expected_egfr(patient)} mL/min/1.73m²</strong>" in kidney
    assert "Magnesium: <strong>0.62 mmol/L</strong>" in kidney


def test_a_lab_recorded_on_the_page_shows_up_at_once(clinician_client, patient):
    response = clinician_client.post(
        reverse("monitoring:lab_add", args=[patient.pk]),
        {"collected_at": stamp(1), "test": "potassium", "value": "5.9", "unit": "mmol/L"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    kidney = section(response.content.decode(), 'id="kidney"', "</section>")
    assert "<strong>5.9 mmol/L</strong>" in kidney


def test_the_page_query_count_does_not_grow_with_the_labs(viewer_client, patient):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse("monitoring:patient", args=[patient.pk])
    viewer_client.get(url)  # the session's idle-expiry write happens on the first request
    with CaptureQueriesContext(connection) as few:
        viewer_client.get(url)
    rows = "".join(f"KID-1,{stamp(100 + i)},creatinine,0.{i % 9 + 1},mg/dL\n" for i in range(40))
    load("labs", "mrn,collected_at,test,value,unit\n" + rows)
    with CaptureQueriesContext(connection) as many:
        body = viewer_client.get(url).content.decode()
    assert len(many) == len(few)
    assert body.count("(CKD-EPI 2021)") >= 41
