"""Alert reviews ("dose reviewed", "interaction reviewed"...): the alert stays shown, marked
reviewed, but no longer drives the next action or the worklist rank until new data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import AlertAcknowledgement, Patient

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
HTMX = {"HTTP_HX_REQUEST": "true"}


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


@pytest.fixture
def patient() -> Patient:
    """A valid low trough 10 days ago on 3 mg/day: 'review dose'."""
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start\n"
        f"ACK-1,Doe,Jane,1988-04-12,F,ln_maintenance,{TODAY - timedelta(days=700)}\n",
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\nACK-1,{stamp(400, 20)},IR,BID,3\n",
    )
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"ACK-1,{stamp(10)},{stamp(11, 20)},3.2,ng/mL,ACC-1\n",
    )
    return Patient.objects.get(mrn="ACK-1")


def ack_url(patient: Patient, code: str = "trough_below_range") -> str:
    return reverse("monitoring:alert_acknowledge", args=[patient.pk, code])


def page(client, patient) -> str:
    return client.get(reverse("monitoring:patient", args=[patient.pk])).content.decode()


def test_a_reviewed_alert_stays_shown_but_no_longer_drives_the_action(clinician_client, patient):
    assert "<strong>Review dose</strong>" in page(clinician_client, patient)
    response = clinician_client.post(ack_url(patient), {"note": "adherence discussed"})
    assert response.status_code == 302
    ack = AlertAcknowledgement.objects.get(patient=patient)
    assert (ack.code, ack.note, ack.acknowledged_by) == (
        "trough_below_range",
        "adherence discussed",
        clinician_client.user,
    )
    history = ack.history.get()
    assert history.history_user == clinician_client.user
    assert history.history_change_reason == "dose reviewed"
    body = page(clinician_client, patient)
    assert 'data-alert="trough_below_range"' in body  # still shown
    assert "Dose reviewed</strong> by" in body and "adherence discussed" in body
    assert "<strong>Review dose</strong>" not in body
    patient.refresh_from_db()
    assert patient.acknowledged_codes == "trough_below_range"
    assert patient.warning_count == 0


def test_a_new_trough_brings_the_reviewed_alert_back(clinician_client, patient):
    clinician_client.post(ack_url(patient))
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"ACK-1,{stamp(1)},{stamp(2, 20)},3.0,ng/mL,ACC-2\n",
    )
    patient.refresh_from_db()
    assert patient.acknowledged_codes == ""
    assert "<strong>Review dose</strong>" in page(clinician_client, patient)


def test_a_viewer_cannot_review_and_sees_no_review_button(viewer_client, patient):
    response = viewer_client.post(ack_url(patient))
    assert response.status_code == 403
    assert not AlertAcknowledgement.objects.exists()
    assert "Mark dose reviewed" not in page(viewer_client, patient)


def test_a_review_of_an_alert_the_patient_does_not_have_is_refused(clinician_client, patient):
    response = clinician_client.post(ack_url(patient, "cni_combination"))
    assert response.status_code == 422
    assert "is not a current alert of this patient" in response.content.decode()
    assert not AlertAcknowledgement.objects.exists()


def test_htmx_gets_the_live_fragment(clinician_client, patient):
    response = clinician_client.post(ack_url(patient), {"note": ""}, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="patient-live"')
    assert "Alert marked dose reviewed." in body


def test_the_patient_history_lists_the_review_with_who_and_why(clinician_client, patient):
    clinician_client.post(ack_url(patient), {"note": "adherence discussed"})
    body = clinician_client.get(
        reverse("monitoring:patient_history", args=[patient.pk])
    ).content.decode()
    assert "Alert review" in body
    assert "dose reviewed" in body
    assert clinician_client.user.username in body
