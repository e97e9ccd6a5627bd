"""Kidney function in numbers for the patient page and the report: the latest creatinine,
eGFR computed from it and as recorded, UPCR, potassium and magnesium, each with its date,
and every kidney lab as a table (the text alternative of a labs chart). Reads the records
already loaded for the assessment: no query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from . import datestamps, rules
from .assessment import PatientAssessment
from .models import LabResult, LabTest, RecordStatus

KIDNEY_TESTS = (
    LabTest.CREATININE,
    LabTest.EGFR,
    LabTest.UPCR,
    LabTest.POTASSIUM,
    LabTest.MAGNESIUM,
)
EGFR_UNIT = "mL/min/1.73m²"


@dataclass(frozen=True)
class LabRow:
    test: str
    label: str
    value: str
    unit: str
    collected_at: datetime
    computed_egfr: str = ""  # creatinine rows: the eGFR it gives
    egfr_formula: str = ""

    # As the patient page prints the time (``datestamps``: faster than the date filter).
    @property
    def collected_iso(self) -> str:
        return datestamps.iso(self.collected_at)

    @property
    def collected_minute(self) -> str:
        return datestamps.minute(self.collected_at)

    @property
    def collected_day(self) -> str:
        return datestamps.day(self.collected_at)


@dataclass
class KidneySummary:
    creatinine: LabRow | None
    egfr_computed: LabRow | None
    egfr_recorded: LabRow | None
    upcr: LabRow | None
    potassium: LabRow | None
    magnesium: LabRow | None
    rows: list[LabRow]

    @property
    def latest(self) -> list[tuple[str, LabRow | None]]:
        return [
            ("Creatinine", self.creatinine),
            ("eGFR, computed", self.egfr_computed),
            ("eGFR, recorded", self.egfr_recorded),
            ("UPCR", self.upcr),
            ("Potassium", self.potassium),
            ("Magnesium", self.magnesium),
        ]


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _egfr(assessment: PatientAssessment, lab: LabResult) -> tuple[str, str]:
    """(value, formula) from a creatinine result: CKD-EPI 2021 from 18 years, bedside CKiD
    below (needs the height); empty when it cannot be computed."""
    patient = assessment.records.patient
    try:
        scr = rules.creatinine_mg_dl(lab.value, lab.unit)
    except rules.RuleError:
        return "", ""
    on = timezone.localdate(lab.collected_at)
    if scr <= 0:
        return "", ""
    value = rules.egfr(
        scr, birth=patient.birth_date, on=on, sex=patient.sex, height_cm=patient.height_cm
    )
    if value is None:
        return "", ""
    adult = rules.age_in_years(patient.birth_date, on) >= 18
    return str(rules.round_to(value, 0)), "CKD-EPI 2021" if adult else "bedside CKiD"


def kidney_summary(assessment: PatientAssessment) -> KidneySummary:
    labs = sorted(
        (
            lab
            for lab in assessment.records.labs
            if lab.status == RecordStatus.ACTIVE
            and lab.test in KIDNEY_TESTS
            and lab.collected_at <= assessment.now
        ),
        key=lambda lab: lab.collected_at,
        reverse=True,
    )
    rows = []
    for lab in labs:
        egfr, formula = _egfr(assessment, lab) if lab.test == LabTest.CREATININE else ("", "")
        rows.append(
            LabRow(
                lab.test,
                lab.get_test_display(),
                _plain(lab.value),
                lab.unit,
                lab.collected_at,
                egfr,
                formula,
            )
        )
    latest = {}
    for row in rows:
        latest.setdefault(row.test, row)
    creatinine = latest.get(LabTest.CREATININE)
    computed = None
    if creatinine is not None and creatinine.computed_egfr:
        computed = LabRow(
            LabTest.EGFR,
            f"eGFR ({creatinine.egfr_formula})",
            creatinine.computed_egfr,
            EGFR_UNIT,
            creatinine.collected_at,
        )
    return KidneySummary(
        creatinine=creatinine,
        egfr_computed=computed,
        egfr_recorded=latest.get(LabTest.EGFR),
        upcr=latest.get(LabTest.UPCR),
        potassium=latest.get(LabTest.POTASSIUM),
        magnesium=latest.get(LabTest.MAGNESIUM),
        rows=rows,
    )
