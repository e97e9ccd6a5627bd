"""The audit trail: a patient's change history (who, when, old → new for every clinical
record) and the access log of who opened which patient (superusers, with CSV export)."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring import services
from monitoring.audit import client_ip, log_access, logs_access, patient_history
from monitoring.importers import run_csv_import
from monitoring.models import AccessLog, Patient, TroughLevel

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{TODAY - timedelta(days=days_ago)}T{hour:02d}:00"


def load(kind: str, text: str, user=None) -> None:
    report = run_csv_import(kind, text.encode(), user=user)
    assert report.ok, [str(p) for p in report.problems]


def make_patient(user, mrn: str = "AUD-1", levels: int = 1) -> Patient:
    """A patient with one record of every kind, all entered by ``user``."""
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
        f"{mrn},Doe,Jane,1988-04-12,F,{TODAY - timedelta(days=400)}\n",
        user,
    )
    load(
        "regimens",
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\n{mrn},{stamp(100, 20)},IR,BID,3\n",
        user,
    )
    rows = [
        f"{mrn},{stamp(10 + i)},{stamp(11 + i, 20)},5.{i % 10},ng/mL,ACC-{i}" for i in range(levels)
    ]
    load("levels", "mrn,collected_at,last_dose_at,value,unit,accession\n" + "\n".join(rows), user)
    load(
        "medications", f"mrn,drug,started_on\n{mrn},fluconazole,{TODAY - timedelta(days=5)}\n", user
    )
    load("labs", f"mrn,collected_at,test,value,unit\n{mrn},{stamp(9)},creatinine,0.9,mg/dL\n", user)
    return Patient.objects.get(mrn=mrn)


@pytest.fixture
def nurse(user_factory):
    return user_factory(groups=["data_entry"], username="nurse.ana")


@pytest.fixture
def patient(nurse):
    return make_patient(nurse)


def history_html(client, patient, **params) -> str:
    response = client.get(reverse("monitoring:patient_history", args=[patient.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


# --- the change history ----------------------------------------------------------------------


def test_history_lists_the_creation_of_every_kind_of_record_with_who_entered_it(patient):
    entries = patient_history(patient)

    kinds = {e.kind for e in entries if e.action == "created"}
    assert kinds == {"patient", "target", "regimen", "level", "drug", "lab"}
    # The patient's first target is created by the patients import on its own (kinds.py)
    # and so carries no user.
    assert {e.user for e in entries if e.kind != "target"} == {"nurse.ana"}
    level = next(e for e in entries if e.kind == "level")
    values = {c.field: c.new for c in level.changes}
    assert values["reported value"] == "5.0"
    assert values["value (ng/mL, canonical)"] == "5"  # shown, though not editable
    assert list(values)[-2:] == ["source", "entered by"]
    assert "patient" not in values
    assert values["accession"] == "ACC-0"


def test_history_shows_old_and_new_values_and_the_reason_of_a_correction(
    client_for, patient, user_factory
):
    doctor = user_factory(groups=["clinician"], username="dr.lopez")
    level = TroughLevel.objects.get(patient=patient)
    services.record_mark_in_error(level, reason="sample from the wrong patient", user=doctor)
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex\nAUD-1,Doe-Smith,Jane,1988-04-12,F\n",
        doctor,
    )

    entries = patient_history(patient)

    marked = next(e for e in entries if e.kind == "level" and e.action == "changed")
    assert marked.user == "dr.lopez"
    changes = {c.field: (c.old, c.new) for c in marked.changes}
    assert changes["status"] == ("Final", "Entered in error")
    assert changes["error reason"] == ("—", "sample from the wrong patient")
    renamed = next(e for e in entries if e.kind == "patient" and e.action == "changed")
    assert {c.field: (c.old, c.new) for c in renamed.changes}["family name"] == ("Doe", "Doe-Smith")
    # Newest first.
    assert entries[0].at >= entries[-1].at

    html = history_html(client_for("viewer"), patient)
    assert "dr.lopez" in html
    assert "<del>Final</del> → <ins>Entered in error</ins>" in html
    assert "sample from the wrong patient" in html
    assert "<del>Doe</del> → <ins>Doe-Smith</ins>" in html


def test_history_names_related_records_not_their_ids(patient):
    entries = patient_history(patient, kinds=["target", "drug", "regimen"])

    target = next(e for e in entries if e.kind == "target")
    assert "LN maintenance (KDIGO 2024)" in {c.new for c in target.changes}
    drug = next(e for e in entries if e.kind == "drug")
    assert "fluconazole" in {c.new for c in drug.changes}
    regimen = next(e for e in entries if e.kind == "regimen")
    assert {c.field: c.new for c in regimen.changes}["frequency"] == "Twice daily (BID)"
    assert {c.field: c.new for c in regimen.changes}["entered by"] == "nurse.ana"


def test_history_can_be_filtered_by_kind_of_record(client_for, patient):
    html = history_html(client_for("viewer"), patient, kind="lab")

    assert 'data-history-kind="lab"' in html
    assert 'data-history-kind="level"' not in html
    assert 'aria-current="page">Lab result<' in html


def test_an_unknown_kind_filter_shows_everything(client_for, patient):
    html = history_html(client_for("viewer"), patient, kind="<script>alert(1)</script>")

    assert 'data-history-kind="level"' in html
    assert "<script>alert(1)" not in html


def test_history_needs_a_fixed_number_of_queries_however_long_it_is(
    client_for, nurse, django_assert_max_num_queries
):
    small = make_patient(nurse, "AUD-S", levels=1)
    large = make_patient(nurse, "AUD-L", levels=60)
    client = client_for("viewer")

    with CaptureQueriesContext(connection) as few:
        history_html(client, small)
    with CaptureQueriesContext(connection) as many:
        history_html(client, large)

    assert len(many) == len(few)
    with django_assert_max_num_queries(20):
        history_html(client, large)


def test_history_is_paginated(client_for, nurse):
    patient = make_patient(nurse, "AUD-P", levels=120)

    html = history_html(client_for("viewer"), patient)
    second = history_html(client_for("viewer"), patient, page=2)

    assert "page 1 of 2" in html
    assert 'rel="next"' in html
    assert "page 2 of 2" in second


def test_history_of_an_unknown_patient_is_404(client_for):
    response = client_for("viewer").get(reverse("monitoring:patient_history", args=[999999]))

    assert response.status_code == 404


def test_history_shows_a_system_change_without_a_user(client_for):
    load("patients", "mrn,family_name,given_name,birth_date,sex\nSYS-1,Roe,Ann,1990-01-01,F\n")

    html = history_html(client_for("viewer"), Patient.objects.get(mrn="SYS-1"))

    assert "system (no user)" in html


# --- the access log --------------------------------------------------------------------------


def test_opening_the_history_is_written_to_the_access_log(client_for, patient):
    client = client_for("viewer")

    history_html(client, patient)

    entry = AccessLog.objects.get()
    assert entry.user == client.user
    assert entry.username == client.user.username
    assert entry.patient == patient
    assert entry.view_name == "history"
    assert entry.path == reverse("monitoring:patient_history", args=[patient.pk])
    assert entry.ip == "127.0.0.1"


def test_refused_and_missing_pages_are_not_logged_as_visits(client, client_for, patient):
    url = reverse("monitoring:patient_history", args=[patient.pk])
    client.get(url)  # anonymous: sent to login
    client_for("viewer").get(reverse("monitoring:patient_history", args=[999999]))

    assert not AccessLog.objects.exists()


def _view(status: int):
    @logs_access("report")
    def view(request, pk):
        return HttpResponse(status=status)

    return view


@pytest.mark.parametrize(
    ("method", "status", "htmx", "logged"),
    [
        ("get", 200, False, True),
        ("head", 200, False, True),
        ("get", 403, False, False),
        ("get", 404, False, False),
        ("get", 302, False, False),
        ("post", 200, False, True),  # a write's answer shows the patient too
        ("post", 422, False, True),  # a form re-shown with errors, on the whole page
        ("get", 200, True, True),  # a fragment with no logged visit before it
    ],
)
def test_the_decorator_logs_every_response_that_shows_the_patient(
    patient, nurse, method, status, htmx, logged
):
    request = getattr(RequestFactory(), method)(f"/patients/{patient.pk}/report/")
    request.user = nurse
    request.htmx = htmx

    _view(status)(request, pk=patient.pk)

    assert AccessLog.objects.filter(view_name="report").exists() is logged


def test_log_access_accepts_a_patient_or_its_pk_and_anonymous_requests(patient):
    request = RequestFactory().get("/x/", REMOTE_ADDR="10.1.2.3")
    request.user = AnonymousUser()

    log_access(request, patient, "report")
    log_access(request, patient.pk, "patient")

    rows = AccessLog.objects.order_by("id")
    assert [r.view_name for r in rows] == ["report", "patient"]
    assert {r.username for r in rows} == {""}
    assert {r.ip for r in rows} == {"10.1.2.3"}


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.1"),  # no trusted proxy: the header is ignored
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "198.51.100.7, 203.0.113.9", "203.0.113.9"),  # the client's own claim is skipped
        (2, "198.51.100.7, 203.0.113.9", "198.51.100.7"),
        (1, "not-an-ip", "10.0.0.1"),
        (1, "", "10.0.0.1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_trusts_only_the_configured_proxies(proxies, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    with override_settings(PROXY_COUNT=proxies):
        assert client_ip(request) == expected


def _visits(patient, users) -> None:
    for i, user in enumerate(users):
        AccessLog.objects.create(
            user=user,
            username=user.username,
            patient=patient,
            view_name="patient",
            path=f"/patients/{patient.pk}/",
            ip="10.0.0.1",
            at=timezone.now() - timedelta(days=i),
        )


def test_the_access_log_is_for_superusers_only(client, client_for):
    url = reverse("monitoring:access_log")

    assert client.get(url).status_code == 302
    for role in ("viewer", "clinician", "data_entry"):
        assert client_for(role).get(url).status_code == 403
        assert client_for(role).get(reverse("monitoring:access_log_csv")).status_code == 403
    assert client_for("superuser").get(url).status_code == 200


def test_the_access_log_lists_and_filters_visits(client_for, patient, nurse, user_factory):
    other = make_patient(nurse, "AUD-2")
    bob = user_factory(username="bob")
    _visits(patient, [nurse, bob])
    _visits(other, [bob])
    admin = client_for("superuser")
    url = reverse("monitoring:access_log")

    everything = admin.get(url).content.decode()
    by_mrn = admin.get(url, {"mrn": "aud-2"}).content.decode()
    by_user = admin.get(url, {"user": "nurse.ana"}).content.decode()
    today = admin.get(url, {"since": TODAY.isoformat()}).content.decode()

    assert "3 visits" in everything
    assert "1 visit." in by_mrn and "AUD-2" in by_mrn
    assert "1 visit." in by_user and "nurse.ana" in by_user
    assert "2 visits" in today  # one visit per user today, the rest earlier


def test_a_bad_date_filter_is_reported_not_raised(client_for):
    response = client_for("superuser").get(
        reverse("monitoring:access_log"), {"since": "2026-13-45"}
    )

    assert response.status_code == 400
    assert "is not a valid calendar date" in response.content.decode()
    csv_response = client_for("superuser").get(
        reverse("monitoring:access_log_csv"), {"until": "yesterday"}
    )
    assert csv_response.status_code == 400


def test_the_access_log_exports_as_csv_with_formulas_defused(client_for, patient, user_factory):
    sneaky = user_factory(username="+cmd")
    _visits(patient, [sneaky])

    response = client_for("superuser").get(
        reverse("monitoring:access_log_csv"), {"mrn": patient.mrn}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["at", "username", "mrn", "view", "detail", "path", "ip"]
    assert rows[1][1:] == ["'+cmd", "AUD-1", "patient", "", f"/patients/{patient.pk}/", "10.0.0.1"]


# --- no patient data in logs or error pages --------------------------------------------------

SECRET_NAMES = ("Quixotic", "Zebediah", "LOG-7731")


def _log_text(records) -> str:
    """The records as the console handler writes them, its redaction filter applied."""
    from monitoring.log_filters import RedactDatabaseValues

    formatter = logging.Formatter("%(name)s %(message)s")
    redact = RedactDatabaseValues()
    lines = []
    for record in records:
        redact.filter(record)
        lines.append(formatter.format(record))
    return "\n".join(lines)


def test_no_patient_data_reaches_the_logs_or_error_pages(caplog, client, client_for, monkeypatch):
    caplog.set_level(logging.DEBUG)
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex\nLOG-7731,Quixotic,Zebediah,1988-04-12,F\n",
    )
    patient = Patient.objects.get(mrn="LOG-7731")
    # A file with errors that quote the patient.
    report = run_csv_import(
        "levels", b"mrn,collected_at,value,unit\nLOG-7731,2025-02-03T08:00,Quixotic,Zebediah\n"
    )
    assert not report.ok
    viewer = client_for("viewer")
    pages = [
        viewer.get(reverse("monitoring:patient_history", args=[patient.pk + 1000])),  # 404
        viewer.get(reverse("monitoring:access_log")),  # 403
        viewer.get("/no-such-page/LOG-7731/"),  # 404
        client.post(reverse("login"), {"username": "LOG-7731", "password": "Quixotic"}),
    ]
    # A write the database refuses, quoting the row.
    from django.db import IntegrityError

    def refused(*args, **kwargs):
        raise IntegrityError(
            'duplicate key value violates unique constraint "x"\n'
            "DETAIL:  Key (mrn)=(LOG-7731) already exists."
        )

    monkeypatch.setattr("monitoring.views.audit.patient_history", refused)
    pages.append(viewer.get(reverse("monitoring:patient_history", args=[patient.pk])))

    assert [p.status_code for p in pages] == [404, 403, 404, 200, 409]
    for page in pages[:3] + pages[4:]:
        html = page.content.decode()
        for name in SECRET_NAMES:
            assert name not in html
    logged = _log_text(caplog.records)
    for name in ("Quixotic", "Zebediah"):
        assert name not in logged
    assert "(LOG-7731)" not in logged


def test_a_web_import_does_not_log_the_file_name(caplog, data_entry_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    caplog.set_level(logging.INFO)
    data = b"mrn,family_name,given_name,birth_date,sex\nLOG-1,Doe,Jane,1988-04-12,F\n"
    preview = data_entry_client.post(
        reverse("monitoring:import"),
        {"kind": "patients", "file": SimpleUploadedFile("Quixotic_Zebediah.csv", data)},
    )
    token = re.search(r'name="token" value="([^"]+)"', preview.content.decode()).group(1)

    data_entry_client.post(reverse("monitoring:import_confirm"), {"token": token})

    assert Patient.objects.filter(mrn="LOG-1").exists()
    assert "Quixotic" not in _log_text(caplog.records)
