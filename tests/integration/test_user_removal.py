"""A user who changed clinical records cannot be deleted, only deactivated, so the history
and ``entered_by`` always name a readable author."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import ProtectedError
from django.urls import reverse

from monitoring.audit import patient_history
from tests.integration.test_audit import make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def nurse(user_factory):
    return user_factory(groups=["data_entry"], username="nurse.ana", is_staff=True)


def test_a_user_with_clinical_history_cannot_be_deleted(nurse):
    make_patient(nurse)

    with pytest.raises(ProtectedError, match="deactivate"), transaction.atomic():
        nurse.delete()

    assert get_user_model().objects.filter(pk=nurse.pk).exists()


def test_a_queryset_delete_is_refused_too(nurse):
    make_patient(nurse)

    with pytest.raises(ProtectedError), transaction.atomic():
        get_user_model().objects.filter(pk=nurse.pk).delete()

    assert get_user_model().objects.filter(pk=nurse.pk).exists()


def test_a_user_without_clinical_history_can_be_deleted(user_factory):
    user = user_factory(username="never.worked")

    user.delete()

    assert not get_user_model().objects.filter(username="never.worked").exists()


def test_the_admin_refuses_the_delete_and_says_to_deactivate(client_for, nurse):
    make_patient(nurse)
    admin = client_for("superuser")
    url = reverse("admin:auth_user_delete", args=[nurse.pk])

    page = admin.get(url)
    posted = admin.post(url, {"post": "yes"})

    assert get_user_model().objects.filter(pk=nurse.pk).exists()
    assert "deactivate" in page.content.decode().lower()
    assert posted.status_code in (200, 403)


def test_the_admin_bulk_delete_action_refuses_too(client_for, nurse):
    make_patient(nurse)
    admin = client_for("superuser")

    response = admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [nurse.pk], "post": "yes"},
    )

    assert response.status_code in (200, 302)
    assert get_user_model().objects.filter(pk=nurse.pk).exists()


def test_a_deactivated_author_is_still_named_in_the_history(nurse):
    patient = make_patient(nurse)
    nurse.is_active = False
    nurse.save()

    # The default target is assigned by the system, not by the nurse.
    created = [e for e in patient_history(patient) if e.action == "created" and e.kind != "target"]

    assert len(created) >= 5
    assert {entry.user for entry in created} == {"nurse.ana"}
