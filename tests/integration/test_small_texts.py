"""Small texts a new user tripped over: plurals, ISO dates in the admin, messages that quote
what was typed, no file jargon on a web form, a 403 that says what to do instead."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from monitoring.models import TroughLevel
from tests.integration.test_patient_page import make_patient, trough
from tests.integration.test_report import load, report_url, sign_off_url, stamp, text_of

pytestmark = pytest.mark.django_db


def words(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape(response.content.decode())))


def test_one_patient_matches_and_two_patients_match(viewer_client):
    make_patient("MRN-1")

    one = words(viewer_client.get(reverse("monitoring:worklist"), {"q": "MRN-1"}))
    make_patient("MRN-12")
    two = words(viewer_client.get(reverse("monitoring:worklist"), {"q": "MRN-1"}))

    assert "1 patient matches the filters" in one
    assert "2 patients match the filters" in two


def test_one_trough_after_a_sign_off_is_it_not_them(clinician_client):
    patient = make_patient()
    clinician_client.post(sign_off_url(patient), {"interpretation": "Fine."})
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,assay,accession\n"
        f"{patient.mrn},{stamp(1)},{stamp(2, 20)},5.1,ng/mL,LCMSMS,NEW-1\n",
    )

    page = text_of(clinician_client.get(report_url(patient)))

    assert "The interpretation may not cover it." in page
    assert "cover them" not in page


def test_the_admin_shows_and_takes_iso_dates(client_for):
    patient = make_patient()
    level = TroughLevel.objects.filter(patient=patient).order_by("collected_at").first()
    client = client_for("data_entry", is_staff=True)

    change = client.get(reverse("admin:monitoring_troughlevel_change", args=[level.pk]))
    listing = client.get(reverse("admin:monitoring_troughlevel_changelist"))

    iso_day = level.collected_at.date().isoformat()
    assert f'value="{iso_day}"' in change.content.decode()
    assert not re.search(r'value="\d\d/\d\d/\d{4}"', change.content.decode())
    assert iso_day in listing.content.decode()


def test_a_future_collection_time_is_quoted_as_typed(clinician_client):
    patient = make_patient()

    response = clinician_client.post(
        reverse("monitoring:level_add", args=[patient.pk]),
        trough(collected_at="2999-01-01T08:00", last_dose_at="2998-12-31T20:00"),
    )

    assert response.status_code == 422
    assert "value '2999-01-01T08:00': is in the future" in words(response)


def test_a_last_dose_after_collection_is_quoted_as_typed(clinician_client):
    patient = make_patient()

    response = clinician_client.post(
        reverse("monitoring:level_add", args=[patient.pk]),
        trough(collected_at=stamp(1), last_dose_at=stamp(1, 9)),
    )

    assert response.status_code == 422
    assert f"value '{stamp(1, 9)}'" in words(response)


def test_a_decimal_comma_on_a_web_form_asks_for_a_point(clinician_client):
    patient = make_patient()

    response = clinician_client.post(
        reverse("monitoring:level_add", args=[patient.pk]), trough(reported_value="5,2")
    )

    assert response.status_code == 422
    text = words(response)
    assert "value '5,2'" in text and "decimal point" in text
    assert "delimited" not in text


def test_the_admin_delete_page_says_to_mark_the_record_entered_in_error(client_for):
    patient = make_patient()
    level = TroughLevel.objects.filter(patient=patient).first()

    response = client_for("superuser").get(
        reverse("admin:monitoring_troughlevel_delete", args=[level.pk])
    )

    assert response.status_code == 403
    assert "entered in error" in response.content.decode()
    assert TroughLevel.objects.filter(pk=level.pk).exists()
