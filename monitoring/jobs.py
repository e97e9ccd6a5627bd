"""Web imports as background jobs: create and enqueue, run (with progress), sweep the stale.

The life of a job (models_jobs.ImportJob)::

    queued --(a worker claims it: attempts+1)--> running --> succeeded | failed
       ^                                            |
       +---(sweep: heartbeat older than IMPORT_JOB_STALE_SECONDS, attempts < 3)

``attempts`` is how many times a worker has started the job, and doubles as a fencing
token: every write a run makes to its job (progress, the final state) is a conditional
UPDATE on ``status=running`` and its own attempt number. A run whose job the sweep has
handed to another worker meanwhile finds no row to update; at the end that means it rolls
its import back (``_JobTaken``), so two runs of one file never both keep their rows.

A CSV import marks its job succeeded inside the import's own transaction (run_csv_import's
``before_commit``): the rows and "succeeded" commit together, so a worker killed after the
commit leaves a finished job, never one that the sweep would run a second time. An HL7 file
is kept the same way: run_hl7 inside our transaction, the job marked before it commits.
Imports are idempotent anyway (a re-run of a committed file finds every row unchanged), but
the counts shown would then say "unchanged" instead of "new".
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from .history_reason import change_reason
from .importers import ImportReport, run_csv_import
from .importers.kinds import CREATED, UNCHANGED, UPDATED
from .models import Patient, Source, TroughLevel
from .models_jobs import ImportJob, JobStatus

logger = logging.getLogger(__name__)

HL7 = "hl7"
# A job whose runs keep dying (a file that kills the worker, say) stops being retried.
MAX_ATTEMPTS = 3
# Problems kept in a failed job's result: enough to fix a file, not a copy of a broken one.
MAX_PROBLEMS = 200


class _JobTaken(Exception):
    """The sweep gave this job to another run meanwhile: roll this run's import back."""


def reason(kind: str, name: str) -> str:
    # The same change reason as the import page wrote when it imported during the request.
    return f"web import ({kind}): {name}"


# --- create ------------------------------------------------------------------------------------


def import_job_create(*, kind: str, name: str, data: bytes, user) -> ImportJob:
    """Store the confirmed file as a job and queue its task, both in one transaction: with
    the database task backend the queue is a table, so there is never a job without a
    task or a task without its job."""
    from .tasks import run_import_job  # tasks imports this module

    with transaction.atomic():
        job = ImportJob.objects.create(kind=kind, file_name=name[:255], data=data, created_by=user)
        run_import_job.enqueue(job.pk)
    return job


# --- run ---------------------------------------------------------------------------------------


def _mine(job_id: int, attempt: int):
    return ImportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempt)


def _claim(job_id: int) -> int | None:
    """queued → running; the attempt number, or None when the job is not queued (another
    worker has it, or it has finished)."""
    now = timezone.now()
    with transaction.atomic():
        job = (
            ImportJob.objects.select_for_update()
            .filter(pk=job_id, status=JobStatus.QUEUED)
            .only("attempts")
            .first()
        )
        if job is None:
            return None
        attempt = job.attempts + 1
        claimed = ImportJob.objects.filter(
            pk=job_id, status=JobStatus.QUEUED, attempts=job.attempts
        ).update(
            status=JobStatus.RUNNING,
            attempts=attempt,
            started_at=now,
            heartbeat_at=now,
            error="",
        )
    return attempt if claimed else None


def progress_writer(job_id: int, attempt: int):
    """The ``progress(rows_done, rows_total)`` callback of one run. A plain UPDATE: called
    outside a transaction it commits at once (autocommit) and other connections see it; inside
    the import's transaction it only becomes visible with the rows. ``Greatest`` keeps
    rows_done from going back (a second attempt starts counting from zero again)."""

    def progress(rows_done: int, rows_total: int) -> None:
        _mine(job_id, attempt).update(
            rows_done=Greatest(F("rows_done"), Value(rows_done)),
            rows_total=rows_total,
            heartbeat_at=timezone.now(),
        )

    return progress


class _Heartbeat(threading.Thread):
    """Beats for a run while it works, from a thread of its own (its own connection), so
    a long write transaction, where progress is not written, does not make the job look
    abandoned. A quarter of IMPORT_JOB_STALE_SECONDS apart. On SQLite the beat waits while
    the import holds the write lock; so does any other worker's sweep, which cannot take
    the job meanwhile either."""

    def __init__(self, job_id: int, attempt: int):
        super().__init__(name=f"import-job-{job_id}-heartbeat", daemon=True)
        self.job_id, self.attempt = job_id, attempt
        self.every = max(0.2, settings.IMPORT_JOB_STALE_SECONDS / 4)
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(self.every):
                try:
                    beat = _mine(self.job_id, self.attempt).update(heartbeat_at=timezone.now())
                except DatabaseError:  # SQLite's lock outlasted its busy timeout: next beat
                    logger.warning("import job %s: heartbeat not written", self.job_id)
                    continue
                if not beat:
                    return  # finished, or taken over
        finally:
            connection.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)


