"""patients/<pk>/fhir.json: the patient's FHIR R4 Bundle as a download."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from monitoring.importers import run_csv_import
from monitoring.models import AccessLog, Patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient() -> Patient:
    assert run_csv_import(
        "patients", b"mrn,family_name,given_name,birth_date,sex\nMRN-7,Doe,Jane,1988-04-12,F\n"
    ).ok
    assert run_csv_import(
        "levels",
        b"mrn,collected_at,last_dose_at,value,unit,accession\n"
        b"MRN-7,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,ACC-1\n"
        b"MRN-7,2025-03-03T08:00,2025-03-02T20:00,<2.0,nmol/L,ACC-2\n",
    ).ok
    return Patient.objects.get()


def url(patient: Patient) -> str:
    return reverse("monitoring:patient_fhir", args=[patient.pk])


def test_a_viewer_downloads_the_bundle_as_fhir_json(viewer_client, patient):
    response = viewer_client.get(url(patient))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="MRN-7-tacrolimus-fhir-')
    assert disposition.endswith('.json"')
    bundle = json.loads(response.content)
    assert bundle["resourceType"] == "Bundle"
    resources = [e["resource"] for e in bundle["entry"]]
    assert resources[0]["identifier"][0]["value"] == "MRN-7"
    assert [r["identifier"][0]["value"] for r in resources[1:]] == ["ACC-1", "ACC-2"]
    assert resources[2]["valueQuantity"]["comparator"] == "<"


def test_the_download_is_in_the_access_log(viewer_client, patient):
    viewer_client.get(url(patient))
    entry = AccessLog.objects.get()
    assert (entry.patient_id, entry.view_name, entry.user) == (
        patient.pk,
        "fhir",
        viewer_client.user,
    )


def test_a_user_without_view_permission_is_refused(user_factory, patient):
    client = Client()
    client.force_login(user_factory())
    assert client.get(url(patient)).status_code == 403
    assert AccessLog.objects.count() == 0


def test_an_unknown_patient_is_404(viewer_client, patient):
    response = viewer_client.get(reverse("monitoring:patient_fhir", args=[patient.pk + 999]))
    assert response.status_code == 404


def test_anonymous_users_go_to_the_login_page(client, patient):
    response = client.get(url(patient))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
