"""The patient page's record forms through the Django client: for each form the happy
path, the viewer refused, bad input answered with field errors and nothing saved, the htmx
fragments, and a history that names who and why."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import ConcomitantDrug, LabResult, Patient, Regimen, TargetAssignment

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
HTMX = {"HTTP_HX_REQUEST": "true"}


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


@pytest.fixture
def patient() -> Patient:
    """IR BID 3 mg/day; a valid low trough (3.2 ng/mL) 10 days ago; fluconazole ongoing."""
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start\n"
        f"REC-1,Doe,Jane,1988-04-12,F,ln_maintenance,{day(700)}\n",
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\nREC-1,{stamp(400, 20)},IR,BID,3\n",
    )
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"REC-1,{stamp(10)},{stamp(11, 20)},3.2,ng/mL,ACC-1\n",
    )
    load("medications", f"mrn,drug,started_on\nREC-1,pantoprazole,{day(300)}\n")
    return Patient.objects.get(mrn="REC-1")


@dataclass
class Case:
    url_name: str
    good: dict
    bad: dict
    bad_field: str  # the field the error is shown on (its element id: <kind>_<field>)
    bad_words: str
    records: object  # patient -> a queryset whose count grows with a save
    history: object  # patient -> the newest history row of the written record
    kind: str = ""
    extra: dict = field(default_factory=dict)


def _drug_stop_good(patient) -> dict:
    return {
        "drug": str(patient.drugs.get().pk),
        "stopped_on": day(1),
        "reason": "no longer needed",
    }


CASES = {
    "regimen": Case(
        "monitoring:regimen_add",
        {
            "effective_at": stamp(1, 20),
            "formulation": "IR",
            "frequency": "BID",
            "daily_dose_mg": "4.5",
            "reason": "trough 3.2 below target",
        },
        {
            "effective_at": stamp(1, 20),
            "formulation": "IR",
            "frequency": "BID",
            "daily_dose_mg": "450",
            "reason": "typo",
        },
        "daily_dose_mg",
        "value '450'",
        lambda p: Regimen.objects.filter(patient=p),
        lambda p: Regimen.history.filter(patient_id=p.pk).order_by("-history_id").first(),
    ),
    "target": Case(
        "monitoring:target_add",
        {
            "profile": "",  # filled in with the induction profile's pk
            "effective_from": stamp(1, 9),
            "low_override": "",
            "high_override": "",
            "reason": "flare: induction again",
        },
        {
            "profile": "",
            "effective_from": stamp(1, 9),
            "low_override": "5",
            "high_override": "4",
            "reason": "individualised",
        },
        "high_override",
        "must be above the low bound",
        lambda p: TargetAssignment.objects.filter(patient=p),
        lambda p: TargetAssignment.history.filter(patient_id=p.pk).order_by("-history_id").first(),
    ),
    "drug_start": Case(
        "monitoring:drug_start",
        {"name": "Clarithromycin", "started_on": day(2), "stopped_on": "", "reason": "pneumonia"},
        {"name": "Clarithromycin", "started_on": day(2), "stopped_on": day(5), "reason": ""},
        "stopped_on",
        "is before started_on",
        lambda p: ConcomitantDrug.objects.filter(patient=p),
        lambda p: ConcomitantDrug.history.filter(patient_id=p.pk).order_by("-history_id").first(),
    ),
    "drug_stop": Case(
        "monitoring:drug_stop",
        {},  # built from the patient's drug
        {"drug": "", "stopped_on": day(1), "reason": ""},
        "drug",
        "required",
        lambda p: ConcomitantDrug.objects.filter(patient=p, stopped_on__isnull=False),
        lambda p: ConcomitantDrug.history.filter(patient_id=p.pk).order_by("-history_id").first(),
    ),
    "lab": Case(
        "monitoring:lab_add",
        {
            "collected_at": stamp(1),
            "test": "creatinine",
            "value": "1.1",
            "unit": "mg/dL",
            "reason": "",
        },
        {
            "collected_at": stamp(1),
            "test": "creatinine",
            "value": "1.1",
            "unit": "mg/L",
            "reason": "",
        },
        "unit",
        "value 'mg/L'",
        lambda p: LabResult.objects.filter(patient=p),
        lambda p: LabResult.history.filter(patient_id=p.pk).order_by("-history_id").first(),
    ),
    "therapy_end": Case(
        "monitoring:therapy_end",
        {"therapy_end": (TODAY + timedelta(days=400)).isoformat(), "reason": "planned taper"},
        {"therapy_end": day(800), "reason": "x"},
        "therapy_end",
        "is before therapy_start",
        lambda p: Patient.objects.filter(pk=p.pk, therapy_end__isnull=False),
        lambda p: Patient.history.filter(id=p.pk).order_by("-history_id").first(),
    ),
}
KINDS = list(CASES)


def data_for(kind: str, patient: Patient, which: str) -> dict:
    case = CASES[kind]
    data = dict(case.good if which == "good" else case.bad)
    if kind == "target":
        from monitoring.models import TargetProfile

        data["profile"] = str(TargetProfile.objects.get(code="ln_induction").pk)
    if kind == "drug_stop" and which == "good":
        data = _drug_stop_good(patient)
    return data


def url(kind: str, patient: Patient) -> str:
    return reverse(CASES[kind].url_name, args=[patient.pk])


@pytest.mark.parametrize("kind", KINDS)
def test_a_clinician_records_it_and_the_history_names_who_and_why(clinician_client, patient, kind):
    case = CASES[kind]
    before = case.records(patient).count()
    response = clinician_client.post(url(kind, patient), data_for(kind, patient, "good"))
    assert response.status_code == 302
    assert response["Location"].endswith(f"#record-{kind}")
    assert case.records(patient).count() == before + 1
    row = case.history(patient)
    assert row.history_user == clinician_client.user
    reason = data_for(kind, patient, "good").get("reason")
    if reason:
        assert row.history_change_reason == reason
    page = clinician_client.get(response["Location"]).content.decode()
    assert "recorded" in page  # the notice


@pytest.mark.parametrize("kind", KINDS)
def test_a_viewer_may_not_record_and_sees_no_form(viewer_client, patient, kind):
    case = CASES[kind]
    before = case.records(patient).count()
    response = viewer_client.post(url(kind, patient), data_for(kind, patient, "good"))
    assert response.status_code == 403
    assert case.records(patient).count() == before
    page = viewer_client.get(reverse("monitoring:patient", args=[patient.pk])).content.decode()
    assert f'id="record-{kind}"' not in page


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_answered_next_to_the_field_and_nothing_is_saved(
    clinician_client, patient, kind
):
    case = CASES[kind]
    before = case.records(patient).count()
    response = clinician_client.post(url(kind, patient), data_for(kind, patient, "bad"))
    assert response.status_code == 422
    body = html.unescape(response.content.decode())
    assert f'id="{kind}_{case.bad_field}_error"' in body
    assert case.bad_words in body
    assert f'<details id="record-{kind}" class="record-form" open>' in body
    assert case.records(patient).count() == before


@pytest.mark.parametrize("kind", KINDS)
def test_htmx_gets_the_form_alone_on_error_and_the_live_fragment_on_success(
    clinician_client, patient, kind
):
    case = CASES[kind]
    response = clinician_client.post(url(kind, patient), data_for(kind, patient, "bad"), **HTMX)
    assert response.status_code == 200  # htmx swaps 2xx only
    assert response["HX-Retarget"] == f"#record-{kind}"
    assert response["HX-Reswap"] == "outerHTML"
    body = response.content.decode()
    assert body.lstrip().startswith(f'<details id="record-{kind}"')
    assert "<html" not in body
    response = clinician_client.post(url(kind, patient), data_for(kind, patient, "good"), **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="patient-live"')
    assert "recorded" in body
    assert case.records(patient).count() >= 1


def test_data_entry_records_labs_but_not_dose_decisions(data_entry_client, patient):
    response = data_entry_client.post(url("lab", patient), data_for("lab", patient, "good"))
    assert response.status_code == 302
    response = data_entry_client.post(url("regimen", patient), data_for("regimen", patient, "good"))
    assert response.status_code == 403


def test_a_get_leads_to_the_form_on_the_page(clinician_client, patient):
    response = clinician_client.get(url("regimen", patient))
    assert response.status_code == 302
    assert response["Location"].endswith("#record-regimen")


def test_a_dose_change_after_a_low_trough_turns_review_dose_into_a_dated_re_check(
    clinician_client, patient
):
    page_url = reverse("monitoring:patient", args=[patient.pk])
    assert "<strong>Review dose</strong>" in clinician_client.get(page_url).content.decode()
    clinician_client.post(url("regimen", patient), data_for("regimen", patient, "good"))
    due = (TODAY - timedelta(days=1) + timedelta(days=14)).isoformat()
    body = clinician_client.get(page_url).content.decode()
    assert f"Re-check trough at steady state, due by {due}" in body
    assert Regimen.objects.filter(patient=patient).latest("effective_at").note == (
        "trough 3.2 below target"
    )
