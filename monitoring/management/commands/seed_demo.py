"""python manage.py seed_demo: clearly fictional patients that, between them, raise every
alert code of clinical-rules.md §9. Idempotent (existing demo patients are left alone) and
refused when DEBUG is off, so it can never write into a production database."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from monitoring import rules, validation
from monitoring.catalog import match_drug
from monitoring.models import (
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    Patient,
    Regimen,
    TroughLevel,
)
from monitoring.services import patients_reassess

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-clinic-2026"  # noqa: S105 - a published demo login, DEBUG only


class Builder:
    """Writes one fictional patient's history relative to today."""

    def __init__(self, today: date, rng: random.Random, catalog: list[DrugCatalogEntry]):
        self.today = today
        self.rng = rng
        self.catalog = catalog

    def at(self, days_ago: float, hour: int = 8, minute: int = 0) -> datetime:
        day = self.today - timedelta(days=int(days_ago))
        return timezone.make_aware(datetime.combine(day, time(hour, minute)))

    def patient(
        self,
        mrn,
        family,
        given,
        birth,
        sex,
        *,
        start_days_ago,
        end_in_days=None,
        ln_class="IV",
        height=None,
    ) -> Patient:
        patient = Patient.objects.create(
            mrn=mrn,
            family_name=family,
            given_name=given,
            birth_date=birth,
            sex=sex,
            ln_class=ln_class,
            height_cm=height,
            therapy_start=self.today - timedelta(days=start_days_ago),
            therapy_end=(self.today + timedelta(days=end_in_days))
            if end_in_days is not None
            else None,
        )
        # Patient.save assigned the site's default target from the birth date.
        return patient

    def regimen(self, patient, days_ago, dose, formulation="IR", frequency="BID"):
        return Regimen.objects.create(
            patient=patient,
            effective_at=self.at(days_ago, 20),
            formulation=formulation,
            frequency=frequency,
            daily_dose_mg=Decimal(str(dose)),
        )

    def level(
        self,
        patient,
        days_ago,
        value,
        *,
        hours=Decimal("12"),
        unit="ng/mL",
        assay="LCMSMS",
        accession=None,
        status="final",
    ):
        collected = self.at(days_ago, 8, self.rng.choice([0, 5, 10, 15]))
        last_dose = collected - timedelta(hours=float(hours)) if hours is not None else None
        parsed = rules.parse_level(str(value), unit)
        return TroughLevel.objects.create(
            patient=patient,
            collected_at=collected,
            last_dose_at=last_dose,
            reported_value=str(value),
            reported_unit=unit,
            comparator=parsed.comparator,
            value_ng_ml=validation.stored_ng_ml(parsed.value_ng_ml),
            assay=assay,
            accession=accession or f"{patient.mrn}-{int(days_ago):04d}",
            status=status,
        )

    def series(self, patient, *, from_days_ago, to_days_ago, low=4.3, high=5.8, every=42):
        """Routine in-range troughs with good timing."""
        days = from_days_ago
        while days > to_days_ago:
            value = round(self.rng.uniform(low, high), 1)
            self.level(patient, days, value, hours=Decimal(str(self.rng.choice([11.5, 12, 12.25]))))
            days -= every

    def drug(self, patient, name, started_days_ago, stopped_days_ago=None):
        return ConcomitantDrug.objects.create(
            patient=patient,
            name=name,
            catalog=match_drug(name, self.catalog),
            started_on=self.today - timedelta(days=started_days_ago),
            stopped_on=(self.today - timedelta(days=stopped_days_ago))
            if stopped_days_ago is not None
            else None,
        )

    def lab(self, patient, days_ago, test, value, unit):
        return LabResult.objects.create(
            patient=patient,
            collected_at=self.at(days_ago, 8),
            test=test,
            value=Decimal(str(value)),
            unit=unit,
        )

    def standard(self, patient, *, start_days_ago, dose=4):
        """Multitarget maintenance: tacrolimus, mycophenolate and prednisolone, with kidney
        labs every three months."""
        self.regimen(patient, start_days_ago, dose)
        self.drug(patient, "Mycophenolate mofetil", start_days_ago + 30)
        self.drug(patient, "Prednisolone 5 mg", start_days_ago + 30)
        self.lab(patient, start_days_ago + 3, "creatinine", 0.8, "mg/dL")
        for days in range(start_days_ago - 30, 0, -90):
            self.lab(patient, days, "creatinine", round(self.rng.uniform(0.75, 0.9), 2), "mg/dL")
            self.lab(patient, days, "upcr", round(self.rng.uniform(0.1, 0.4), 2), "g/g")


