"""The web import's CSV preview (``run_csv_import(kind, data, dry_run=True)``) of patients,
regimens, medications and labs judges by reads only (``Context(validate_only=True)``), as the
levels preview and the HL7 preview do: no transaction, no savepoint, no write, so a preview
never holds the SQLite write lock nor PostgreSQL's row and index locks. Its report is the
one the import gives (the same actions, problems and counts), later rows of a file meeting
what the earlier ones would have written, as in the import."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring.importers import ImportReport, run_csv_import
from monitoring.models import ConcomitantDrug, LabResult, Patient, Regimen, TargetAssignment
from tests.integration.test_csv_import import SAMPLES

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

FUTURE = (timezone.localdate() + timedelta(days=30)).isoformat()

PATIENTS_HEADER = (
    "mrn,family_name,given_name,birth_date,sex,height_cm,target_profile,therapy_start,ln_class\n"
)
FILES: dict[str, tuple[str, str]] = {
    "patients sample": ("patients", (SAMPLES / "patients.csv").read_text(encoding="utf-8")),
    # The same MRN again and again: the first row creates it, the later ones meet it as
    # stored (a height of two decimals read back rounded to the column's one), change the
    # target (the first target of a new patient is the profile of its first row) or leave it.
    "patients, one MRN repeated": (
        "patients",
        PATIENTS_HEADER + "PV-1,Doe,Jane,1990-01-01,F,170.25,,2024-01-01,IV\n"
        "PV-1,Doe,Jane,1990-01-01,F,170.25,,2024-01-01,IV\n"
        "PV-1,Doe,Jane,1990-01-01,F,170.3,,2024-01-01,IV\n"
        "PV-1,Doe,Jane,1990-01-01,F,170.3,ln_induction,2024-01-01,IV\n"
        "PV-1,Doe,Jane,1990-01-01,F,170.3,ln_induction,2024-01-01,IV\n"
        "PV-1,Doe,Janet,1990-01-01,F,170.3,LN_INDUCTION,2024-01-01,V\n"
        "PV-2,Roe,Ann,1980-05-05,X,,ln_induction,,\n"
        "PV-2,Roe,Ann,1980-05-05,X,,,,\n"
        "MRN-1001,Doe,Jane,1988-04-12,F,,ln_maintenance,2024-09-01,IV\n"
        "MRN-1001,Doe,Jane,1988-04-12,F,165,ln_induction,2024-09-01,IV\n"
        "MRN-1001,Doe,Jane,1988-04-12,F,165,ln_induction,2024-09-01,IV\n",
    ),
    "patients with bad rows": (
        "patients",
        PATIENTS_HEADER + "PV-3,Doe,Jane,1990-01-01,F,,,,\n"
        f"PV-3,Doe,Jane,{FUTURE},Q,,,,\n"
        "PV-3,Doe,Jane,1990-01-01,F,,no_such_profile,,\n"
        "PV-3,Doe,Janet,1990-01-01,F,20,,,\n"
        "PV-3,Doe,Jane,1990-01-01,F,,ln_induction,,\n"
        "-PV,Doe,Jane,1990-01-01,F,,,,\n"
        "MRN-1002,Roe,Maria,1975-11-30,F,,,2022-02-15,V\n",
    ),
    "regimens sample": ("regimens", (SAMPLES / "regimens.csv").read_text(encoding="utf-8")),
    # One start repeated (the same instant written with an offset too), a dose of three
    # decimals read back with two, and clock times the frequency refuses.
    "regimens, one start repeated": (
        "regimens",
        "mrn,effective_at,formulation,frequency,daily_dose_mg,sampling_hours,dose_times\n"
        "MRN-1001,2025-03-01T08:00,IR,BID,2.125,,08:00;20:00\n"
        "MRN-1001,2025-03-01T08:00,IR,BID,2.125,,08:00;20:00\n"
        "MRN-1001,2025-03-01T08:00,IR,BID,2.13,,08:00;20:00\n"
        "MRN-1001,2025-03-01T08:00:00+00:00,IR,BID,2.13,12.25,08:00;20:00\n"
        "MRN-1001,2025-03-01T08:00,IR,BID,2.13,12.25,\n"
        "MRN-1001,2025-01-10T20:00,IR,BID,3,,\n"
        "MRN-1001,2025-01-10T20:00,IR,BID,3.5,,\n"
        "MRN-1002,2022-08-01T08:00,ER,QD,3,,\n",
    ),
    "regimens with bad rows": (
        "regimens",
        "mrn,effective_at,formulation,frequency,daily_dose_mg,dose_times\n"
        "MRN-1001,2025-04-01T08:00,IR,BID,2,\n"
        "MRN-1001,2025-04-01T08:00,IR,QD,2,08:00;20:00\n"
        "MRN-9999,2025-04-01T08:00,IR,BID,2,\n"
        "MRN-1001,,XR,TID,-1,\n"
        "MRN-1001,2025-04-01T08:00,IR,BID,2.5,\n",
    ),
    # A drug is keyed by its name in any case (``iexact``) and its start.
    "medications, one drug repeated": (
        "medications",
        "mrn,drug,started_on,stopped_on\n"
        "MRN-1001,Fluconazole,2025-01-01,\n"
        "MRN-1001,FLUCONAZOLE,2025-01-01,2025-02-01\n"
        "MRN-1001,fluconazole,2025-01-01,2025-02-01\n"
        "MRN-1001,fluconazole,2025-01-01,2025-02-01\n"
        "MRN-1001,Fluconazole,2025-03-01,\n"
        "MRN-1001,Diltiazem,2025-01-01,\n"
        "MRN-1002,Diltiazem,2025-01-01,\n"
        "MRN-1002,diltiazem,2025-01-01,\n"
        # Another case of a letter outside ASCII: the same drug on PostgreSQL, not on SQLite.
        "MRN-1002,Äthosuximid,2025-01-01,\n"
        "MRN-1002,äthosuximid,2025-01-01,\n",
    ),
    "medications with bad rows": (
        "medications",
        "mrn,drug,started_on,stopped_on\n"
        "MRN-1001,Rifampicin,2025-01-01,\n"
        "MRN-1001,rifampicin,2025-01-01,2024-12-01\n"
        "MRN-1001,,2025-01-01,\n"
        "MRN-9999,Rifampicin,2025-01-01,\n"
        "MRN-1001,RIFAMPICIN,2025-01-01,2025-06-01\n",
    ),
    # A value of five decimals read back with four; the same instant with an offset.
    "labs, one result repeated": (
        "labs",
        "mrn,collected_at,test,value,unit,accession\n"
        "MRN-1001,2025-02-03T08:00,creatinine,0.91234,mg/dL,L1\n"
        "MRN-1001,2025-02-03T08:00,creatinine,0.91234,mg/dL,L1\n"
        "MRN-1001,2025-02-03T08:00:00+00:00,creatinine,0.9123,mg/dL,L1\n"
        "MRN-1001,2025-02-03T08:00,creatinine,0.9123,mg/dL,L2\n"
        "MRN-1001,2025-02-03T08:00,egfr,75,mL/min/1.73m2,\n"
        "MRN-1002,2025-02-03T08:00,creatinine,80,umol/L,\n"
        "MRN-1002,2025-02-03T08:00,creatinine,80,umol/L,\n",
    ),
    "labs with bad rows": (
        "labs",
        "mrn,collected_at,test,value,unit\n"
        "MRN-1001,2025-02-04T08:00,creatinine,1.1,mg/dL\n"
        "MRN-1001,2025-02-04T08:00,creatinine,abc,mg/dL\n"
        f"MRN-1001,{FUTURE}T08:00,creatinine,1.1,mg/dL\n"
        "MRN-1001,2025-02-04T08:00,hct,90,%\n"
        "MRN-9999,2025-02-04T08:00,creatinine,1.1,mg/dL\n"
        "MRN-1001,2025-02-04T08:00,creatinine,1.2,mg/dL\n",
    ),
}
WRITE_SQL = ("INSERT", "UPDATE", "DELETE", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN")


@pytest.fixture
def stored():
    """The sample patients, and one regimen, drug and lab each, so that files meet both
    stored records and their own earlier rows."""
    for kind, text in (
        ("patients", (SAMPLES / "patients.csv").read_text(encoding="utf-8")),
        (
            "regimens",
            "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
            "MRN-1001,2025-01-10T20:00,IR,BID,3\n",
        ),
        ("medications", "mrn,drug,started_on\nMRN-1002,DILTIAZEM,2025-01-01\n"),
        (
            "labs",
            "mrn,collected_at,test,value,unit\nMRN-1002,2025-02-03T08:00,creatinine,81,umol/L\n",
        ),
    ):
        report = run_csv_import(kind, text.encode())
        assert report.ok, report.problems


def snapshot() -> tuple:
    return tuple(
        sorted(map(repr, model.objects.values_list()))
        for model in (Patient, TargetAssignment, Regimen, ConcomitantDrug, LabResult)
    )


def rolled_back_import(kind: str, data: bytes) -> ImportReport:
    """The preview as it was: the import itself, inside a transaction rolled back."""
    with transaction.atomic():
        report = run_csv_import(kind, data)
        transaction.set_rollback(True)
    return replace(report, dry_run=True, written=False)


def watched_preview(kind: str, data: bytes) -> tuple[ImportReport, list[str], list[str]]:
    """A dry run, with the SQL it sent and the statements that ran inside a transaction."""
    inside: list[str] = []

    def watch(execute, sql, params, many, context):
        if connection.in_atomic_block:
            inside.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch), CaptureQueriesContext(connection) as queries:
        report = run_csv_import(kind, data, dry_run=True)
    return report, [q["sql"] for q in queries], inside


def actions(report: ImportReport) -> list[tuple[int, str, str]]:
    return [(r.row, r.action, r.mrn) for r in report.rows]


@pytest.mark.parametrize("name", FILES)
def test_the_preview_writes_nothing_and_holds_no_transaction(stored, name):
    kind, text = FILES[name]
    before = snapshot()
    report, sql, inside = watched_preview(kind, text.encode())
    assert report.rows and sql
    written = [s for s in sql if s.lstrip().upper().startswith(WRITE_SQL)]
    assert written == []
    assert inside == []
    assert snapshot() == before


@pytest.mark.parametrize("name", FILES)
def test_the_preview_gives_the_report_of_the_import(stored, name):
    kind, text = FILES[name]
    data = text.encode()
    old = rolled_back_import(kind, data)
    preview = run_csv_import(kind, data, dry_run=True)
    assert preview == old  # each row's action, mrn, values and problems; the file's
    assert preview.summary() == old.summary()
    real = run_csv_import(kind, data)
    assert actions(real) == actions(preview)
    assert real.problems == preview.problems
    assert real.counts == preview.counts
    assert real.written == preview.ok
    if preview.ok:
        assert real.summary() == replace(preview, dry_run=False).summary()
        # Imported, the file changes nothing more, and its preview says so.
        again = run_csv_import(kind, data, dry_run=True)
        assert again == rolled_back_import(kind, data)
    else:
        assert "nothing imported" in preview.summary()


def test_a_repeated_mrn_is_created_once_and_then_met_as_stored(stored):
    kind, text = FILES["patients, one MRN repeated"]
    preview = run_csv_import(kind, text.encode(), dry_run=True)
    pv1 = [r.action for r in preview.rows if r.mrn == "PV-1"]
    assert pv1[0] == "created"
    assert pv1[3:] == ["updated", "unchanged", "updated"]
    assert [r.action for r in preview.rows if r.mrn == "PV-2"] == ["created", "updated"]
    assert [r.action for r in preview.rows if r.mrn == "MRN-1001"] == [
        "unchanged",
        "updated",
        "unchanged",
    ]
    assert not Patient.objects.filter(mrn__startswith="PV-").exists()
    run_csv_import(kind, text.encode())
    patient = Patient.objects.get(mrn="PV-1")
    assert patient.given_name == "Janet"
    assert patient.targets.get().profile.code == "ln_induction"
    assert Patient.objects.get(mrn="PV-2").targets.get().profile.code == "ln_maintenance"


def test_a_file_with_a_bad_row_previews_every_row_and_imports_nothing(stored):
    kind, text = FILES["regimens with bad rows"]
    before = snapshot()
    preview = run_csv_import(kind, text.encode(), dry_run=True)
    assert [r.action for r in preview.rows] == ["created", "error", "error", "error", "updated"]
    assert {p.row for p in preview.problems} == {3, 4, 5}
    assert run_csv_import(kind, text.encode()).problems == preview.problems
    assert snapshot() == before


def test_a_stored_regimen_s_clock_times_are_checked_against_a_new_frequency(stored):
    stored_times = "mrn,effective_at,formulation,frequency,daily_dose_mg,dose_times\n"
    stored_times += "MRN-1001,2025-05-01T08:00,IR,BID,2,08:00;20:00\n"
    assert run_csv_import("regimens", stored_times.encode()).written
    data = b"mrn,effective_at,formulation,frequency,daily_dose_mg\n"
    data += b"MRN-1001,2025-05-01T08:00,IR,QD,2\n"
    preview = run_csv_import("regimens", data, dry_run=True)
    assert not preview.ok
    assert preview == rolled_back_import("regimens", data)


def _database_url() -> str:
    params = connection.get_connection_params()
    return psycopg.conninfo.make_conninfo(
        **{k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
    )


def test_a_preview_does_not_wait_for_another_session_writing_the_same_patient(stored):
    """Another session holds the write lock (SQLite) or the patient's row lock (PostgreSQL)
    and keeps its transaction open: the preview, which would have waited for it and then
    been refused, judges the file at once."""
    kind, text = FILES["patients, one MRN repeated"]
    data = text.encode()
    expected = rolled_back_import(kind, data)
    patient = Patient.objects.get(mrn="MRN-1001")
    if connection.vendor == "sqlite":
        name = connection.settings_dict["NAME"]
        other = sqlite3.connect(name, uri=name.startswith("file:"), timeout=0)
        other.isolation_level = None
        # The write lock only: in the test's shared-cache database a written table would
        # also refuse readers, which a database file in WAL mode never does.
        other.execute("BEGIN IMMEDIATE")
        try:
            preview = run_csv_import(kind, data, dry_run=True)
        finally:
            other.execute("ROLLBACK")
            other.close()
    elif connection.vendor == "postgresql":
        with psycopg.connect(_database_url()) as other:
            other.execute(
                "UPDATE monitoring_patient SET ln_class = ln_class WHERE id = %s", [patient.pk]
            )
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '3s'")  # a regression fails, never hangs
            try:
                preview = run_csv_import(kind, data, dry_run=True)
            finally:
                other.rollback()
                with connection.cursor() as cursor:
                    cursor.execute("SET lock_timeout = 0")
    else:
        pytest.skip("SQLite and PostgreSQL only")
    assert preview == expected


def test_a_first_patients_file_previews_as_it_imports():
    """Nothing stored yet: every patient new, some of them twice."""
    kind, text = FILES["patients, one MRN repeated"]
    data = text.encode()
    preview, sql, inside = watched_preview(kind, data)
    assert preview.ok and not [s for s in sql if s.lstrip().upper().startswith(WRITE_SQL)]
    assert inside == []
    assert preview == rolled_back_import(kind, data)
    assert actions(run_csv_import(kind, data)) == actions(preview)


def test_a_large_preview_reports_its_progress_outside_any_transaction(stored):
    rows = "".join(f"PV-{i},Doe,Jane,1990-01-01,F,,,,\n" for i in range(2100))
    seen = []
    report = run_csv_import(
        "patients",
        (PATIENTS_HEADER + rows).encode(),
        dry_run=True,
        progress=lambda done, total: seen.append((done, total, connection.in_atomic_block)),
    )
    assert report.ok and report.counts["created"] == 2100
    assert seen == [(1000, 2100, False), (2000, 2100, False), (2100, 2100, False)]
    assert not Patient.objects.filter(mrn__startswith="PV-").exists()
