"""Where a levels import holds a transaction: rows are judged with reads only and no
transaction open (a preview of a large file must block nobody); the writes, the flags and
the caller's ``before_commit`` run in one transaction; ``progress`` is called from outside
it (so a background job's progress row commits and the page sees it, SQLite included)."""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitoring import gc_pause, services
from monitoring.importers import run_csv_import
from monitoring.models import Patient, TroughLevel

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PATIENTS = "mrn,family_name,given_name,birth_date,sex\nTX-1,Doe,Jane,1990-01-01,F\n"


def _levels(n: int) -> bytes:
    today = timezone.localdate()
    rows = [
        f"TX-1,{today - timedelta(days=1 + i // 50)}T07:{i % 50:02d},5.{i % 10},ng/mL,TX{i}"
        for i in range(n)
    ]
    return ("mrn,collected_at,value,unit,accession\n" + "\n".join(rows) + "\n").encode()


@pytest.fixture
def patient():
    assert run_csv_import("patients", PATIENTS.encode()).written
    return Patient.objects.get(mrn="TX-1")


def test_a_levels_preview_holds_no_transaction_and_writes_nothing(patient):
    seen = []
    report = run_csv_import(
        "levels",
        _levels(2500),
        dry_run=True,
        progress=lambda done, total: seen.append((done, total, connection.in_atomic_block)),
    )
    assert report.ok and not report.written
    assert report.counts["created"] == 2500
    assert seen == [(1000, 2500, False), (2000, 2500, False), (2500, 2500, False)]
    assert TroughLevel.objects.count() == 0


def test_an_import_judges_outside_the_write_transaction_and_commits_with_before_commit(patient):
    seen, inside = [], []

    def before_commit(report):
        inside.append((connection.in_atomic_block, TroughLevel.objects.count()))

    report = run_csv_import(
        "levels",
        _levels(2500),
        progress=lambda done, total: seen.append((done, total, connection.in_atomic_block)),
        before_commit=before_commit,
    )
    assert report.written
    assert seen == [(1000, 2500, False), (2000, 2500, False), (2500, 2500, False)]
    # Every row is in (and flagged) when the caller's bookkeeping runs, in the transaction.
    assert inside == [(True, 2500)]
    assert TroughLevel.objects.filter(range_flag="").count() == 0


def test_a_failing_before_commit_rolls_the_rows_back(patient):
    def before_commit(report):
        raise RuntimeError("the job could not mark itself done")

    with pytest.raises(RuntimeError):
        run_csv_import("levels", _levels(10), before_commit=before_commit)
    assert TroughLevel.objects.count() == 0
    assert TroughLevel.history.count() == 0


def test_a_result_changed_by_someone_else_after_the_judging_refuses_the_file(patient, monkeypatch):
    from monitoring.importers import levels

    day = timezone.localdate() - timedelta(days=2)
    first = f"mrn,collected_at,value,unit,accession\nTX-1,{day}T07:30,5.2,ng/mL,A-1\n"
    assert run_csv_import("levels", first.encode()).written
    original = levels.apply_updates

    def meanwhile(updates, ctx):
        # Another import's correction lands between this file's judging and its write.
        TroughLevel.objects.filter(accession="A-1").update(reported_value="7.0")
        return original(updates, ctx)

    monkeypatch.setattr(levels, "apply_updates", meanwhile)
    corrected = first.replace("accession", "accession,status").replace(
        "5.2,ng/mL,A-1", "6.1,ng/mL,A-1,corrected"
    )

    report = run_csv_import("levels", corrected.encode())

    assert not report.written
    assert [str(p) for p in report.problems] == [
        "file: result A-1 was changed by another import meanwhile: nothing imported, "
        "import it again"
    ]
    # (The stand-in for the other import ran inside this file's transaction: undone too.)
    assert TroughLevel.objects.get(accession="A-1").reported_value == "5.2"
    assert TroughLevel.history.filter(accession="A-1").count() == 1


def test_a_file_with_new_and_corrected_results_flags_both_and_keeps_the_history(patient):
    day = timezone.localdate() - timedelta(days=2)
    header = "mrn,collected_at,last_dose_at,value,unit,accession,status\n"
    first = f"TX-1,{day}T07:30,{day - timedelta(days=1)}T19:30,5.2,ng/mL,B-1,final\n"
    assert run_csv_import("levels", (header + first).encode()).written
    corrected = first.replace("5.2", "9.1").replace("final", "corrected")
    new = f"TX-1,{day}T19:30,{day}T07:30,3.1,ng/mL,B-2,final\n"

    report = run_csv_import("levels", (header + corrected + new).encode())

    assert report.written, report.problems
    assert (report.counts["updated"], report.counts["created"]) == (1, 1)
    stored = {t.accession: t for t in TroughLevel.objects.all()}
    assert stored["B-1"].reported_value == "9.1" and stored["B-1"].range_flag == "above"
    # Judged (no regimen on file: the dosing interval, hence the timing, is unknown).
    assert stored["B-2"].range_flag == "below" and stored["B-2"].timing_flag == "unknown"
    assert [h.history_type for h in TroughLevel.history.filter(accession="B-1")] == ["~", "+"]
    assert Patient.objects.get(mrn="TX-1").latest_level_id == stored["B-2"].pk


def test_the_garbage_collector_is_held_off_while_a_file_is_judged_and_written(patient):
    # Its full passes walked every row's objects a dozen times (monitoring/gc_pause.py).
    assert gc.isenabled()
    during = []
    report = run_csv_import(
        "levels",
        _levels(2500),
        progress=lambda done, total: during.append(gc.isenabled()),
        before_commit=lambda report: during.append(gc.isenabled()),
    )
    assert report.written
    # Two progress reports and before_commit inside; the last report comes once it is done.
    assert during == [False, False, False, True]
    assert gc.isenabled()


@pytest.mark.parametrize("kind", ["levels", "patients"])
def test_a_file_of_bad_rows_leaves_no_garbage_for_the_held_off_collector(kind):
    # Each bad row's error is kept for the report; with its traceback and the exception it
    # was raised from, it held the frames that hold it (a cycle per row, 16 objects), which
    # only the collector could free.
    rows = 20_000
    if kind == "levels":
        header = "mrn,collected_at,value,unit"
        lines = [f"NO-{i},2024-01-01T08:00,5.{i % 10},ng/mL" for i in range(rows)]
    else:
        header = "mrn,family_name,given_name,birth_date,sex"
        lines = [f"BD-{i},Doe,Jane,1990-02-30,F" for i in range(rows)]
    data = ("\n".join([header, *lines]) + "\n").encode()
    gc.collect()
    with gc_pause.collector_paused():  # held off here for the patients file too
        report = run_csv_import(kind, data, dry_run=True)
        left_behind = gc.collect()  # an explicit pass runs all the same
    assert len(report.problems) >= rows
    assert left_behind < rows // 10


def test_a_row_by_row_file_keeps_the_garbage_collector():
    # Its model saves leave cyclic garbage on every row, which must not pile up.
    during = []
    report = run_csv_import(
        "patients",
        (
            "mrn,family_name,given_name,birth_date,sex\n"
            + "".join(f"GC-{i},Doe,Jane,1990-01-01,F\n" for i in range(1001))
        ).encode(),
        progress=lambda done, total: during.append(gc.isenabled()),
    )
    assert report.written
    assert during == [True, True]


def test_the_garbage_collector_is_held_off_while_patients_are_judged_again(patient):
    during = []
    services.patients_reassess([patient], store_new=lambda: during.append(gc.isenabled()))
    assert during == [False]
    assert gc.isenabled()
