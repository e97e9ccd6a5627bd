"""python manage.py refresh_summaries [--full]: bring stored verdicts up to date now.

The background worker does this once a day by itself (``monitoring.schedule``, at
DAILY_REFRESH_TIME); the command is for manual use: right after a change of thresholds,
target profiles or the drug catalogue, or with ``--full`` after a restore."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from monitoring.services import daily_refresh


class Command(BaseCommand):
    help = (
        "Re-judge the active patients whose stored summary predates today (the worker does "
        "it daily by itself; run this after a change of thresholds for an immediate effect); "
        "with --full, every trough of every active patient (after a restore or a bulk change "
        "made outside the site)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="re-judge everything")

    def handle(self, *args, full, **options):
        today = timezone.localdate()
        counts = daily_refresh(today, full=full)
        self.stdout.write(
            f"Re-judged {counts.whole} patient(s) in full and {counts.summary} by summary "
            f"(as of {today:%Y-%m-%d})."
        )
        if counts.refitted:
            self.stdout.write(f"Refitted {counts.refitted} stale model-informed forecast(s).")
