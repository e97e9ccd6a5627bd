"""Faults: an unreachable database answers 503 with a plain page; a refused write answers
409/400, never a 500; an import that fails halfway leaves nothing behind; two identical
imports at the same moment create no duplicate (database constraints, PostgreSQL)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
)
from django.urls import reverse
from django.utils import timezone

from monitoring import services
from monitoring.importers import hl7 as hl7_import
from monitoring.importers import kinds, levels, run_csv_import
from monitoring.log_filters import RedactDatabaseValues
from monitoring.models import (
    ConcomitantDrug,
    LabResult,
    Patient,
    Regimen,
    TroughLevel,
)

TODAY = timezone.localdate()
PATIENTS = "mrn,family_name,given_name,birth_date,sex\nF-1,Doe,Jane,1988-04-12,F\n"


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{TODAY - timedelta(days=days_ago)}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


def in_thread(func):
    """Run ``func`` in a new thread (its own database connection); return what it returned."""
    box: dict = {}

    def run():
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the thread did not finish"
    if "error" in box:
        raise box["error"]
    return box["value"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def database_down(monkeypatch):
    """Break the connection settings: connections opened from now on (new threads) fail.
    The test's own, already open connection is left alone."""
    settings_dict = connections["default"].settings_dict
    if connection.vendor == "sqlite":
        monkeypatch.setitem(settings_dict, "NAME", "/nonexistent-directory/tdm.sqlite3")
    else:
        monkeypatch.setitem(settings_dict, "HOST", "127.0.0.1")
        monkeypatch.setitem(settings_dict, "PORT", str(closed_port()))
        monkeypatch.setitem(
            settings_dict, "OPTIONS", {**settings_dict.get("OPTIONS", {}), "connect_timeout": 3}
        )


# --- the database is unreachable -------------------------------------------------------------


@pytest.mark.django_db
def test_with_the_database_unreachable_pages_answer_503_without_a_traceback(
    client_for, database_down
):
    client = client_for("superuser")  # signed in before the outage: the session is in the DB
    # Like a real server, not the test client's habit of re-raising what the handler caught.
    client.raise_request_exception = False

    response = in_thread(lambda: client.get(reverse("admin:index")))

    assert response.status_code == 503
    html = response.content.decode()
    assert "Service unavailable" in html
    assert "Traceback" not in html and "OperationalError" not in html
    assert response["Retry-After"] == "30"
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_with_the_database_unreachable_a_login_attempt_answers_503(client, database_down):
    client.raise_request_exception = False
    response = in_thread(
        lambda: client.post(reverse("login"), {"username": "ana", "password": "whatever"})
    )

    assert response.status_code == 503
    assert "Service unavailable" in response.content.decode()


@pytest.mark.django_db
def test_with_the_database_unreachable_healthz_reports_it(client, database_down):
    response = in_thread(lambda: client.get("/healthz"))

    assert response.status_code == 503
    assert json.loads(response.content) == {"status": "error", "database": "unavailable"}


@pytest.mark.django_db
def test_the_site_recovers_when_the_database_is_back(client, database_down, monkeypatch):
    assert in_thread(lambda: client.get("/healthz")).status_code == 503
    monkeypatch.undo()

    assert in_thread(lambda: client.get("/healthz")).status_code == 200


@pytest.fixture
def patient(db) -> Patient:
    load("patients", PATIENTS)
    return Patient.objects.get(mrn="F-1")


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (OperationalError("server closed the connection unexpectedly"), 503, "Service unavailable"),
        (
            IntegrityError(
                'duplicate key value violates unique constraint "x" '
                "DETAIL: Key (mrn)=(F-1) already exists."
            ),
            409,
            "Nothing was saved",
        ),
        (DataError("value too long for type character varying(20)"), 400, "Nothing was saved"),
    ],
)
def test_a_database_error_inside_a_view_is_a_plain_answer(
    client_for, patient, monkeypatch, error, status, text
):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("monitoring.views.audit.patient_history", broken)

    response = client_for("viewer").get(reverse("monitoring:patient_history", args=[patient.pk]))

    assert response.status_code == status
    html = response.content.decode()
    assert text in html
    assert "F-1" not in html and "DETAIL" not in html and "Traceback" not in html


@pytest.mark.django_db
def test_a_trough_entered_twice_without_accession_is_refused_by_the_database(patient):
    level = dict(
        patient=patient,
        collected_at=timezone.now() - timedelta(days=1),
        reported_value="5.0",
        reported_unit="ng/mL",
        value_ng_ml="5.0000000",
    )
    TroughLevel.objects.create(**level)

    with pytest.raises(IntegrityError):
        TroughLevel.objects.create(**level)


@pytest.mark.django_db
def test_an_entered_in_error_trough_does_not_block_its_corrected_entry(patient):
    level = dict(
        patient=patient,
        collected_at=timezone.now() - timedelta(days=1),
        reported_value="5.0",
        reported_unit="ng/mL",
        value_ng_ml="5.0000000",
    )
    first = TroughLevel.objects.create(**level)
    services.record_mark_in_error(first, reason="wrong tube label")

    TroughLevel.objects.create(**level)

    assert TroughLevel.objects.filter(patient=patient).count() == 2


