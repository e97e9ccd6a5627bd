"""The admin never changes a final result's value silently: a new value needs status
`corrected` and a reason (as the import contract asks), kept in the history."""

from __future__ import annotations

import pytest
from django.urls import reverse

from monitoring.models import TroughLevel
from tests.integration.test_admin import level_post, patient, staff  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def level(patient):  # noqa: F811
    return TroughLevel.objects.get(accession="ACC-1")


def change(staff, level, **overrides):  # noqa: F811
    data = level_post(
        level.patient,
        collected_at_0="2025-02-03",
        collected_at_1="08:00",
        last_dose_at_0="2025-02-02",
        last_dose_at_1="20:00",
        reported_value="3.2",
        accession="ACC-1",
        correction_reason="",
    )
    data.update(overrides)
    return staff.post(reverse("admin:monitoring_troughlevel_change", args=[level.pk]), data)


def test_a_final_value_cannot_be_changed_silently(staff, level):  # noqa: F811
    response = change(staff, level, reported_value="6.8")

    assert response.status_code == 200
    html = response.content.decode()
    assert "corrected" in html and "entered in error" in html
    level.refresh_from_db()
    assert level.reported_value == "3.2" and level.status == "final"


def test_a_correction_without_a_reason_is_refused(staff, level):  # noqa: F811
    response = change(staff, level, reported_value="6.8", status="corrected")

    assert response.status_code == 200
    assert "a reason is required" in response.content.decode()
    level.refresh_from_db()
    assert level.reported_value == "3.2"


def test_a_correction_with_status_and_reason_is_saved_with_its_history(staff, level):  # noqa: F811
    response = change(
        staff,
        level,
        reported_value="6.8",
        status="corrected",
        correction_reason="lab re-ran the sample",
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    level.refresh_from_db()
    assert (level.reported_value, level.status) == ("6.8", "corrected")
    latest = level.history.order_by("-history_id").first()
    assert latest.history_change_reason == "lab re-ran the sample"
    assert level.history.order_by("history_id").first().reported_value == "3.2"


def test_other_fields_of_a_final_result_change_without_a_reason(staff, level):  # noqa: F811
    response = change(staff, level, assay="CMIA")

    assert response.status_code == 302, response.content.decode()[:3000]
    level.refresh_from_db()
    assert level.assay == "CMIA"
