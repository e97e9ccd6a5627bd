"""Duties a background worker runs besides its queue, every WORKER_DUTY_INTERVAL seconds.

Each duty is a plain function taking the current time; it must be safe when several workers
run it at once (they race: a duty claims its work with a database constraint or a row lock,
never with in-process state). A failing duty is logged and does not stop the worker or the
other duties. The worker command (management/commands/db_worker.py) runs them in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# Dotted paths, imported when the worker starts.
DUTIES: list[str] = [
    "monitoring.jobs.sweep_stale_jobs",
]


def load_duties() -> list[Callable[[datetime], object]]:
    return [import_string(path) for path in DUTIES]


def run_duties(duties: list[Callable[[datetime], object]], now: datetime | None = None) -> None:
    now = now or timezone.now()
    for duty in duties:
        try:
            duty(now)
        except Exception:
            logger.exception("worker duty %s failed", getattr(duty, "__name__", duty))
        finally:
            close_old_connections()
