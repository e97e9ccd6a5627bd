"""``manage.py db_worker``: django-tasks-db's worker, plus the worker duties.

The queue is django-tasks-db's own loop; beside it a daemon thread runs the duties of
monitoring/worker_duties.py every WORKER_DUTY_INTERVAL seconds (its own database
connection, as every thread has in Django). Killing the process kills both: the duties are
built to be re-run by whichever worker comes next.
"""

from __future__ import annotations

import os
import threading

from django.conf import settings
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as QueueCommand

from ... import worker_duties


class DutyThread(threading.Thread):
    def __init__(self, interval: float, worker_id: str = ""):
        super().__init__(name="worker-duties", daemon=True)
        self.interval = interval
        # Duties that record who did the work read it from the thread (schedule.py).
        self.worker_id = worker_id
        self.duties = worker_duties.load_duties()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            worker_duties.run_duties(self.duties)
            self.stopped.wait(self.interval)


class Command(QueueCommand):
    help = "Run a background worker: the task queue, and the worker duties (stale jobs, schedule)"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-duties",
            action="store_false",
            dest="duties",
            help="Only run the queue, not the periodic worker duties.",
        )

    def handle(self, *args, duties: bool = True, **options) -> None:
        # With --reload (the default when DEBUG is on) this runs twice: in the watching parent
        # and in the child that works. Only the child runs the duties.
        reloading_parent = options.get("reload") and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
        if duties and not options.get("batch") and not reloading_parent:
            DutyThread(settings.WORKER_DUTY_INTERVAL, options["worker_id"]).start()
        super().handle(*args, **options)
