"""Background tasks (django-tasks). Workers: ``manage.py db_worker``. The work itself lives in
plain modules (jobs.py), so it is tested and called without a task backend too."""

from __future__ import annotations

from django_tasks import task

from . import jobs


@task()
def run_import_job(job_id: int) -> str:
    """Run one confirmed web import (monitoring.jobs.import_job_run)."""
    return jobs.import_job_run(job_id)


# Below the import jobs: a file someone waits for goes first; a stale forecast is refitted
# on view meanwhile anyway.
@task(priority=-10)
def refit_forecasts(patient_ids: list[int]) -> int:
    """Refit the forecasts an interface or import write marked stale
    (monitoring.services.patients_refit_marked); returns how many were stored."""
    from .services import patients_refit_marked

    return patients_refit_marked(patient_ids)
