"""Target bands and individualised targets are a clinical decision: clinicians and
superusers set them, in the admin and anywhere else; data entry staff only see them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from monitoring.importers import run_csv_import
from monitoring.models import Patient, TargetAssignment, TargetProfile
from tests.integration.test_admin import PATIENTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient():
    assert run_csv_import("patients", PATIENTS).ok
    return Patient.objects.get(mrn="MRN-1")


def target_post(patient) -> dict[str, str]:
    profile = TargetProfile.objects.filter(active=True).first()
    return {
        "patient": patient.pk,
        "profile": profile.pk,
        "effective_from_0": "2025-05-01",
        "effective_from_1": "08:00",
        "low_override": "4",
        "high_override": "6",
        "reason": "tremor at 7 ng/mL",
    }


def test_only_the_clinician_group_holds_the_target_permission():
    holders = {
        g.name
        for g in Group.objects.filter(
            permissions__codename="set_target", permissions__content_type__app_label="monitoring"
        )
    }
    assert holders == {"clinician"}


def test_data_entry_cannot_set_an_individualised_target_in_the_admin(client_for, patient):
    client = client_for("data_entry", is_staff=True)
    before = TargetAssignment.objects.count()

    add = client.post(reverse("admin:monitoring_targetassignment_add"), target_post(patient))

    assert add.status_code == 403
    assert TargetAssignment.objects.count() == before


def test_data_entry_cannot_change_a_target_in_the_admin(client_for, patient):
    client = client_for("data_entry", is_staff=True)
    target = TargetAssignment.objects.get(patient=patient)
    url = reverse("admin:monitoring_targetassignment_change", args=[target.pk])

    client.post(url, target_post(patient))

    target.refresh_from_db()
    assert target.low_override is None


def test_data_entry_cannot_set_a_target_through_the_patient_page_inline(client_for, patient):
    client = client_for("data_entry", is_staff=True)

    page = client.get(reverse("admin:monitoring_patient_change", args=[patient.pk]))

    assert page.status_code == 200
    assert 'name="targets-0-low_override"' not in page.content.decode()


def test_a_clinician_sets_an_individualised_target_in_the_admin(client_for, patient):
    client = client_for("clinician", is_staff=True)

    response = client.post(reverse("admin:monitoring_targetassignment_add"), target_post(patient))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert TargetAssignment.objects.filter(patient=patient, reason="tremor at 7 ng/mL").exists()


def test_only_superusers_change_the_bands_of_a_target_profile(client_for):
    profile = TargetProfile.objects.first()
    url = reverse("admin:monitoring_targetprofile_change", args=[profile.pk])

    refused = client_for("data_entry", is_staff=True).get(url)
    allowed = client_for("superuser").get(url)

    assert 'name="low_ng_ml"' not in refused.content.decode()
    assert 'name="low_ng_ml"' in allowed.content.decode()