@pytest.mark.django_db
def test_a_refused_write_is_logged_without_the_values(caplog, patient):
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", ("/x/",), None
    )
    try:
        raise IntegrityError(
            'duplicate key value violates unique constraint "patient_mrn_key"'
            "\nDETAIL:  Key (mrn)=(F-1) already exists."
        )
    except IntegrityError:
        import sys

        record.exc_info = sys.exc_info()

    RedactDatabaseValues().filter(record)

    text = logging.Formatter().format(record)
    assert "F-1" not in text
    assert "IntegrityError (patient_mrn_key)" in text
    assert "Internal Server Error: /x/" in text


def test_connection_errors_keep_their_text_for_the_operator():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "db down", None, None)
    try:
        raise OperationalError('connection to server at "127.0.0.1", port 5999 failed')
    except OperationalError:
        import sys

        record.exc_info = sys.exc_info()

    RedactDatabaseValues().filter(record)

    assert "port 5999" in logging.Formatter().format(record)


# --- an import that fails halfway leaves nothing behind --------------------------------------


def _levels(n: int, accession: bool = True) -> str:
    rows = [
        f"F-1,{stamp(5 + i)},{stamp(6 + i, 20)},5.{i},ng/mL,{f'ACC-{i}' if accession else ''}"
        for i in range(n)
    ]
    return "mrn,collected_at,last_dose_at,value,unit,accession\n" + "\n".join(rows) + "\n"


def _fail_on(monkeypatch, model, call: int, error: BaseException) -> None:
    original = model.save
    calls = {"n": 0}

    def save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(model, "save", save)


def _labs(n: int) -> str:
    rows = [f"F-1,{stamp(5 + i)},creatinine,0.{i + 5},mg/dL" for i in range(n)]
    return "mrn,collected_at,test,value,unit\n" + "\n".join(rows) + "\n"


def _fail_history_insert(monkeypatch, error: BaseException) -> None:
    """Fail the insert of new levels' history rows after the levels went in."""
    original = levels.insert_history

    def fail(records, *args, **kwargs):
        assert TroughLevel.objects.count() == len(records)  # the levels are in by now
        original(records[:1], *args, **kwargs)  # and part of their history
        raise error

    monkeypatch.setattr(levels, "insert_history", fail)


def test_a_database_error_on_the_third_row_imports_nothing(patient, monkeypatch):
    # Labs are written row by row: the third row's refusal is reported against its line.
    _fail_on(monkeypatch, LabResult, 3, DatabaseError("injected failure"))

    report = run_csv_import("labs", _labs(5).encode())

    assert not report.ok
    assert [str(p) for p in report.problems] == [
        "row 4, column -: value '': refused by the database: DatabaseError"
    ]
    assert not report.written
    assert LabResult.objects.count() == 0
    assert LabResult.history.count() == 0


def test_a_database_error_in_the_batched_level_insert_imports_nothing(patient, monkeypatch):
    _fail_history_insert(monkeypatch, DatabaseError("injected failure"))

    report = run_csv_import("levels", _levels(5).encode())

    assert not report.ok
    assert [str(p) for p in report.problems] == ["file: refused by the database: DatabaseError"]
    assert not report.written
    assert TroughLevel.objects.count() == 0
    assert TroughLevel.history.count() == 0


def test_a_crash_in_the_batched_level_insert_imports_nothing(patient, monkeypatch):
    _fail_history_insert(monkeypatch, RuntimeError("a bug"))

    with pytest.raises(RuntimeError):
        run_csv_import("levels", _levels(5).encode())

    assert TroughLevel.objects.count() == 0
    assert TroughLevel.history.count() == 0


def test_the_import_command_failing_halfway_imports_nothing(patient, monkeypatch, tmp_path):
    _fail_history_insert(monkeypatch, DatabaseError("injected failure"))
    path = tmp_path / "levels.csv"
    path.write_text(_levels(5))

    with pytest.raises(SystemExit) as exit_:
        call_command("import_csv", "levels", str(path))

    assert exit_.value.code == 1
    assert TroughLevel.objects.count() == 0


def test_a_constraint_violation_mid_file_imports_nothing(patient, monkeypatch):
    # Make the importer blind to the rows before it, so that the second copy of a result
    # reaches the database: the constraint refuses the batch, the runner reports it, and
    # the first copy is rolled back with the rest.
    monkeypatch.setattr(kinds.LevelImporter, "_find", lambda *a: None)
    rows = _levels(3, accession=False).splitlines()
    data = "\n".join(rows + [rows[2]]) + "\n"

    report = run_csv_import("levels", data.encode())

    assert not report.ok
    assert "refused by the database" in report.problems[0].message
    assert TroughLevel.objects.count() == 0


