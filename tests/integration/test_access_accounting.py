"""Every response that carries patient data leaves an access-log row, whatever headers the
client sends; bulk reads (worklist, its CSV export, searches) and the back office count too."""

from __future__ import annotations

import pytest
from django.urls import reverse

from monitoring.models import AccessLog, TroughLevel
from tests.integration.test_audit import make_patient

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def nurse(user_factory):
    return user_factory(groups=["data_entry"], username="nurse.ana")


@pytest.fixture
def patient(nurse):
    return make_patient(nurse)


def rows_for(user, **filters):
    return AccessLog.objects.filter(user=user, **filters)


@pytest.mark.parametrize(
    ("url_name", "what"),
    [
        ("monitoring:patient", "patient"),
        ("monitoring:report", "report"),
        ("monitoring:patient_fhir", "fhir"),
        ("monitoring:patient_history", "history"),
    ],
)
def test_an_htmx_header_does_not_escape_the_access_log(client_for, patient, url_name, what):
    client = client_for("viewer")

    response = client.get(reverse(url_name, args=[patient.pk]), **HX)

    assert response.status_code == 200
    assert rows_for(client.user, patient=patient, view_name=what).count() == 1


def test_a_fragment_after_the_logged_page_is_coalesced(client_for, patient):
    client = client_for("viewer")
    url = reverse("monitoring:patient", args=[patient.pk])

    client.get(url)
    client.get(url + "?unit=nmol", **HX)
    client.get(url + "?window=30", **HX)

    assert rows_for(client.user, patient=patient).count() == 1


def test_a_fragment_of_another_patient_is_not_coalesced(client_for, patient, nurse):
    other = make_patient(nurse, mrn="AUD-2")
    client = client_for("viewer")

    client.get(reverse("monitoring:patient", args=[patient.pk]))
    client.get(reverse("monitoring:patient", args=[other.pk]), **HX)

    assert rows_for(client.user, patient=other).count() == 1


def test_a_row_form_opened_without_javascript_is_a_visit(client_for, patient):
    """The row form's GET without htmx renders the whole patient page."""
    client = client_for("clinician")
    level = TroughLevel.objects.filter(patient=patient).first()

    response = client.get(
        reverse("monitoring:level_mark_error", args=[patient.pk, level.pk]), follow=False
    )

    assert response.status_code == 200
    assert rows_for(client.user, patient=patient, view_name="patient").count() == 1


def test_a_refused_trough_shown_on_the_whole_page_is_a_visit(client_for, patient):
    client = client_for("clinician")

    response = client.post(reverse("monitoring:level_add", args=[patient.pk]), {"value": "x"})

    assert response.status_code == 422
    assert rows_for(client.user, patient=patient).count() == 1


# --- bulk reads ------------------------------------------------------------------------------


def test_the_worklist_logs_each_patient_it_lists(client_for, patient, nurse):
    other = make_patient(nurse, mrn="AUD-2")
    client = client_for("viewer")

    assert client.get(reverse("monitoring:worklist")).status_code == 200

    listed = rows_for(client.user, view_name="worklist")
    assert set(listed.values_list("patient_id", flat=True)) == {patient.pk, other.pk}


def test_a_worklist_search_is_logged_even_when_it_finds_nobody(client_for, patient):
    client = client_for("viewer")

    client.get(reverse("monitoring:worklist"), {"q": "Smith-Nobody"}, **HX)

    search = rows_for(client.user, view_name="worklist search").get()
    assert search.patient is None
    assert "Smith-Nobody" in search.detail


def test_a_worklist_search_logs_the_search_and_the_rows_found(client_for, patient):
    client = client_for("viewer")

    client.get(reverse("monitoring:worklist"), {"q": "AUD-1"}, **HX)

    assert rows_for(client.user, view_name="worklist search").get().detail == "q=AUD-1"
    assert rows_for(client.user, view_name="worklist", patient=patient).exists()


def test_the_worklist_csv_export_logs_every_exported_patient(client_for, patient, nurse):
    other = make_patient(nurse, mrn="AUD-2")
    client = client_for("viewer")

    response = client.get(reverse("monitoring:worklist_export"))
    b"".join(response.streaming_content)

    exported = rows_for(client.user, view_name="worklist export")
    assert set(exported.values_list("patient_id", flat=True)) == {patient.pk, other.pk}


def test_the_access_log_page_shows_a_search_without_a_patient(client_for, patient):
    viewer = client_for("viewer")
    viewer.get(reverse("monitoring:worklist"), {"q": "Nobody"})
    admin = client_for("superuser")

    page = admin.get(reverse("monitoring:access_log"))
    csv_text = b"".join(admin.get(reverse("monitoring:access_log_csv")).streaming_content)

    assert page.status_code == 200
    assert "q=Nobody" in page.content.decode()
    assert b"q=Nobody" in csv_text


# --- the back office -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["patient", "troughlevel", "labresult", "concomitantdrug"])
def test_the_admin_change_and_history_pages_are_visits(client_for, patient, model):
    client = client_for("superuser")
    if model == "patient":
        obj_id = patient.pk
    else:
        related = {"troughlevel": "levels", "labresult": "labs", "concomitantdrug": "drugs"}
        obj_id = getattr(patient, related[model]).first().pk

    change = client.get(reverse(f"admin:monitoring_{model}_change", args=[obj_id]))
    history = client.get(reverse(f"admin:monitoring_{model}_history", args=[obj_id]))

    assert change.status_code == history.status_code == 200
    logged = rows_for(client.user, patient=patient)
    assert logged.filter(view_name=f"admin {model}").count() == 1
    assert logged.filter(view_name=f"admin {model} history").count() == 1


def test_the_admin_patient_list_logs_the_patients_shown(client_for, patient):
    client = client_for("superuser")

    response = client.get(reverse("admin:monitoring_patient_changelist"), {"q": "AUD"})

    assert response.status_code == 200
    assert rows_for(client.user, patient=patient, view_name="admin patient list").exists()
    assert rows_for(client.user, view_name="admin patient list search").get().detail == "q=AUD"


def test_a_search_with_a_nul_byte_is_logged_with_the_byte_escaped(client_for, patient):
    client = client_for("viewer")

    response = client.get(reverse("monitoring:worklist"), {"q": "Doe\x00"})
    again = client.get(reverse("monitoring:worklist"))

    assert response.status_code in (200, 400) and again.status_code == 200
    assert rows_for(client.user, view_name="worklist search").get().detail == "q=Doe\\x00"
