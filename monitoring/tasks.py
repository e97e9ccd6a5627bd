"""Background tasks (django-tasks). Workers: ``manage.py db_worker``. The work itself lives in
plain modules (jobs.py), so it is tested and called without a task backend too."""

from __future__ import annotations

from django_tasks import task

from . import jobs


@task()
def run_import_job(job_id: int) -> str:
    """Run one confirmed web import (monitoring.jobs.import_job_run)."""
    return jobs.import_job_run(job_id)
