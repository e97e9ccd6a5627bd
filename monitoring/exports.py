"""CSV exports of docs/data-formats.md: exactly the listed columns, codes and formats.
Rows are produced one patient at a time so memory does not grow with the table.

Round trip: every kind that has an importer has an export that the importer reads back as it
is (``export_csv K`` then ``import_csv K`` into an empty database gives the same records and
flags). So the patients and levels exports end with optional columns the contract did not
list (the import columns they lacked; added at the end, as data-formats.md allows), the
importers read the export's names ``reported_value``/``reported_unit`` and ignore its
computed columns, and regimens, medications and labs export exactly their import columns.
Regimens, medications and labs marked entered-in-error are left out of those three exports
(their importers have no status column); levels keep theirs, with ``error_reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from . import rules
from .assessment import PatientAssessment, PatientRecords, end_of_day
from .csv_safe import SafeCsvWriter
from .forecasting import FORECAST_COLUMNS
from .models import Patient, RecordStatus
from .selectors import patient_records
from .services import patients_assess

LEVEL_COLUMNS = [
    "mrn",
    "accession",
    "collected_at",
    "last_dose_at",
    "hours_post_dose",
    "reported_value",
    "reported_unit",
    "comparator",
    "value_ng_ml",
    "target_low",
    "target_high",
    "range_flag",
    "timing_flag",
    "steady_state",
    "status",
    "assay",
    # Appended (optional): why a result was marked entered in error.
    "error_reason",
]
PATIENT_COLUMNS = [
    "mrn",
    "therapy_start",
    "therapy_end",
    "months_on_therapy",
    "duration_flag",
    "latest_collected_at",
    "latest_value_ng_ml",
    "latest_range_flag",
    "latest_timing_flag",
    "pct_in_range",
    "ttr_percent",
    "cv_percent",
    "cd_ratio",
    "alerts",
    # Appended (optional): the import columns, so the file re-imports as it is.
    "family_name",
    "given_name",
    "birth_date",
    "sex",
    "height_cm",
    "target_profile",
    "ln_class",
    "cyp3a5_expresser",
]
REGIMEN_COLUMNS = [
    "mrn",
    "effective_at",
    "formulation",
    "frequency",
    "daily_dose_mg",
    "sampling_hours",
    # Appended (optional): the stored dosing clock times; empty means the defaults.
    "dose_times",
]
MEDICATION_COLUMNS = ["mrn", "drug", "started_on", "stopped_on"]
LAB_COLUMNS = ["mrn", "collected_at", "test", "value", "unit", "accession"]
BATCH = 200


def iso(moment: datetime | None) -> str:
    """ISO 8601 in the site's zone, with its offset."""
    return timezone.localtime(moment).isoformat(timespec="seconds") if moment else ""


def fixed(value: Decimal | None, places: int) -> str:
    return "" if value is None else str(rules.round_to(value, places))


def plain(value: Decimal | None) -> str:
    """A stored decimal as typed: ``4.00`` → ``4``, ``0.8000`` → ``0.8`` (no exponent)."""
    return "" if value is None else format(value.normalize(), "f")


def _batches(patients: Iterable[Patient] | None) -> Iterator[list[Patient]]:
    # Sorted by MRN in Python, not by the database: PostgreSQL's locale collation ignores
    # punctuation such as '-', and the contract wants one order whatever the database.
    if patients is None:
        keys = sorted(Patient.objects.values_list("mrn", "pk"))
        for start in range(0, len(keys), BATCH):
            ids = [pk for _, pk in keys[start : start + BATCH]]
            yield sorted(Patient.objects.filter(pk__in=ids), key=lambda p: p.mrn)
        return
    ordered = sorted(patients, key=lambda p: p.mrn)
    for start in range(0, len(ordered), BATCH):
        yield ordered[start : start + BATCH]


def _assessments(
    as_of: date, patients: Iterable[Patient] | None = None
) -> Iterator[PatientAssessment]:
    for batch in _batches(patients):
        yield from patients_assess(batch, as_of=as_of)


def _records(patients: Iterable[Patient] | None = None) -> Iterator[PatientRecords]:
    for batch in _batches(patients):
        yield from patient_records(batch)


def level_rows(as_of: date, patients: Iterable[Patient] | None = None) -> Iterator[list[str]]:
    for result in _assessments(as_of, patients):
        for a in result.levels:
            level = a.level
            yield [
                result.records.patient.mrn,
                level.accession,
                iso(level.collected_at),
                iso(level.last_dose_at),
                fixed(a.timing.hours, 1),
                level.reported_value,
                level.reported_unit,
                level.comparator,
                fixed(level.value_ng_ml, 2),
                fixed(a.target.low, 1),
                fixed(a.target.high, 1),
                a.range,
                a.timing.code,
                "yes" if a.steady_state else "no",
                level.status,
                level.assay,
                level.error_reason,
            ]


