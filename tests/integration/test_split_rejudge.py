"""Re-judging many patients half in a forked helper process (monitoring/split_work.py):
the stored flags and summaries are exactly those of one process, a helper that fails or
hangs has its half judged here instead, and the helper is never used where it could miss
uncommitted writes."""

from __future__ import annotations

import gc
import logging
import os
import re
import time
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


def _in_the_helper(parent: int, act):
    """A ``func`` for ``in_two`` that does ``act(items)`` first when run in the helper."""

    def judge(items):
        if os.getpid() != parent:
            act(items)
        return _pids(items)

    return judge


def _refuse(items):
    raise ValueError(f"helper refused {len(items)} items")


def _hang(items):
    time.sleep(600)  # as a helper stuck on a lock copied by the fork


def test_in_two_joins_every_other_item_from_here_with_the_others_from_another_process():
    answer = split_work.in_two(_pids, list(range(7)))
    assert [item for item, _ in answer] == [0, 2, 4, 6, 1, 3, 5]
    pids = [pid for _, pid in answer]
    assert pids[:4] == [os.getpid()] * 4
    assert len(set(pids[4:])) == 1 and pids[4] != os.getpid()


def _collecting(items):
    return [(item, gc.isenabled()) for item in items]


def test_both_processes_judge_with_the_collector_off_and_it_is_back_on_after():
    # The helper's collector walking the objects it shares would copy their pages.
    assert gc.isenabled()
    answer = split_work.in_two(_collecting, list(range(6)))
    assert answer == [(item, False) for item in [0, 2, 4, 1, 3, 5]]
    assert gc.isenabled()


def test_a_failure_in_the_helper_is_logged_and_its_share_judged_here(caplog):
    with caplog.at_level(logging.WARNING, logger="monitoring.split_work"):
        answer = split_work.in_two(_in_the_helper(os.getpid(), _refuse), [1, 2, 3, 4, 5, 6])
    assert answer == [(item, os.getpid()) for item in [1, 3, 5, 2, 4, 6]]
    assert "helper refused 3 items" in caplog.text  # the helper's traceback, logged


def test_a_helper_that_does_not_answer_is_stopped_and_its_share_judged_here(caplog, monkeypatch):
    monkeypatch.setattr(split_work, "HELPER_GRACE_SECONDS", 0.5)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="monitoring.split_work"):
        answer = split_work.in_two(_in_the_helper(os.getpid(), _hang), [1, 2, 3, 4])
    assert time.monotonic() - started < 30
    assert answer == [(item, os.getpid()) for item in [1, 3, 2, 4]]
    assert "no answer after 0.5 s" in caplog.text
    helper = int(re.search(r"helper (\d+)\)", caplog.text).group(1))
    with pytest.raises(ChildProcessError):  # stopped and collected: no process left behind
        os.waitpid(helper, os.WNOHANG)


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
def test_an_import_whose_helper_fails_stores_what_one_process_stores(
    committed_patients, monkeypatch, caplog
):
    today, patients = committed_patients
    judge = services._Judging.verdicts
    parent = os.getpid()

    def failing(self, items):
        if os.getpid() != parent:
            raise ValueError("the helper stops here")
        return judge(self, items)

    monkeypatch.setattr(services._Judging, "verdicts", failing)
    with caplog.at_level(logging.WARNING, logger="monitoring.split_work"):
        report = run_csv_import("levels", _file(today, patients))
    assert report.ok and report.written, [str(p) for p in report.problems]
    assert "the helper stops here" in caplog.text
    after_import = stored_state()
    monkeypatch.setattr(services._Judging, "verdicts", judge)
    services.patients_reassess(Patient.objects.all())
    assert stored_state() == after_import
    assert TroughLevel.objects.filter(accession__startswith="SPLIT-").count() == 3 * len(patients)
