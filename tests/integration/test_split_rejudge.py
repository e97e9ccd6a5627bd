"""Re-judging many patients half in a forked helper process (monitoring/split_work.py):
the stored flags and summaries are exactly those of one process, a helper's failure rolls
the import back, and the helper is never used where it could miss uncommitted writes."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from monitoring import services, split_work, synthetic
from monitoring.importers import run_csv_import
from monitoring.models import Patient, TroughLevel

from .test_partial_rejudge import levels_file, stored_state, trough


def _pids(items):
    return [(item, os.getpid()) for item in items]


def _fails_in_the_helper(parent: int):
    def judge(items):
        if os.getpid() != parent:
            raise ValueError(f"helper refused {len(items)} items")
        return list(items)

    return judge


def test_in_two_joins_both_halves_in_order_the_second_from_another_process():
    answer = split_work.in_two(_pids, list(range(7)))
    assert [item for item, _ in answer] == list(range(7))
    pids = [pid for _, pid in answer]
    assert pids[:3] == [os.getpid()] * 3
    assert len(set(pids[3:])) == 1 and pids[3] != os.getpid()


def test_a_failure_in_the_helper_is_raised_here_with_its_traceback():
    with pytest.raises(split_work.HelperFailed, match="helper refused 3 items"):
        split_work.in_two(_fails_in_the_helper(os.getpid()), [1, 2, 3, 4, 5, 6])


@pytest.mark.django_db
def test_never_inside_an_enclosing_transaction_nor_without_committed_records(settings):
    settings.REJUDGE_SPLIT_MIN = 2
    # pytest-django's test transaction encloses this one: its writes are not committed.
    with transaction.atomic():
        assert not split_work.usable(10, records_committed=True)
    settings.REJUDGE_PROCESSES = 1
    assert not split_work.usable(10_000, records_committed=True)


def test_not_with_uncommitted_writes_or_few_patients(settings):
    settings.REJUDGE_SPLIT_MIN = 50
    assert not split_work.usable(49, records_committed=True)
    assert not split_work.usable(10_000, records_committed=False)


@pytest.fixture
def committed_patients(settings):
    """Eight synthetic patients, committed (a helper reads through its own connection)."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "the test database lives in memory, where no helper process can read it; "
            "these run on PostgreSQL (make test-postgres, and .ci/run)"
        )
    settings.REJUDGE_SPLIT_MIN = 2
    today = timezone.localdate()
    synthetic.seed(
        synthetic.Scenario(
            patients=8, years=3, seed=11, as_of=today, recent_share=0.25, overdue_share=0.25
        )
    )
    return today, list(Patient.objects.order_by("mrn"))


@pytest.fixture
def helper_calls(monkeypatch):
    calls = []
    original = split_work.in_two

    def counted(func, items):
        calls.append(len(items))
        return original(func, items)

    monkeypatch.setattr(split_work, "in_two", counted)
    return calls


def _file(today, patients) -> bytes:
    rows = []
    for i, patient in enumerate(patients):
        rows.append(trough(patient.mrn, today - timedelta(days=1 + i), "3.1", f"SPLIT-{i}-A"))
        rows.append(trough(patient.mrn, today - timedelta(days=30 + i), "5.0", f"SPLIT-{i}-B"))
        rows.append(trough(patient.mrn, today - timedelta(days=600 + i), "7.9", f"SPLIT-{i}-C"))
    return levels_file(rows)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_split_import_stores_what_one_process_stores(committed_patients, helper_calls):
    today, patients = committed_patients
    report = run_csv_import("levels", _file(today, patients))
    assert report.ok and report.written, [str(p) for p in report.problems]
    assert helper_calls == [len(patients)]
    after_import = stored_state()
    # Judged again in full in this process (records_committed is not given): same result.
    services.patients_reassess(Patient.objects.all())
    assert helper_calls == [len(patients)]
    assert stored_state() == after_import
    # Not a comparison of two no-ops: the helper's half was judged and stored.
    last = patients[-1]
    assert TroughLevel.objects.get(accession=f"SPLIT-{len(patients) - 1}-A").range_flag == "below"
    assert Patient.objects.get(pk=last.pk).assessed_on == today


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_daily_refresh_split_stores_what_one_process_stores(committed_patients, helper_calls):
    today, patients = committed_patients
    Patient.objects.update(assessed_on=None, alert_codes="", warning_count=0)
    TroughLevel.objects.update(range_flag="", timing_flag="")
    services.patients_refresh(today, full=True)
    assert helper_calls == [len(patients)]
    split = stored_state()
    services.patients_reassess(Patient.objects.all())
    assert stored_state() == split
    assert TroughLevel.objects.exclude(range_flag="").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_helper_failure_rolls_the_import_back(committed_patients, monkeypatch):
    today, patients = committed_patients
    before = stored_state()
    count = TroughLevel.objects.count()
    judge = services._Judging.verdicts
    parent = os.getpid()

    def failing(self, items):
        if os.getpid() != parent:
            raise ValueError("the helper stops here")
        return judge(self, items)

    monkeypatch.setattr(services._Judging, "verdicts", failing)
    with pytest.raises(split_work.HelperFailed, match="the helper stops here"):
        run_csv_import("levels", _file(today, patients))
    assert TroughLevel.objects.count() == count
    assert stored_state() == before
