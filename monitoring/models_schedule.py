"""The daily re-judge's record: one row per clinic-local day (``monitoring.schedule``).

The row is also the claim. Every worker tries to insert the day's row once the clinic's
clock has passed DAILY_REFRESH_TIME; the unique ``day`` lets exactly one insert succeed,
on SQLite and PostgreSQL alike, whichever machine the workers run on.
"""

from __future__ import annotations

from django.db import models


class DailyRun(models.Model):
    day = models.DateField(unique=True, help_text="The clinic-local date (TIME_ZONE).")
    started_at = models.DateTimeField(help_text="When the current claim was taken.")
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=64, help_text="db_worker --worker-id of the claim.")
    host = models.CharField(max_length=200, help_text="Host name and process id of the claim.")
    # 1 for the first claim; each takeover of a claim left unfinished adds one, and the
    # conditional UPDATE of a takeover matches on it, so only one worker wins a takeover.
    attempts = models.PositiveSmallIntegerField(default=1)
    rejudged_full = models.PositiveIntegerField(default=0)
    rejudged_summary = models.PositiveIntegerField(default=0)
    refitted = models.PositiveIntegerField(default=0)
    # The last failure's exception class and message (the code's message, not patient data;
    # database errors are recorded by class only, as the logs do).
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        state = "finished" if self.finished_at else "unfinished"
        return f"Daily re-judge of {self.day} ({state}, worker {self.worker_id})"
