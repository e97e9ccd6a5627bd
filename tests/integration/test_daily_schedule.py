"""The worker's daily re-judge (monitoring/schedule.py): when it runs, that it runs once a
day whoever races for it, and what becomes of a claim left unfinished."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands
from django.db import connection, connections
from django.utils import timezone

from monitoring import schedule, services
from monitoring.models import DailyRun, Patient
from monitoring.worker_duties import DUTIES, load_duties
from tdm_site.settings import env_clock


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """An aware instant at a clinic-local clock time."""
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def stale_patient(today: date, mrn: str = "SCHED-1") -> Patient:
    """A patient whose stored summary is yesterday's, with a code no rule produces."""
    patient = Patient.objects.create(
        mrn=mrn,
        family_name="Schedule",
        given_name="Test",
        birth_date=date(1990, 5, 1),
        sex="F",
        therapy_start=today - timedelta(days=400),
    )
    Patient.objects.filter(pk=patient.pk).update(
        assessed_on=today - timedelta(days=1), alert_codes="stale_code"
    )
    return patient


@pytest.fixture
def refresh_at_two(settings):
    settings.DAILY_REFRESH_TIME = time(2, 0)
    settings.TIME_ZONE = "Europe/Berlin"


def test_the_duty_is_registered_for_the_worker():
    assert "monitoring.schedule.run_daily_rejudge" in DUTIES
    assert schedule.run_daily_rejudge in load_duties()
    # `manage.py db_worker` is monitoring's (queue and duties), not django-tasks-db's own.
    assert get_commands()["db_worker"] == "monitoring"


@pytest.mark.django_db
def test_nothing_before_the_refresh_time(refresh_at_two):
    today = timezone.localdate()
    patient = stale_patient(today)

    assert schedule.run_daily_rejudge(at(today, 1, 59)) is None

    assert not DailyRun.objects.exists()
    patient.refresh_from_db()
    assert patient.alert_codes == "stale_code"


@pytest.mark.django_db
def test_after_the_refresh_time_the_day_is_claimed_and_every_stale_patient_rejudged(
    refresh_at_two,
):
    today = timezone.localdate()
    patient = stale_patient(today)
    now = at(today, 2, 0)

    run = schedule.run_daily_rejudge(now, worker_id="worker-a")

    assert run is not None
    assert (run.day, run.worker_id, run.attempts, run.error) == (today, "worker-a", 1, "")
    assert run.started_at == now
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert (run.rejudged_full, run.rejudged_summary) == (0, 1)
    patient.refresh_from_db()
    assert patient.assessed_on == today
    assert patient.alert_codes != "stale_code"
    assert patient.alert_codes == ";".join(services.patient_assess(patient).alerts)


@pytest.mark.django_db
def test_a_second_call_the_same_day_does_nothing(refresh_at_two):
    today = timezone.localdate()
    first = schedule.run_daily_rejudge(at(today, 2, 30), worker_id="worker-a")
    patient = stale_patient(today)  # stale again after the day's run

    assert schedule.run_daily_rejudge(at(today, 23, 59), worker_id="worker-b") is None

    assert list(DailyRun.objects.values_list("pk", "worker_id")) == [(first.pk, "worker-a")]
    patient.refresh_from_db()
    assert patient.alert_codes == "stale_code"


@pytest.mark.django_db
def test_the_next_day_runs_again(refresh_at_two):
    today = timezone.localdate()
    schedule.run_daily_rejudge(at(today, 3), worker_id="worker-a")
    tomorrow = today + timedelta(days=1)

    assert schedule.run_daily_rejudge(at(tomorrow, 1), worker_id="worker-b") is None
    run = schedule.run_daily_rejudge(at(tomorrow, 2, 1), worker_id="worker-b")

    assert run is not None and run.day == tomorrow and run.finished_at is not None
    assert list(DailyRun.objects.order_by("day").values_list("day", flat=True)) == [
        today,
        tomorrow,
    ]


@pytest.mark.django_db
def test_the_day_is_the_clinics_local_date(settings):
    # 23:30 UTC on 1 March is 00:30 on 2 March in Berlin: with the refresh at 00:00 that is
    # already 2 March's run.
    settings.TIME_ZONE = "Europe/Berlin"
    settings.DAILY_REFRESH_TIME = time(0, 0)
    now = datetime(2027, 3, 1, 23, 30, tzinfo=UTC)

    run = schedule.run_daily_rejudge(now, worker_id="w")

    assert run.day == date(2027, 3, 2)


@pytest.mark.django_db
def test_a_refused_insert_leaves_the_surrounding_transaction_usable(refresh_at_two):
    # The window of a race: a worker read "no row", another inserted meanwhile. The insert is
    # refused by the unique day inside its own savepoint, so the test's transaction (on
    # PostgreSQL, aborted by any refused statement outside a savepoint) goes on working.
    today = timezone.localdate()
    now = at(today, 2)
    assert schedule.claim_day(today, now, worker_id="first") is not None

    assert schedule._insert_claim(today, now, "second") is None

    assert list(DailyRun.objects.values_list("worker_id", flat=True)) == ["first"]


