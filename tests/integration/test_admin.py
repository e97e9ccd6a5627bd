"""The back office: data entry validates like the importers, and nothing clinical is deleted."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import Patient, RuleSetting, TroughLevel

pytestmark = pytest.mark.django_db

PATIENTS = (
    b"mrn,family_name,given_name,birth_date,sex,therapy_start\n"
    b"MRN-1,Doe,Jane,1988-04-12,F,2024-09-01\n"
)
REGIMENS = (
    b"mrn,effective_at,formulation,frequency,daily_dose_mg\nMRN-1,2025-01-10T20:00,IR,BID,3\n"
)
LEVELS = (
    b"mrn,collected_at,last_dose_at,value,unit,accession\n"
    b"MRN-1,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,ACC-1\n"
)


@pytest.fixture
def patient():
    for kind, data in (("patients", PATIENTS), ("regimens", REGIMENS), ("levels", LEVELS)):
        assert run_csv_import(kind, data).ok
    return Patient.objects.get(mrn="MRN-1")


@pytest.fixture
def staff(client_for):
    return client_for("data_entry", is_staff=True)


def level_post(patient, **overrides):
    data = {
        "patient": patient.pk,
        "collected_at_0": "2025-03-03",
        "collected_at_1": "08:00",
        "last_dose_at_0": "2025-03-02",
        "last_dose_at_1": "20:00",
        "reported_value": "5.0",
        "reported_unit": "ng/mL",
        "assay": "LCMSMS",
        "accession": "ACC-2",
        "status": "final",
        "error_reason": "",
    }
    data.update(overrides)
    return data


def test_patient_list_shows_latest_trough_and_flags(staff, patient):
    response = staff.get(reverse("admin:monitoring_patient_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "3.20 ng/mL" in body and "below / valid" in body


def test_filter_patients_by_alert(staff, patient):
    url = reverse("admin:monitoring_patient_changelist")
    assert "MRN-1" in staff.get(url, {"alert": "trough_below_range"}).content.decode()
    assert "MRN-1" not in staff.get(url, {"alert": "trough_above_range"}).content.decode()


def test_adding_a_level_in_the_admin_computes_its_flags(staff, patient):
    response = staff.post(reverse("admin:monitoring_troughlevel_add"), level_post(patient))
    assert response.status_code == 302, response.content.decode()[:2000]
    level = TroughLevel.objects.get(accession="ACC-2")
    assert (level.range_flag, level.timing_flag) == ("in_range", "valid")
    assert level.entered_by is not None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reported_unit": "mg/L"}, "value &#x27;mg/L&#x27;: unknown unit"),
        ({"reported_value": "-2"}, "value &#x27;-2&#x27;: must be greater than zero"),
        (
            {"last_dose_at_1": "09:00", "last_dose_at_0": "2025-03-03"},
            "is after the collection time",
        ),
        ({"collected_at_0": "2999-01-01"}, "is in the future"),
    ],
)
def test_admin_rejects_what_the_importer_rejects(staff, patient, overrides, message):
    response = staff.post(
        reverse("admin:monitoring_troughlevel_add"), level_post(patient, **overrides)
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not TroughLevel.objects.filter(accession="ACC-2").exists()


def test_nobody_can_delete_clinical_records_even_a_superuser(client_for, patient):
    admin = client_for("superuser")
    level = TroughLevel.objects.get()
    response = admin.post(
        reverse("admin:monitoring_troughlevel_delete", args=[level.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert TroughLevel.objects.filter(pk=level.pk).exists()


def test_mark_entered_in_error_asks_for_a_reason_and_keeps_the_record(staff, patient):
    level = TroughLevel.objects.get()
    url = reverse("admin:monitoring_troughlevel_changelist")
    form = {"action": "mark_entered_in_error", "_selected_action": [level.pk]}
    asked = staff.post(url, form)
    assert asked.status_code == 200 and "Reason it was entered in error" in asked.content.decode()
    refused = staff.post(url, {**form, "apply": "1", "reason": "  "})
    assert refused.status_code == 200
    level.refresh_from_db()
    assert level.status == "final"
    done = staff.post(url, {**form, "apply": "1", "reason": "wrong patient"})
    assert done.status_code == 302
    level.refresh_from_db()
    assert (level.status, level.error_reason) == ("entered_in_error", "wrong patient")
    assert level.history.count() == 2
    patient.refresh_from_db()
    assert patient.latest_level is None and "trough_below_range" not in patient.alerts


def test_a_viewer_cannot_use_the_admin_to_change_levels(client_for, patient):
    viewer = client_for("viewer", is_staff=True)
    response = viewer.post(reverse("admin:monitoring_troughlevel_add"), level_post(patient))
    assert response.status_code == 403


def test_changing_a_threshold_re_judges_every_patient_on_the_next_worklist(client_for, patient):
    # The fixture's trough was drawn 24 days after the regimen started: at steady state
    # under the default 72 h. Thresholds change verdicts of any patient, not one.
    level = TroughLevel.objects.get(accession="ACC-1")
    assert level.steady_state is True
    setting = RuleSetting.objects.get(key="steady_state_hours")
    admin_client = client_for("superuser")
    response = admin_client.post(
        reverse("admin:monitoring_rulesetting_change", args=[setting.pk]),
        {
            "value": "1000",
            "label": setting.label,
            "evidence": setting.evidence,
            "source": setting.source,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Patient.objects.get(pk=patient.pk).assessed_on is None  # marked for a full re-judge
    assert admin_client.get(reverse("monitoring:worklist")).status_code == 200
    level.refresh_from_db()
    assert level.steady_state is False  # the trough's own flag, not only the summary
    assert Patient.objects.get(pk=patient.pk).assessed_on == timezone.localdate()
