"""The web import's HL7 preview judges by reads only (``import_hl7_messages(...,
validate_only=True)``): the same verdicts as the import run inside a transaction that is
rolled back (how the preview worked before), no write, and no transaction held, so a preview
never blocks, nor waits for, a clinician saving the same patient's records."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from monitoring.importers import run_csv_import
from monitoring.importers.hl7 import ACCEPTED, ERROR, import_hl7_messages
from monitoring.models import LabResult, TroughLevel
from monitoring.views import imports
from tests.integration.test_hl7_import import PATIENTS, SAMPLE, message, obx, text_of
from tests.integration.test_web_import import upload

CREAT = {"code": "2160-0", "unit": "mg/dL^^UCUM", "method": ""}


def creatinine(set_id: int = 2, value: str = "0.92", **kwargs) -> str:
    return obx(set_id, value=value, **{**CREAT, **kwargs})


def rolled_back_import(text: str) -> list:
    """The preview as it was: the import itself, inside an outer transaction rolled back."""
    with transaction.atomic():
        results = import_hl7_messages(text)
        transaction.set_rollback(True)
    return results


def stored() -> tuple:
    return (
        TroughLevel.objects.count(),
        TroughLevel.history.count(),
        LabResult.objects.count(),
        LabResult.history.count(),
    )


FILES = {
    "sample": SAMPLE.read_text(encoding="utf-8"),
    "the same message twice": text_of(
        message("M1", obx(), creatinine()), message("M1", obx(), creatinine())
    ),
    "preliminary then final with another value": text_of(
        message("M1", obx(value="9.0", status="P")), message("M2", obx(value="8.8"))
    ),
    "final then corrected": text_of(
        message("M1", obx(value="5.2")), message("M2", obx(value="6.1", status="C"))
    ),
    "final then another final value": text_of(
        message("M1", obx(value="5.2")), message("M2", obx(value="6.1"))
    ),
    "final then a late preliminary": text_of(
        message("M1", obx(value="5.2")), message("M2", obx(value="7.0", status="P"))
    ),
    # M2 replaces the preliminary, then fails on its creatinine: nothing of it counts, so
    # M3 still meets the preliminary (and M4 the corrected value M3 left).
    "a message in error is forgotten": text_of(
        message("M1", obx(value="9.0", status="P")),
        message("M2", obx(value="8.8"), creatinine(value="abc")),
        message("M3", obx(value="8.1")),
        message("M4", obx(value="8.1"), creatinine()),
    ),
    "results without accession": text_of(
        message("M1", obx(), accession=""),
        message("M2", obx(), accession=""),
        message("M3", obx(value="5.20", unit="ng/mL"), accession=""),
    ),
    "labs twice at the same time": text_of(
        message("M1", creatinine(1, "0.92")),
        message("M2", creatinine(1, "1.40")),
        message("M3", obx(1, "98979-8", ">90", value_type="SN", unit="mL/min/{1.73_m2}")),
    ),
    "unknown patient, garbage, another type, other patient": text_of(
        message("M1", obx(), mrn="MRN-9999"),
        ["this is not HL7"],
        message("M3", obx(), msh9="ADT^A01"),
        message("M4", obx(), mrn="MRN-1002", accession="ACC-2"),
        message("M5", obx(value="abc"), mrn="MRN-1002", accession="ACC-3"),
    ),
}


@pytest.fixture
def patients():
    report = run_csv_import("patients", PATIENTS)
    assert report.ok, report.problems


@pytest.mark.django_db
@pytest.mark.parametrize("name", FILES)
def test_the_preview_gives_the_verdicts_of_the_rolled_back_import(patients, name):
    text = FILES[name]
    before = stored()
    old = rolled_back_import(text)
    assert stored() == before
    new = import_hl7_messages(text, validate_only=True)
    assert stored() == before
    assert new == old  # status, reasons, error code, counts, notes and values of each
    assert any(r.status == ACCEPTED for r in new)


@pytest.mark.django_db
def test_the_preview_judges_against_what_is_stored(patients):
    """The same files again once the first messages are stored for real."""
    import_hl7_messages(text_of(message("M0", obx(value="9.0", status="P"), creatinine())))
    import_hl7_messages(FILES["sample"])
    before = stored()
    for text in FILES.values():
        assert import_hl7_messages(text, validate_only=True) == rolled_back_import(text)
    assert stored() == before
    [result] = import_hl7_messages(
        text_of(message("M9", obx(value="6.0"), creatinine(value="0.95"))), validate_only=True
    )
    assert result.status == ACCEPTED, result.reasons
    assert (result.counts["levels_updated"], result.counts["labs_updated"]) == (1, 1)
    import_hl7_messages(text_of(message("MF", obx(value="5.0"), accession="ACC-F")))
    [result] = import_hl7_messages(
        text_of(message("M9", obx(value="6.0"), accession="ACC-F")), validate_only=True
    )
    assert result.status == ERROR
    assert "differs from the stored result 5.0 ng/mL for accession ACC-F" in result.reason


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_no_query_of_the_preview_runs_inside_a_transaction(patients):
    """On SQLite (IMMEDIATE transactions) a transaction would take the write lock; on
    PostgreSQL it would hold row locks: the preview's queries all run in autocommit."""
    inside: list[str] = []

    def watch(execute, sql, params, many, context):
        if connection.in_atomic_block:
            inside.append(sql)
        return execute(sql, params, many, context)

    text = "".join(FILES.values())
    with connection.execute_wrapper(watch), CaptureQueriesContext(connection) as queries:
        results = import_hl7_messages(text, validate_only=True)
    assert results and len(queries) > 0
    assert inside == []
    assert not any(
        q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for q in queries
    )


def _database_url() -> str:
    params = connection.get_connection_params()
    return psycopg.conninfo.make_conninfo(
        **{k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_preview_does_not_wait_for_another_session_writing_the_same_patient(
    patients, data_entry_client
):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    import_hl7_messages(text_of(message("M0", obx(value="9.0", status="P"))))
    level = TroughLevel.objects.get()
    # Another session changes the patient's result and keeps its transaction open: it holds
    # the row locks of the trough and of the patient. The old preview (a real import rolled
    # back) waited on them, its final result updating that very row, until the lock
    # timeout refused it ("refused by the database"); judged by reads, it waits for nothing.
    with psycopg.connect(_database_url()) as other:
        other.execute("UPDATE monitoring_troughlevel SET assay = assay WHERE id = %s", [level.pk])
        other.execute(
            "SELECT 1 FROM monitoring_patient WHERE id = %s FOR UPDATE", [level.patient_id]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")  # a regression fails, never hangs
        try:
            response = upload(
                data_entry_client, imports.HL7, text_of(message("M1", obx(value="8.8")))
            )
        finally:
            other.rollback()
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
    assert response.status_code == 200
    [row] = response.context["preview"].messages
    assert row.status == ACCEPTED, row.reasons
    assert "1 updated" in row.summary
