"""The daily re-judge, run by the background workers themselves (no cron).

Time alone raises alerts (an overdue trough, 36 months reached), so every active patient's
stored summary is judged again once a day (``services.daily_refresh``, the same work as
``manage.py refresh_summaries``). ``run_daily_rejudge`` is a worker duty
(``worker_duties.DUTIES``): every worker calls it every WORKER_DUTY_INTERVAL seconds, and it
does something only when the clinic's local clock (TIME_ZONE) has passed DAILY_REFRESH_TIME
and nobody has claimed the day yet.

Claiming: the day's ``DailyRun`` row is inserted; its unique ``day`` lets one insert win,
however many workers on however many machines race for it (IntegrityError: someone else has
it). The winner runs the re-judge and sets ``finished_at``.

A worker that dies mid-run (killed, machine lost) leaves the day's row without
``finished_at``. Such a claim older than TAKEOVER_AFTER is presumed dead and may be taken
over by another worker, by a conditional UPDATE that matches the claim's ``attempts``: two
workers may both see the dead claim, but the row changes once, so one UPDATE counts a row
and the other none. A re-judge that raises records its error on the row and is retried the
same way, at most MAX_ATTEMPTS claims a day, so a failure that repeats (a bug, bad data)
is retried twice and then left to the operator instead of every hour all day. A claim left
unfinished is never taken over on a later day: that day's own run re-judges everyone.

The re-judge is safe to repeat (patients already judged today are skipped), so a takeover
of a claim that was in fact only slow costs time, not correctness.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from . import services
from .log_filters import database_refusal
from .models_schedule import DailyRun

logger = logging.getLogger(__name__)

# A full re-judge of every trough of 5,000 patients takes about a minute
# (docs/performance.md): a claim an hour old without finished_at is a dead worker, not a slow one.
TAKEOVER_AFTER = timedelta(hours=1)
MAX_ATTEMPTS = 3


def run_daily_rejudge(now: datetime, *, worker_id: str | None = None) -> DailyRun | None:
    """The worker duty: run today's re-judge if it is time and no one else has it.

    Returns the finished run when this call did the work, else None."""
    local = timezone.localtime(now)
    if local.time() < settings.DAILY_REFRESH_TIME:
        return None
    run = claim_day(local.date(), now, worker_id=worker_id or _worker_id())
    if run is None:
        return None
    return _execute(run, now)


def claim_day(day: date, now: datetime, *, worker_id: str) -> DailyRun | None:
    """Take ``day``'s run for this worker: the new row, or a dead claim taken over. None
    when the day is done, running elsewhere, or out of attempts."""
    existing = DailyRun.objects.filter(day=day).first()
    if existing is None:
        # Read first, insert only when there is nothing: every worker looks every few
        # seconds all day, and each refused insert would be an error line in PostgreSQL's log.
        return _insert_claim(day, now, worker_id)
    if (
        existing.finished_at is not None
        or existing.attempts >= MAX_ATTEMPTS
        or existing.started_at > now - TAKEOVER_AFTER
    ):
        logger.debug(
            "Daily re-judge of %s: claimed by worker %s; nothing to do for worker %s.",
            day,
            existing.worker_id,
            worker_id,
        )
        return None
    if not _take_over(existing, now, worker_id):
        return None  # another worker took it over (or finished it) since we read it
    logger.warning(
        "Daily re-judge of %s: claim of worker %s (started %s) unfinished after %s; "
        "worker %s takes it over (attempt %d of %d).",
        day,
        existing.worker_id,
        existing.started_at,
        TAKEOVER_AFTER,
        worker_id,
        existing.attempts + 1,
        MAX_ATTEMPTS,
    )
    return DailyRun.objects.get(pk=existing.pk)


def _take_over(seen: DailyRun, now: datetime, worker_id: str) -> bool:
    """Take over the claim ``seen`` (as read): True if this worker won it."""
    # The row is changed only if it is still as read (same attempts, unfinished). Racing
    # UPDATEs are serialised by the row lock (PostgreSQL re-checks the WHERE on the row the
    # winner wrote) or the database lock (SQLite): one counts a row, the others none.
    return bool(
        DailyRun.objects.filter(
            pk=seen.pk, finished_at__isnull=True, attempts=seen.attempts
        ).update(started_at=now, worker_id=worker_id, host=_host(), attempts=seen.attempts + 1)
    )


def _insert_claim(day: date, now: datetime, worker_id: str) -> DailyRun | None:
    try:
        # atomic: on PostgreSQL a refused INSERT spoils the surrounding transaction; the
        # savepoint (or, outside one, this transaction) is rolled back alone.
        with transaction.atomic():
            return DailyRun.objects.create(
                day=day, started_at=now, worker_id=worker_id, host=_host()
            )
    except IntegrityError:
        # Another worker inserted the day's row first: it runs the re-judge.
        logger.debug("Daily re-judge of %s: worker %s lost the race to claim it.", day, worker_id)
        return None


def _execute(run: DailyRun, now: datetime) -> DailyRun | None:
    logger.info("Daily re-judge of %s: started by worker %s.", run.day, run.worker_id)
    started = time.monotonic()
    mine = DailyRun.objects.filter(pk=run.pk, attempts=run.attempts)
    try:
        counts = services.daily_refresh(run.day)
    except Exception as exc:
        try:
            mine.update(error=_describe(exc)[:500])
        except DatabaseError:
            pass  # the database itself failed: the original error is raised and logged
        raise
    # The duty's clock is the one it was given (tests pass a chosen day): finished_at is
    # that time plus the run's duration, so it never precedes started_at.
    finished = now + timedelta(seconds=time.monotonic() - started)
    updated = mine.update(
        finished_at=finished,
        rejudged_full=counts.whole,
        rejudged_summary=counts.summary,
        refitted=counts.refitted,
        error="",
    )
    if not updated:
        logger.warning(
            "Daily re-judge of %s: worker %s finished after its claim was taken over; "
            "the worker that took it records the run.",
            run.day,
            run.worker_id,
        )
        return None
    logger.info(
        "Daily re-judge of %s done by worker %s: %d patient(s) in full, %d by summary, "
        "%d forecast(s) refitted.",
        run.day,
        run.worker_id,
        counts.whole,
        counts.summary,
        counts.refitted,
    )
    return DailyRun.objects.get(pk=run.pk)


def _describe(exc: Exception) -> str:
    if isinstance(exc, DatabaseError):
        return database_refusal(exc)  # its text may quote a row: class and constraint only
    return f"{type(exc).__name__}: {exc}"


def _worker_id() -> str:
    # db_worker's duty thread carries the worker's --worker-id; elsewhere (a shell, a test)
    # the process id stands in.
    return getattr(threading.current_thread(), "worker_id", None) or f"pid-{os.getpid()}"


def _host() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"[:200]
