"""python manage.py seed_synthetic --patients N --years Y --seed S

Synthetic patients for benchmarks (see monitoring/synthetic_patient.py for what is modelled):
``SYN-000001``… with troughs every 2–8 weeks over about Y years (about 10 a year, so
``--years 6`` gives about 60 each), regimens, drugs and labs, bulk-inserted with their
history rows; then every patient's flags are computed and stored in batches of 500.

Reproducible: the same seed and as-of date give the same data. Idempotent: when patients
with the prefix exist, nothing is written unless ``--append`` (add N more, numbered after
the highest existing MRN; each patient still depends only on the seed and its number).
Refused with DEBUG off unless ``--force``, like seed_demo: synthetic patients must never
reach a production database.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from monitoring import synthetic
from monitoring.models import Patient
from monitoring.validation import parse_date


def _interval(text: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in text.replace("-", ",").split(","))
    except ValueError as exc:
        raise CommandError(f"--interval-days value '{text}': expected MIN,MAX days") from exc
    if not 1 <= low <= high:
        raise CommandError(f"--interval-days value '{text}': need 1 <= MIN <= MAX")
    return low, high


class Command(BaseCommand):
    help = "Create reproducible synthetic patients for benchmarks (DEBUG only unless --force)."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=50, help="how many (default 50)")
        parser.add_argument(
            "--years",
            type=float,
            default=6.0,
            help="years of tacrolimus per patient (default 6: ~60 levels)",
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument("--as-of", default="", help="YYYY-MM-DD the history ends (today)")
        parser.add_argument(
            "--prefix", default=synthetic.DEFAULT_PREFIX, help="MRN prefix (default SYN-)"
        )
        parser.add_argument(
            "--interval-days", default="14,56", help="days between troughs, MIN,MAX (default 14,56)"
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=500,
            help="patients per transaction and per flag computation",
        )
        parser.add_argument(
            "--append",
            action="store_true",
            help="add N more patients when some with the prefix exist",
        )
        parser.add_argument(
            "--force", action="store_true", help="allow with DEBUG off (benchmarks only)"
        )

    def handle(self, *args, **o):
        if not settings.DEBUG and not o["force"]:
            raise CommandError(
                "seed_synthetic refuses to run with DEBUG off: synthetic data "
                "must never reach a production database (use --force for a "
                "benchmark database)."
            )
        if o["patients"] < 1 or o["years"] <= 0 or o["batch"] < 1:
            raise CommandError("--patients, --years and --batch must be positive")
        try:
            as_of = parse_date(o["as_of"], "as_of") or timezone.localdate()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        prefix = o["prefix"]
        existing = Patient.objects.filter(mrn__startswith=prefix).count()
        if existing and not o["append"]:
            self.stdout.write(
                f"{existing} synthetic patients ({prefix}…) already present: "
                "nothing changed (use --append to add more)."
            )
            return
        scenario = synthetic.Scenario(
            patients=o["patients"],
            years=o["years"],
            seed=o["seed"],
            as_of=as_of,
            first=synthetic.next_number(prefix) if existing else 1,
            prefix=prefix,
            interval_days=_interval(o["interval_days"]),
        )
        started = time.perf_counter()
        progress = self.stdout.write if o["verbosity"] >= 2 else None
        counts = synthetic.seed(scenario, batch_patients=o["batch"], progress=progress)
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"Created {counts.summary()} in {elapsed:.1f} s "
            f"({scenario.mrn(scenario.first)}…, seed {scenario.seed}, as of {as_of})."
        )