def test_a_failing_hl7_message_leaves_nothing_of_itself(patient, monkeypatch):
    _fail_on(monkeypatch, LabResult, 1, DatabaseError("injected failure"))
    message = (
        "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20260312093000||ORU^R01|M1|P|2.5.1\r"
        "PID|1||F-1^^^GH^MR||Doe^Jane||19880412|F\r"
        f"OBR|1|O1|ACC-1|77348-1^Tacrolimus^LN|||{(TODAY - timedelta(days=3)):%Y%m%d}0730\r"
        "OBX|1|NM|77348-1^Tacrolimus^LN||5.2|ng/mL|||||F\r"
        "OBX|2|NM|2160-0^Creatinine^LN||0.92|mg/dL|||||F\r"
    )

    results = hl7_import.import_hl7_messages(message)

    assert [r.status for r in results] == [hl7_import.ERROR]
    assert "refused by the database" in results[0].reason
    assert TroughLevel.objects.count() == 0
    assert LabResult.objects.count() == 0


# --- two identical imports at the same moment ------------------------------------------------

ON_SQLITE = connection.vendor == "sqlite"
RACE_SKIP = pytest.mark.skipif(
    ON_SQLITE,
    reason="SQLite lets one writer at a time hold the database, so two imports cannot "
    "overlap; the race and the constraints that settle it are tested on PostgreSQL",
)

RACES = {
    "patients": (PATIENTS.replace("F-1", "F-2"), lambda: Patient.objects.filter(mrn="F-2")),
    "regimens": (
        f"mrn,effective_at,formulation,frequency,daily_dose_mg\nF-1,{stamp(30, 20)},IR,BID,3\n",
        lambda: Regimen.objects.all(),
    ),
    "levels (accession)": (_levels(1), lambda: TroughLevel.objects.all()),
    "levels (no accession)": (_levels(1, accession=False), lambda: TroughLevel.objects.all()),
    "medications": (
        f"mrn,drug,started_on\nF-1,Diflucan,{TODAY - timedelta(days=3)}\n",
        lambda: ConcomitantDrug.objects.all(),
    ),
    "labs": (
        f"mrn,collected_at,test,value,unit\nF-1,{stamp(3)},creatinine,0.9,mg/dL\n",
        lambda: LabResult.objects.all(),
    ),
}


@RACE_SKIP
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("case", list(RACES))
def test_two_identical_imports_at_the_same_moment_create_no_duplicate(case, monkeypatch):
    load("patients", PATIENTS)
    data, rows = RACES[case]
    kind = case.split()[0]
    # Hold both imports just before their first insert, after both have looked for an
    # existing record and found none: the database alone must then keep one.
    barrier = threading.Barrier(2, timeout=20)
    waited = threading.local()
    original = kinds._save_changes

    def racing(record, values, ctx):
        if record.pk is None and not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return original(record, values, ctx)

    monkeypatch.setattr(kinds, "_save_changes", racing)
    # A CSV file's new levels wait for one batched insert: hold that one too.
    original_new = levels.insert_new

    def racing_new(records, ctx):
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return original_new(records, ctx)

    monkeypatch.setattr(levels, "insert_new", racing_new)
    reports: list = [None, None]

    def run(i):
        try:
            reports[i] = run_csv_import(kind, data.encode())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert rows().count() == 1
    written = [r for r in reports if r.written]
    refused = [r for r in reports if not r.ok]
    assert len(written) == 1
    assert len(refused) == 1
    assert "refused by the database" in refused[0].problems[0].message
    # Run again, the loser's file now finds everything in place.
    monkeypatch.undo()
    again = run_csv_import(kind, data.encode())
    assert again.ok and again.counts["unchanged"] == 1
    assert rows().count() == 1


@RACE_SKIP
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_identical_hl7_messages_at_once_store_one_result_and_both_get_aa(monkeypatch):
    load("patients", PATIENTS)
    message = (
        "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20260312093000||ORU^R01|M1|P|2.5.1\r"
        "PID|1||F-1^^^GH^MR||Doe^Jane||19880412|F\r"
        f"OBR|1|O1|ACC-9|77348-1^Tacrolimus^LN|||{(TODAY - timedelta(days=3)):%Y%m%d}0730\r"
        "OBX|1|NM|77348-1^Tacrolimus^LN||5.2|ng/mL|||||F\r"
    )
    barrier = threading.Barrier(2, timeout=20)
    waited = threading.local()
    original = kinds._save_changes

    def racing(record, values, ctx):
        if record.pk is None and not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return original(record, values, ctx)

    monkeypatch.setattr(kinds, "_save_changes", racing)
    results: list = [None, None]

    def run(i):
        try:
            results[i] = hl7_import.import_hl7_messages(message)[0]
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert TroughLevel.objects.filter(accession="ACC-9").count() == 1
    # The loser's message is tried again and finds the result stored: both hear AA.
    assert [r.status for r in results] == [hl7_import.ACCEPTED, hl7_import.ACCEPTED]
    assert not any("Key (" in reason for r in results for reason in r.reasons)
