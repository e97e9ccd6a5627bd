"""The worker's duty round: every duty runs, in order, with the same clock; one failing duty
is logged and does not stop the others (a broken schedule must not stop the stale-job sweep)."""

import logging
from datetime import UTC, datetime

from monitoring import worker_duties


def test_every_duty_runs_with_the_same_time_even_after_one_fails(caplog, db):
    # db: the round closes stale database connections after each duty, as a worker must.
    seen = []

    def first(now):
        seen.append(("first", now))

    def broken(now):
        raise RuntimeError("schedule table missing")

    def last(now):
        seen.append(("last", now))

    now = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    with caplog.at_level(logging.ERROR, logger="monitoring.worker_duties"):
        worker_duties.run_duties([first, broken, last], now)

    assert seen == [("first", now), ("last", now)]
    assert "worker duty broken failed" in caplog.text
    assert "schedule table missing" in caplog.text


def test_the_configured_duties_import():
    """A typo in DUTIES would only show when a worker starts: import them all here."""
    duties = worker_duties.load_duties()
    assert len(duties) == len(worker_duties.DUTIES)
    assert all(callable(duty) for duty in duties)
