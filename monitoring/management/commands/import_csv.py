"""python manage.py import_csv KIND FILE [--dry-run]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from monitoring.importers import run_csv_import
from monitoring.importers.kinds import IMPORTERS


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
        report = run_csv_import(kind, data, dry_run=dry_run, refit="background")
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(str(problem))
            self.stderr.write(report.summary())
            raise SystemExit(1)
        self.stdout.write(f"{kind}: {report.summary()}")