@pytest.mark.django_db
def test_a_dead_claim_is_taken_over_after_an_hour_and_only_once(refresh_at_two):
    today = timezone.localdate()
    patient = stale_patient(today)
    now = at(today, 12)
    DailyRun.objects.create(
        day=today, started_at=now - timedelta(minutes=59), worker_id="dead", host="gone"
    )

    assert schedule.run_daily_rejudge(now, worker_id="b") is None  # maybe only slow: wait

    later = now + timedelta(minutes=2)
    run = schedule.run_daily_rejudge(later, worker_id="b")
    assert run is not None
    assert (run.worker_id, run.attempts, run.started_at) == ("b", 2, later)
    assert run.finished_at is not None
    patient.refresh_from_db()
    assert patient.alert_codes != "stale_code"
    # The takeover has finished the day: nobody runs it again.
    assert schedule.run_daily_rejudge(later + timedelta(hours=5), worker_id="c") is None
    assert DailyRun.objects.get().worker_id == "b"


@pytest.mark.django_db
def test_a_takeover_is_won_by_one_worker_only(refresh_at_two):
    # Two workers both read the same dead claim; the conditional UPDATE (matching what each
    # read) changes the row once, so the second finds nothing to take.
    today = timezone.localdate()
    now = at(today, 12)
    DailyRun.objects.create(
        day=today, started_at=now - timedelta(hours=2), worker_id="dead", host="gone"
    )
    seen_by_b = DailyRun.objects.get()
    seen_by_c = DailyRun.objects.get()

    assert schedule._take_over(seen_by_b, now, "b") is True
    assert schedule._take_over(seen_by_c, now, "c") is False

    run = DailyRun.objects.get()
    assert (run.worker_id, run.attempts) == ("b", 2)


@pytest.mark.django_db
def test_a_failing_rejudge_records_its_error_and_is_retried_at_most_three_times(
    refresh_at_two, monkeypatch
):
    today = timezone.localdate()
    now = at(today, 2)

    def broken(day, *, full=False):
        raise RuntimeError("rules exploded")

    monkeypatch.setattr(services, "daily_refresh", broken)
    with pytest.raises(RuntimeError):
        schedule.run_daily_rejudge(now, worker_id="a")
    run = DailyRun.objects.get()
    assert (run.finished_at, run.attempts, run.error) == (None, 1, "RuntimeError: rules exploded")

    # Retried by a takeover an hour later, twice more, then left to the operator.
    for attempt, hours in [(2, 1), (3, 2)]:
        with pytest.raises(RuntimeError):
            schedule.run_daily_rejudge(now + timedelta(hours=hours, minutes=1), worker_id="b")
        assert DailyRun.objects.get().attempts == attempt
    assert schedule.run_daily_rejudge(now + timedelta(hours=9), worker_id="c") is None
    assert DailyRun.objects.get().attempts == 3

    # The next day starts afresh, and a success clears nothing of the day before.
    monkeypatch.undo()
    tomorrow = schedule.run_daily_rejudge(now + timedelta(days=1), worker_id="d")
    assert tomorrow.finished_at is not None and tomorrow.error == ""


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_threads_run_the_day_once(refresh_at_two):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:"):
        # pytest-django's in-memory SQLite is one shared-cache database, whose table locks
        # fail at once instead of waiting: the worker processes test SQLite (a file) instead.
        pytest.skip("in-memory SQLite: see tests/integration/test_worker_processes.py")
    today = timezone.localdate()
    stale_patient(today)
    now = at(today, 2, 5)
    barrier = threading.Barrier(4)
    results: dict[str, object] = {}

    def race(name: str) -> None:
        try:
            barrier.wait()
            results[name] = schedule.run_daily_rejudge(now, worker_id=name)
        except Exception as exc:  # reported below: a thread's exception would vanish
            results[name] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=race, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not [r for r in results.values() if isinstance(r, Exception)], results
    winners = [name for name, r in results.items() if r is not None]
    assert len(winners) == 1, results
    run = DailyRun.objects.get()
    assert run.worker_id == winners[0] and run.attempts == 1 and run.finished_at is not None


def test_the_refresh_time_is_validated_naming_the_setting_and_value(monkeypatch):
    monkeypatch.setenv("DAILY_REFRESH_TIME", "2:30")
    assert env_clock("DAILY_REFRESH_TIME", "02:00") == time(2, 30)
    monkeypatch.delenv("DAILY_REFRESH_TIME")
    assert env_clock("DAILY_REFRESH_TIME", "02:00") == time(2, 0)
    for bad in ["24:00", "2h30", "02:60", "noon", "02:00:00"]:
        monkeypatch.setenv("DAILY_REFRESH_TIME", bad)
        with pytest.raises(ImproperlyConfigured, match=f"DAILY_REFRESH_TIME='{bad}'"):
            env_clock("DAILY_REFRESH_TIME", "02:00")
