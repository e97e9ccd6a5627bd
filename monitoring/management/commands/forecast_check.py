"""python manage.py forecast_check [--output FILE] [--limit N]

Predict each trough of every patient with at least 3 usable troughs from the earlier ones
only (MAP, population model, proportional rule) and summarise the errors per method,
overall and per model. The result is also stored for the forecast-check page.
"""

import csv
import time

from django.core.management.base import BaseCommand

from monitoring.csv_safety import safe_cell
from monitoring.forecast_check import run_check, store_check
from monitoring.models import Patient

COLUMNS = ["scope", "method", "n", "median_error", "median_absolute_error", "within_20"]


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


class Command(BaseCommand):
    help = "How well MAP, the population model and the proportional rule predict each trough."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="write the summary as CSV here")
        parser.add_argument("--limit", type=int, help="only the first N active patients")

    def handle(self, *args, output, limit, **options):
        patients = Patient.objects.filter(active=True).order_by("mrn")
        if limit:
            patients = patients[:limit]
        total = patients.count()
        started = time.perf_counter()

        def progress(done: int) -> None:
            if done % 50 == 0 or done == total:
                self.stderr.write(f"{done} of {total} patients")

        result = run_check(patients.iterator(chunk_size=200), progress=progress)
        seconds = time.perf_counter() - started
        store_check(result, seconds)
        self.stdout.write(
            f"{result['patients']} patients with at least 3 usable troughs, {seconds:.0f} s"
        )
        self.stdout.write(
            f"{'scope':<16}{'method':<14}{'n':>6}{'median PE %':>13}{'median |PE| %':>15}"
            f"{'within ±20 %':>14}"
        )
        for row in result["rows"]:
            within = "" if row["within_20"] is None else f"{row['within_20'] * 100:.0f} %"
            self.stdout.write(
                f"{row['scope']:<16}{row['method']:<14}{row['n']:>6}"
                f"{percent(row['median_error']):>13}{percent(row['median_absolute_error']):>15}"
                f"{within:>14}"
            )
        if output:
            with open(output, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(COLUMNS)
                for row in result["rows"]:
                    writer.writerow(
                        [
                            safe_cell(row["scope"]),
                            row["method"],
                            row["n"],
                            "" if row["median_error"] is None else f"{row['median_error']:.2f}",
                            ""
                            if row["median_absolute_error"] is None
                            else f"{row['median_absolute_error']:.2f}",
                            "" if row["within_20"] is None else f"{row['within_20']:.4f}",
                        ]
                    )