def _finish(
    job_id: int, attempt: int, status: str, *, result: dict, error: str = "", rows: int = -1
) -> bool:
    """running → succeeded/failed, if this run still owns the job. The file is emptied: see
    ImportJob.data. ``rows``: every row done (the runner's last progress call comes after
    its commit, when the job is no longer running)."""
    now = timezone.now()
    counted = {"rows_done": rows, "rows_total": rows} if rows >= 0 else {}
    return bool(
        _mine(job_id, attempt).update(
            **counted,
            status=status,
            result=result,
            error=error,
            finished_at=now,
            heartbeat_at=now,
            data=b"",
        )
    )


def _patient_ids(mrns: set[str]) -> list[int]:
    ids: list[int] = []
    names = sorted(mrns)
    for start in range(0, len(names), 500):
        ids += Patient.objects.filter(mrn__in=names[start : start + 500]).values_list(
            "pk", flat=True
        )
    return sorted(ids)


def _unknown_timing(patient_ids: list[int], *, source: str, user, since: datetime) -> list[int]:
    """The troughs this run created without a last-dose time (their timing is unknown until
    someone adds it on the patient page). Read inside the import's transaction, so this run's
    rows are seen; ``since`` and the author keep other imports' rows out."""
    if not patient_ids:
        return []
    ids: list[int] = []
    for start in range(0, len(patient_ids), 500):
        ids += TroughLevel.objects.filter(
            patient_id__in=patient_ids[start : start + 500],
            last_dose_at__isnull=True,
            source=source,
            entered_by=user,
            created_at__gte=since,
        ).values_list("pk", flat=True)
    return sorted(ids)


def _csv_result(report: ImportReport, *, user, since: datetime) -> dict:
    counts = report.counts
    changed = {r.mrn for r in report.rows if r.action in (CREATED, UPDATED)}
    created_mrns = {r.mrn for r in report.rows if r.action == CREATED}
    patients = _patient_ids(changed)
    unknown = []
    if report.kind == "levels":
        unknown = _unknown_timing(
            _patient_ids(created_mrns), source=Source.CSV, user=user, since=since
        )
    return {
        "counts": {
            "new": counts[CREATED],
            "updated": counts[UPDATED],
            "unchanged": counts[UNCHANGED],
        },
        "summary": report.summary(),
        "patients": patients,
        "unknown_timing": unknown,
        "warnings": list(report.warnings),
    }


def _problems_result(problems: list[str], summary: str) -> dict:
    return {
        "problems": problems[:MAX_PROBLEMS],
        "problem_count": len(problems),
        "summary": summary,
    }


def _run_csv(job: ImportJob, attempt: int, since: datetime) -> None:
    def before_commit(report: ImportReport) -> None:
        result = _csv_result(report, user=job.created_by, since=since)
        done = len(report.rows)
        if not _finish(job.pk, attempt, JobStatus.SUCCEEDED, result=result, rows=done):
            raise _JobTaken

    with change_reason(reason(job.kind, job.file_name)):
        report = run_csv_import(
            job.kind,
            bytes(job.data),
            user=job.created_by,
            progress=progress_writer(job.pk, attempt),
            before_commit=before_commit,
            refit="background",
        )
    if not report.ok:
        _finish(
            job.pk,
            attempt,
            JobStatus.FAILED,
            result=_problems_result([str(p) for p in report.problems], report.summary()),
            error="Nothing was imported: the file has errors. Fix them and upload it again.",
        )


