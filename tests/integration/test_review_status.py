"""Review status: the latest report sign-off (who, when) and whether troughs arrived since,
on the patient page and as a worklist column."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import Patient

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


def add_trough(days_ago: int, accession: str) -> None:
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"REV-1,{stamp(days_ago)},{stamp(days_ago + 1, 20)},5.0,ng/mL,{accession}\n",
    )


@pytest.fixture
def patient() -> Patient:
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
        f"REV-1,Doe,Jane,1988-04-12,F,{TODAY - timedelta(days=700)}\n",
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\nREV-1,{stamp(400, 20)},IR,BID,3\n",
    )
    add_trough(20, "A-1")
    return Patient.objects.get(mrn="REV-1")


def status_on_page(client, patient) -> str:
    body = client.get(reverse("monitoring:patient", args=[patient.pk])).content.decode()
    start = body.index("data-review-status")
    return body[start : body.index("</dd>", start)]


def worklist_cell(client) -> str:
    body = client.get(reverse("monitoring:worklist")).content.decode()
    start = body.index('class="worklist__review"')
    return body[start : body.index("</td>", start)]


def test_not_signed_off_yet(viewer_client, patient):
    assert "Report not signed off yet" in status_on_page(viewer_client, patient)
    assert "not signed off" in worklist_cell(viewer_client)


def test_signed_off_then_a_new_trough_arrives(client_for, patient):
    clinician = client_for("clinician", first_name="Ana", last_name="Díaz")
    response = clinician.post(
        reverse("monitoring:report_sign_off", args=[patient.pk]),
        {"interpretation": "Stable."},
    )
    assert response.status_code == 302
    status = status_on_page(clinician, patient)
    assert f"Report signed off by Ana Díaz ({clinician.user.username})" in status
    assert "no trough since" in status
    cell = worklist_cell(clinician)
    assert "signed off" in cell and "new trough since" not in cell
    add_trough(1, "A-2")
    status = status_on_page(clinician, patient)
    assert "1 trough arrived since" in status
    assert "new trough since" in worklist_cell(clinician)