def build_demo(today: date) -> list[Patient]:
    b = Builder(today, random.Random(2026), list(DrugCatalogEntry.objects.all()))  # noqa: S311 - reproducible demo data
    made = []

    def new(mrn, family, given, birth, sex, **kw):
        p = b.patient(mrn, family, given, birth, sex, **kw)
        made.append(p)
        return p

    # Stable: in range, well timed, past 36 months.
    p = new("DEMO-001", "Testwell", "Ada", date(1986, 5, 2), "F", start_days_ago=1300)
    b.standard(p, start_days_ago=1250)
    b.series(p, from_days_ago=1200, to_days_ago=0, every=45)
    b.level(p, 12, "5.1")

    # Latest trough below range, well timed: a dose suggestion is allowed.
    p = new("DEMO-002", "Sample", "Bea", date(1990, 8, 14), "F", start_days_ago=1400)
    b.standard(p, start_days_ago=1380, dose=3)
    b.series(p, from_days_ago=700, to_days_ago=30)
    b.level(p, 8, "3.2", hours=Decimal("12.5"))

    # Latest trough above range.
    p = new("DEMO-003", "Fictive", "Cleo", date(1979, 1, 30), "F", start_days_ago=1500)
    b.standard(p, start_days_ago=1450, dose=5)
    b.series(p, from_days_ago=600, to_days_ago=30)
    b.level(p, 6, "7.8", hours=Decimal("12"))

    # From the lab interface: no last-dose time yet (missing C12h timing).
    p = new("DEMO-004", "Placeholder", "Dana", date(1994, 11, 3), "F", start_days_ago=1200)
    b.standard(p, start_days_ago=1150)
    b.series(p, from_days_ago=500, to_days_ago=25)
    b.level(p, 4, "5.4", hours=None, assay="CMIA")

    # Drawn early (9 h after the dose): mistimed, reads falsely high.
    p = new("DEMO-005", "Mockett", "Eli", date(1983, 3, 21), "M", start_days_ago=1250)
    b.standard(p, start_days_ago=1200)
    b.series(p, from_days_ago=400, to_days_ago=20)
    b.level(p, 5, "7.1", hours=Decimal("9"))

    # Dose raised two days before the latest trough: not at steady state.
    p = new("DEMO-006", "Dummer", "Fay", date(1992, 7, 9), "F", start_days_ago=1300)
    b.standard(p, start_days_ago=1280, dose=3)
    b.series(p, from_days_ago=500, to_days_ago=20, low=3.6, high=4.4)
    b.regimen(p, 3, 4)
    b.level(p, 1, "5.0")

    # Fourteen months into therapy: under 36 months.
    p = new("DEMO-007", "Madeup", "Gus", date(1998, 2, 17), "M", start_days_ago=425, ln_class="III")
    b.standard(p, start_days_ago=400, dose=4)
    b.series(p, from_days_ago=380, to_days_ago=10)

    # Planned stop at 30 months: premature discontinuation.
    p = new(
        "DEMO-008",
        "Notreal",
        "Hana",
        date(1988, 10, 1),
        "F",
        start_days_ago=800,
        end_in_days=113,
        ln_class="V",
    )
    b.standard(p, start_days_ago=780, dose=3)
    b.series(p, from_days_ago=700, to_days_ago=10)

    # Fluconazole started five days ago: re-check the trough (expected to rise).
    p = new("DEMO-009", "Imaginary", "Ivo", date(1975, 6, 12), "M", start_days_ago=1400)
    b.standard(p, start_days_ago=1350)
    b.series(p, from_days_ago=600, to_days_ago=10)
    b.drug(p, "Fluconazole 200 mg", 5)

    # Ciclosporin alongside tacrolimus, and four other immunosuppressants.
    p = new("DEMO-010", "Synthetic", "Jo", date(1981, 12, 24), "X", start_days_ago=1300)
    b.standard(p, start_days_ago=1250)
    b.series(p, from_days_ago=500, to_days_ago=10)
    b.drug(p, "Neoral (ciclosporin)", 60)
    b.drug(p, "Belimumab", 200)
    b.drug(p, "Rituximab", 100)

    # Pre-existing CKD before tacrolimus, and creatinine up more than 30 % since.
    p = new("DEMO-011", "Examplova", "Kira", date(1970, 4, 4), "F", start_days_ago=1300)
    b.regimen(p, 1250, 3)
    b.drug(p, "Mycophenolate mofetil", 1280)
    b.lab(p, 1260, "creatinine", 1.2, "mg/dL")
    b.lab(p, 400, "creatinine", 1.3, "mg/dL")
    b.lab(p, 15, "creatinine", 1.7, "mg/dL")
    b.lab(p, 15, "egfr", 35, "mL/min/1.73m2")
    b.series(p, from_days_ago=600, to_days_ago=10)

    # Last trough four months ago: overdue.
    p = new("DEMO-012", "Pretend", "Lou", date(1985, 9, 19), "M", start_days_ago=1350)
    b.standard(p, start_days_ago=1300)
    b.series(p, from_days_ago=700, to_days_ago=120)

    # Swinging levels: high intra-patient variability, with an assay change.
    p = new("DEMO-013", "Fabricated", "Mia", date(1996, 1, 11), "F", start_days_ago=1200)
    b.standard(p, start_days_ago=1150)
    for days, value in [
        (300, "3.1"),
        (250, "7.9"),
        (200, "4.0"),
        (150, "8.2"),
        (100, "3.5"),
        (50, "6.9"),
    ]:
        b.level(p, days, value)
    b.level(p, 10, "5.5", assay="CMIA")

    # A censored result in nmol/L, a result corrected by the lab, and one entered in error.
    p = new(
        "DEMO-014", "Invented", "Noa", date(2001, 5, 27), "F", start_days_ago=1250, ln_class="IV+V"
    )
    b.standard(p, start_days_ago=1200)
    b.series(p, from_days_ago=400, to_days_ago=40)
    b.level(p, 30, "<2.0", unit="nmol/L", assay="ECLIA")
    wrong = b.level(p, 20, "55", unit="ng/mL")
    wrong.status = "entered_in_error"
    wrong.error_reason = "Typed 55 for 5.5; see next result"
    wrong.save()
    b.level(p, 9, "5.5", status="corrected")
    return made


class Command(BaseCommand):
    help = "Load fictional demonstration patients (DEBUG only; idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="allow with DEBUG off (tests and screenshots only)"
        )

    def handle(self, *args, force=False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo refuses to run with DEBUG off: demo data must never "
                "reach a production database."
            )
        with transaction.atomic():
            user, created = User.objects.get_or_create(
                username=DEMO_USERNAME,
                defaults={"is_staff": True, "first_name": "Demo", "last_name": "Clinician"},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(*Group.objects.filter(name__in=["clinician", "data_entry"]))
            if Patient.objects.filter(mrn__startswith="DEMO-").exists():
                self.stdout.write("Demo patients already present: nothing changed.")
            else:
                patients = build_demo(timezone.localdate())
                patients_reassess(patients)
                self.stdout.write(f"Created {len(patients)} fictional demo patients.")
        self.stdout.write(f"Demo login: {DEMO_USERNAME} / {DEMO_PASSWORD}")