def _run_hl7(job: ImportJob, attempt: int, since: datetime) -> None:
    from .views.imports import run_hl7  # the import page's own path, atomic as there

    with change_reason(reason(job.kind, job.file_name)), transaction.atomic():
        results = run_hl7(bytes(job.data), user=job.created_by, write=True)
        ok = bool(results) and all(r.accepted for r in results)
        progress_writer(job.pk, attempt)(len(results), len(results))
        if ok:
            mrns = {r.mrn for r in results if r.written}
            patients = _patient_ids(mrns)
            statuses = [r.status for r in results]
            result = {
                "counts": {s: statuses.count(s) for s in dict.fromkeys(statuses)},
                "summary": f"{len(results)} message(s) accepted",
                "patients": patients,
                "unknown_timing": _unknown_timing(
                    patients, source=Source.HL7, user=job.created_by, since=since
                ),
            }
            if not _finish(job.pk, attempt, JobStatus.SUCCEEDED, result=result):
                raise _JobTaken
            return
    problems = [
        f"message {r.index} ({r.control_id}): {r.reason}" for r in results if not r.accepted
    ]
    if not results:
        problems = ["file: no HL7 message found (each starts with MSH)"]
    _finish(
        job.pk,
        attempt,
        JobStatus.FAILED,
        result=_problems_result(problems, f"{len(problems)} problem(s): nothing imported"),
        error="Nothing was imported: the file has errors. Fix them and upload it again.",
    )


def import_job_run(job_id: int) -> str:
    """Run one queued job to its end (the task's body). Returns the final status."""
    attempt = _claim(job_id)
    if attempt is None:
        return "not queued"
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    # Troughs created from here on by this user are this run's (see _unknown_timing).
    since = job.started_at or timezone.now()
    # Not when the task runs inside a request's transaction (tests' immediate backend):
    # there nothing else can see the job, and a second connection could only wait on it.
    heartbeat = None if connection.in_atomic_block else _Heartbeat(job_id, attempt)
    if heartbeat:
        heartbeat.start()
    try:
        if job.kind == HL7:
            _run_hl7(job, attempt, since)
        else:
            _run_csv(job, attempt, since)
    except _JobTaken:
        logger.warning("import job %s: attempt %s was taken over; rolled back", job_id, attempt)
        return "taken over"
    except Exception as exc:
        # An unexpected failure: the import's transaction has rolled back; say so on the
        # job page, and let the task backend record the traceback.
        _finish(
            job_id,
            attempt,
            JobStatus.FAILED,
            result=_problems_result([], "the import stopped with an error"),
            error=f"The import stopped with an unexpected error ({type(exc).__name__}); "
            "nothing was imported. Try again, or tell the administrator.",
        )
        raise
    finally:
        if heartbeat:
            heartbeat.stop()
    status = ImportJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
    logger.info("import job %s (%s) by user %s: %s", job_id, job.kind, job.created_by_id, status)
    return str(status)


# --- the stale-job sweep (a worker duty) -------------------------------------------------------


def sweep_stale_jobs(now: datetime) -> int:
    """Give running jobs whose worker has gone quiet (no heartbeat for
    IMPORT_JOB_STALE_SECONDS: killed, machine lost) to the queue again, or fail them after
    MAX_ATTEMPTS runs. Several workers run this at once: each change is a conditional UPDATE
    on the state seen, so exactly one of them wins each job. Returns the jobs handled."""
    from .tasks import run_import_job

    limit = now - timedelta(seconds=settings.IMPORT_JOB_STALE_SECONDS)
    handled = 0
    stale = ImportJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=limit).values_list(
        "pk", "attempts", "heartbeat_at"
    )
    for pk, attempts, heartbeat_at in list(stale):
        seen = ImportJob.objects.filter(
            pk=pk, status=JobStatus.RUNNING, attempts=attempts, heartbeat_at=heartbeat_at
        )
        if attempts >= MAX_ATTEMPTS:
            won = seen.update(
                status=JobStatus.FAILED,
                finished_at=now,
                data=b"",
                error=f"The import was started {attempts} times and its worker stopped each "
                "time before finishing; nothing was imported. Split the file into smaller "
                "ones, or tell the administrator.",
            )
        else:
            with transaction.atomic():
                won = seen.update(status=JobStatus.QUEUED)
                if won:
                    run_import_job.enqueue(pk)
        if won:
            handled += 1
            logger.warning(
                "import job %s: worker silent since %s, attempt %s", pk, heartbeat_at, attempts
            )
    return handled


# --- what the job page shows -------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    percent: int
    rate: float | None  # rows per second
    seconds_left: int | None


def job_progress(job: ImportJob, now: datetime | None = None) -> JobProgress:
    total, done = job.rows_total, min(job.rows_done, job.rows_total or job.rows_done)
    percent = int(100 * done / total) if total else (100 if job.finished else 0)
    rate = None
    seconds_left = None
    if job.started_at and job.heartbeat_at and done:
        elapsed = (job.heartbeat_at - job.started_at).total_seconds()
        if elapsed > 0:
            rate = done / elapsed
            if not job.finished and total:
                seconds_left = int(round((total - done) / rate))
    return JobProgress(percent=percent, rate=rate, seconds_left=seconds_left)
