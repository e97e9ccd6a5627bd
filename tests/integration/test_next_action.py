"""The next action and the next trough due, as the patient page and the worklist show them
(records built with the CSV importer, dates relative to today)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import Patient

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


def patient_with(value: str, *, dose_hours: int = 12, trough_days_ago: int = 10) -> Patient:
    """IR BID 3 mg/day from 400 days ago, one trough ``dose_hours`` after a dose."""
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start\n"
        f"NA-1,Doe,Jane,1988-04-12,F,ln_maintenance,{TODAY - timedelta(days=700)}\n",
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\nNA-1,{stamp(400, 20)},IR,BID,3\n",
    )
    collected = timezone.make_aware(datetime.fromisoformat(stamp(trough_days_ago)))
    last = (collected - timedelta(hours=dose_hours)).strftime("%Y-%m-%dT%H:%M")
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"NA-1,{stamp(trough_days_ago)},{last},{value},ng/mL,ACC-1\n",
    )
    return Patient.objects.get(mrn="NA-1")


def page(client, patient) -> str:
    response = client.get(reverse("monitoring:patient", args=[patient.pk]))
    assert response.status_code == 200
    return response.content.decode()


def worklist_row(client, patient) -> str:
    body = client.get(reverse("monitoring:worklist")).content.decode()
    start = body.index(f"/patients/{patient.pk}/")
    return body[start : body.index("</tr>", start)]


def test_a_valid_low_trough_asks_for_a_dose_review_due_in_90_days(viewer_client):
    patient = patient_with("3.2")
    body = page(viewer_client, patient)
    assert "Next action</dt><dd><strong>Review dose</strong>" in body
    due = (TODAY + timedelta(days=80)).isoformat()
    assert f'<time datetime="{due}">' in body
    assert "Review dose" in worklist_row(viewer_client, patient)


def test_a_mistimed_high_trough_asks_for_a_correctly_timed_re_check(viewer_client):
    patient = patient_with("7.5", dose_hours=8)  # drawn 4 h early: reads falsely high
    body = page(viewer_client, patient)
    assert "Next action</dt><dd><strong>Re-check a correctly timed trough</strong>" in body
    row = worklist_row(viewer_client, patient)
    assert "Re-check a correctly timed trough" in row and "Review dose" not in row


def test_an_indeterminate_trough_asks_for_a_more_sensitive_assay(viewer_client):
    patient = patient_with("<5.0")
    assert "more sensitive assay" in page(viewer_client, patient)


def test_a_dose_change_after_a_low_trough_asks_for_a_dated_re_check(viewer_client):
    patient = patient_with("3.2")
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\nNA-1,{stamp(2, 20)},IR,BID,4.5\n",
    )
    due = (TODAY - timedelta(days=2) + timedelta(days=14)).isoformat()
    body = page(viewer_client, patient)
    assert f"Re-check trough at steady state, due by {due}" in body
    patient.refresh_from_db()
    assert patient.next_trough_due.isoformat() == due
    row = worklist_row(viewer_client, patient)
    assert f"Re-check trough at steady state, due by {due}" in row
    assert "Review dose" not in row


def test_an_overdue_trough_is_marked_overdue_in_words(viewer_client):
    patient = patient_with("5.0", trough_days_ago=100)
    row = worklist_row(viewer_client, patient)
    assert "overdue" in row
    assert (TODAY - timedelta(days=10)).isoformat() in row


def due_patient(mrn: str, family: str, trough_days_ago: int) -> None:
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start\n"
        f"{mrn},{family},Ann,1980-01-01,F,ln_maintenance,{TODAY - timedelta(days=700)}\n",
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\n{mrn},{stamp(400, 20)},IR,BID,3\n",
    )
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"{mrn},{stamp(trough_days_ago)},{stamp(trough_days_ago + 1, 20)},5.0,ng/mL,A-{mrn}\n",
    )


@pytest.fixture
def due_clinic():
    due_patient("D-OVER", "Over", 100)  # due 10 days ago
    due_patient("D-WEEK", "Week", 87)  # due in 3 days
    due_patient("D-LATER", "=HYPERLINK(1)", 10)  # due in 80 days; a hostile name


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        ("overdue", ["D-OVER"]),
        ("week", ["D-OVER", "D-WEEK"]),
        ("", ["D-LATER", "D-OVER", "D-WEEK"]),
    ],
)
def test_the_worklist_filters_by_next_trough_due(viewer_client, due_clinic, due, expected):
    body = viewer_client.get(reverse("monitoring:worklist"), {"due": due}).content.decode()
    listed = sorted(m for m in ("D-OVER", "D-WEEK", "D-LATER") if m in body)
    assert listed == sorted(expected)


def test_a_bad_due_filter_is_reported_and_ignored(viewer_client, due_clinic):
    response = viewer_client.get(reverse("monitoring:worklist"), {"due": "soon"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "filter ignored" in body and "D-LATER" in body


def test_the_recall_list_is_a_csv_of_overdue_and_due_this_week_logged_per_patient(
    viewer_client, due_clinic
):
    import csv
    import io

    from monitoring.models import AccessLog

    response = viewer_client.get(reverse("monitoring:recall_csv"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["mrn"] for r in rows] == ["D-OVER", "D-WEEK"]  # soonest due first
    assert rows[0]["due"] == "overdue" and rows[1]["due"] == "due this week"
    assert rows[0]["next_trough_due"] == (TODAY - timedelta(days=10)).isoformat()
    logged = AccessLog.objects.filter(view_name="recall list", user=viewer_client.user)
    assert sorted(log.patient.mrn for log in logged) == ["D-OVER", "D-WEEK"]


def test_recall_list_cells_cannot_run_as_formulas(viewer_client, due_clinic):
    import csv
    import io

    response = viewer_client.get(reverse("monitoring:recall_csv"), {"due": "overdue"})
    assert response.status_code == 200
    Patient.objects.filter(mrn="D-OVER").update(family_name="=cmd|'/c calc'!A1")
    response = viewer_client.get(reverse("monitoring:recall_csv"), {"due": "overdue"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["family_name"] == "'=cmd|'/c calc'!A1"
