"""Background jobs the site runs for its users (imported by models.py; the logic is jobs.py).

An ``ImportJob`` is one confirmed web import: the file itself, who sent it, how far the
worker has come and what came out. The file's bytes live in the database, not on disk:
several app servers and workers share the database and nothing else.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class ImportJob(models.Model):
    kind = models.CharField(max_length=16, help_text="What the file holds: patients, levels, hl7…")
    file_name = models.CharField(max_length=255)
    # The uploaded file, emptied once the job has finished (jobs.py): by then its rows are in
    # their own tables (or refused, with the problems in ``result``), and a second copy of
    # patient data here would only be one more place to protect and purge.
    data = models.BinaryField(default=b"", editable=False)
    # PROTECT: an import names who made it; accounts are deactivated, not deleted.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # {"counts": {...}, "patients": [ids], "unknown_timing": [trough ids], "problems": [...]}
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="importjob_status_beat")]

    def __str__(self) -> str:
        return f"import job {self.pk} ({self.kind}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
