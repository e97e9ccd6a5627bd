"""python manage.py export_csv KIND [--as-of YYYY-MM-DD] [--output FILE]

KIND: levels, patients (their report columns, then the import columns), regimens,
medications, labs (exactly their import columns). Every kind re-imports with import_csv."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from monitoring.exports import EXPORTS, csv_lines


def as_of_date(text: str | None) -> date:
    if not text:
        return timezone.localdate()
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--as-of: value '{text}': is not a date (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = (
        "Export levels, patients, regimens, medications or labs as CSV, as of a date "
        "(default today)."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(EXPORTS))
        parser.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD; default today")
        parser.add_argument("--output", help="file to write; default standard output")

    def handle(self, *args, kind, as_of, output, **options):
        day = as_of_date(as_of)
        if output:
            with open(output, "w", encoding="utf-8", newline="") as handle:
                for line in csv_lines(kind, day):
                    handle.write(line)
        else:
            for line in csv_lines(kind, day):
                self.stdout.write(line, ending="")
