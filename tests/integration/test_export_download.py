"""The contract exports (levels, patients) as web downloads, with the as-of date as a field,
for users allowed to export; the file is exactly what `export_csv` writes."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from monitoring.models import AccessLog
from tests.integration.test_audit import make_patient

pytestmark = pytest.mark.django_db

URL = reverse("monitoring:export")


@pytest.fixture
def patient(user_factory):
    return make_patient(user_factory(groups=["data_entry"]))


def command_output(kind: str, as_of: str) -> str:
    out = io.StringIO()
    call_command("export_csv", kind, "--as-of", as_of, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["levels", "patients"])
def test_the_download_is_the_command_output(client_for, patient, kind):
    client = client_for("data_entry")

    response = client.get(URL, {"kind": kind, "as_of": "2026-01-15"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{kind}-as-of-2026-01-15.csv"'
    )
    assert b"".join(response.streaming_content).decode() == command_output(kind, "2026-01-15")


def test_the_page_offers_both_exports_with_an_as_of_date_field(client_for):
    response = client_for("data_entry").get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'type="date"' in html and 'name="as_of"' in html
    assert 'value="levels"' in html and 'value="patients"' in html
    assert '<label for="id_as_of"' in html


def test_a_bad_as_of_date_is_reported_with_what_was_typed(client_for):
    response = client_for("data_entry").get(URL, {"kind": "levels", "as_of": "2026-02-30"})

    assert response.status_code == 400
    assert "2026-02-30" in response.content.decode()


def test_an_unknown_kind_is_refused(client_for):
    response = client_for("data_entry").get(URL, {"kind": "passwords", "as_of": "2026-01-01"})

    assert response.status_code == 400


@pytest.mark.parametrize("role", ["viewer", "clinician"])
def test_users_not_allowed_to_export_are_refused(client_for, role):
    assert client_for(role).get(URL, {"kind": "levels", "as_of": "2026-01-01"}).status_code == 403


def test_each_exported_patient_is_in_the_access_log(client_for, patient):
    client = client_for("data_entry")

    b"".join(client.get(URL, {"kind": "levels", "as_of": "2026-01-15"}).streaming_content)

    assert AccessLog.objects.filter(
        user=client.user, patient=patient, view_name="export levels"
    ).exists()
    assert AccessLog.objects.get(user=client.user, view_name="export levels search").detail == (
        "as_of=2026-01-15"
    )
