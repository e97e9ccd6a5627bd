"""python manage.py import_csv KIND FILE [--dry-run]"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from monitoring.importers import run_csv_import
from monitoring.importers.kinds import IMPORTERS

# A progress line (stderr) every this many rows, so a large file shows it is moving.
PROGRESS_LINE_EVERY = 10_000


class Command(BaseCommand):
    help = "Import a CSV file (atomic: a file with any bad row imports nothing)."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(IMPORTERS))
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="validate and count only")

    def handle(self, *args, kind, file, dry_run, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        report = run_csv_import(
            kind, data, dry_run=dry_run, progress=self._progress(kind), refit="background"
        )
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(str(problem))
            self.stderr.write(report.summary())
            raise SystemExit(1)
        self.stdout.write(f"{kind}: {report.summary()}")

    def _progress(self, kind: str):
        """``progress(done, total)`` for run_csv_import: a line every PROGRESS_LINE_EVERY
        rows judged, e.g. "levels: 40,000 of 100,000 rows, 21,000 rows/s"."""
        started = time.monotonic()
        shown = {"rows": 0}

        def progress(done: int, total: int) -> None:
            if done < shown["rows"] + PROGRESS_LINE_EVERY or done >= total:
                return  # the summary line follows the last row
            shown["rows"] = done
            rate = done / max(time.monotonic() - started, 1e-6)
            self.stderr.write(f"{kind}: {done:,} of {total:,} rows, {rate:,.0f} rows/s")

        return progress