def patient_row(result: PatientAssessment) -> list[str]:
    patient = result.records.patient
    latest = result.latest
    m = result.metrics
    # The base target (the first assignment) is the one the patients import sets.
    first_target = min(result.records.targets, key=lambda t: t.effective_from, default=None)
    return [
        patient.mrn,
        patient.therapy_start.isoformat() if patient.therapy_start else "",
        patient.therapy_end.isoformat() if patient.therapy_end else "",
        fixed(result.duration.months, 1),
        result.duration.code,
        iso(latest.level.collected_at) if latest else "",
        fixed(latest.level.value_ng_ml, 2) if latest else "",
        latest.range if latest else "",
        latest.timing.code if latest else "",
        fixed(m.percent_in_range, 1),
        fixed(m.ttr_percent, 1),
        fixed(m.cv_percent, 1),
        fixed(m.cd_ratio, 2),
        ";".join(sorted(result.alerts)),
        patient.family_name,
        patient.given_name,
        patient.birth_date.isoformat(),
        patient.sex,
        fixed(patient.height_cm, 1),
        first_target.profile.code if first_target else "",
        patient.ln_class,
        patient.cyp3a5_expresser,
    ]


def patient_rows(as_of: date, patients: Iterable[Patient] | None = None) -> Iterator[list[str]]:
    for result in _assessments(as_of, patients):
        yield patient_row(result)


def regimen_rows(as_of: date, patients: Iterable[Patient] | None = None) -> Iterator[list[str]]:
    cutoff = end_of_day(as_of)
    for records in _records(patients):
        regimens = sorted(
            (
                r
                for r in records.regimens
                if r.status == RecordStatus.ACTIVE and r.effective_at <= cutoff
            ),
            key=lambda r: (r.effective_at, r.pk),
        )
        for r in regimens:
            yield [
                records.patient.mrn,
                iso(r.effective_at),
                r.formulation,
                r.frequency,
                plain(r.daily_dose_mg),
                plain(r.sampling_hours),
                r.dose_times,
            ]


def medication_rows(as_of: date, patients: Iterable[Patient] | None = None) -> Iterator[list[str]]:
    for records in _records(patients):
        drugs = sorted(
            (d for d in records.drugs if d.status == RecordStatus.ACTIVE and d.started_on <= as_of),
            key=lambda d: (d.started_on, d.name.lower(), d.pk),
        )
        for d in drugs:
            yield [
                records.patient.mrn,
                d.name,
                d.started_on.isoformat(),
                d.stopped_on.isoformat() if d.stopped_on else "",
            ]


def lab_rows(as_of: date, patients: Iterable[Patient] | None = None) -> Iterator[list[str]]:
    cutoff = end_of_day(as_of)
    for records in _records(patients):
        labs = sorted(
            (
                lab
                for lab in records.labs
                if lab.status == RecordStatus.ACTIVE and lab.collected_at <= cutoff
            ),
            key=lambda lab: (lab.collected_at, lab.test, lab.pk),
        )
        for lab in labs:
            yield [
                records.patient.mrn,
                iso(lab.collected_at),
                lab.test,
                plain(lab.value),
                lab.unit,
                lab.accession,
            ]


def forecast_rows(as_of: date, patients: Iterable[Patient] | None = None) -> Iterator[list[str]]:
    """The stored model-informed forecast of each active patient (as of now: a forecast is
    of the current regimen, so ``as_of`` does not apply), refitted first where stale."""
    from . import forecasting
    from .models import PatientForecast
    from .services import patients_refit_stale

    patients_refit_stale()
    chosen = Patient.objects.filter(active=True) if patients is None else patients
    stored = {f.patient_id: f for f in PatientForecast.objects.filter(patient__in=chosen)}
    for patient in chosen.order_by("mrn") if patients is None else chosen:
        yield forecasting.forecast_row(patient, stored.get(patient.pk))


EXPORTS = {
    "levels": (LEVEL_COLUMNS, level_rows),
    "patients": (PATIENT_COLUMNS, patient_rows),
    "regimens": (REGIMEN_COLUMNS, regimen_rows),
    "medications": (MEDICATION_COLUMNS, medication_rows),
    "labs": (LAB_COLUMNS, lab_rows),
    "forecast": (FORECAST_COLUMNS, forecast_rows),
}


class _Echo:
    """A file-like object for csv.writer that hands each line back (streaming responses)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(kind: str, as_of: date, patients: Iterable[Patient] | None = None) -> Iterator[str]:
    columns, rows = EXPORTS[kind]
    writer = SafeCsvWriter(_Echo(), lineterminator="\n")
    yield writer.writerow(columns)
    for row in rows(as_of, patients):
        yield writer.writerow(row)
