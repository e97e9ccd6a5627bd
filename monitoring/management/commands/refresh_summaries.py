"""python manage.py refresh_summaries [--full]: bring stored verdicts up to date (cron)."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from monitoring.services import patients_refit_stale, patients_refresh


class Command(BaseCommand):
    help = (
        "Re-judge the active patients whose stored summary predates today (run daily after "
        "midnight, so the worklist's first visitor does not wait for it); with --full, every "
        "trough of every active patient (after a restore or a bulk change made outside the site)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="re-judge everything")

    def handle(self, *args, full, **options):
        whole, summary = patients_refresh(timezone.localdate(), full=full)
        self.stdout.write(
            f"Re-judged {whole} patient(s) in full and {summary} by summary "
            f"(as of {timezone.localdate():%Y-%m-%d})."
        )
        refitted = patients_refit_stale()
        if refitted:
            self.stdout.write(f"Refitted {refitted} stale model-informed forecast(s).")
