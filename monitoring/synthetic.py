"""Synthetic patients for benchmarks and demonstrations: plain functions, no command line.

What a patient's history holds, and how it is drawn, is synthetic_patient.py (its
``PatientGenerator``); here the patients are generated in batches, judged by the rules and
written with their history. All names are invented; MRNs are ``<prefix><number>``
(``SYN-000001``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from . import config, rules
from .assessment import PatientRecords, Target, assess_patient
from .models import (
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    Patient,
    Regimen,
    TargetAssignment,
    TargetProfile,
    TroughLevel,
)
from .services import patient_summary_set, patients_reassess
from .synthetic_patient import DEFAULT_PREFIX, PatientData, PatientGenerator, Scenario

CHANGE_REASON = "synthetic data"


@dataclass
class SeedCounts:
    patients: int = 0
    targets: int = 0
    regimens: int = 0
    levels: int = 0
    drugs: int = 0
    labs: int = 0

    def add(self, data: PatientData) -> None:
        self.patients += 1
        self.targets += len(data.targets)
        self.regimens += len(data.regimens)
        self.levels += len(data.levels)
        self.drugs += len(data.drugs)
        self.labs += len(data.labs)

    def summary(self) -> str:
        return (
            f"{self.patients} patients, {self.levels} levels, {self.regimens} regimens, "
            f"{self.targets} targets, {self.drugs} drugs, {self.labs} labs"
        )


# --- generation and writing --------------------------------------------------------------


def reference_data() -> tuple[dict[str, TargetProfile], list[DrugCatalogEntry]]:
    return ({p.code: p for p in TargetProfile.objects.all()}, list(DrugCatalogEntry.objects.all()))


def generate(
    scenario: Scenario,
    profiles: dict[str, TargetProfile] | None = None,
    catalog: Sequence[DrugCatalogEntry] | None = None,
) -> list[PatientData]:
    """Every patient of the scenario, unsaved."""
    if profiles is None or catalog is None:
        profiles, catalog = reference_data()
    matched: dict[str, DrugCatalogEntry | None] = {}
    return [
        PatientGenerator(scenario, number, profiles, catalog, matched).build()
        for number in range(scenario.first, scenario.first + scenario.patients)
    ]


def judge(batch: list[PatientData], *, thresholds: rules.Thresholds, default: Target) -> None:
    """Compute every flag before the insert, with ``assess_patient`` on the unsaved records
    and the same field mapping as ``services.patients_reassess``: one bulk insert then
    carries the flags, instead of an insert plus a ``bulk_update`` of every level (which
    costs ~3 ms per level; see docs/performance.md). tests/integration/test_seed_synthetic
    checks that a later ``patients_reassess`` changes nothing."""
    today = timezone.localdate()
    for data in batch:
        records = PatientRecords(
            patient=data.patient,
            targets=data.targets,
            regimens=data.regimens,
            levels=data.levels,
            drugs=data.drugs,
            labs=data.labs,
        )
        result = assess_patient(records, default_target=default, thresholds=thresholds)
        for a in result.levels:
            level = a.level
            level.target_low = a.target.low
            level.target_high = a.target.high
            level.range_flag = a.range
            level.timing_flag = a.timing.code
            level.timing_reason = a.timing.reason
            level.hours_post_dose = (
                rules.round_to(a.timing.hours, 3) if a.timing.hours is not None else None
            )
            level.steady_state = a.steady_state
        patient_summary_set(data.patient, result, today)
        data.latest = result.latest.level if result.latest else None


def write(batch: list[PatientData], *, user=None) -> None:
    """Bulk-insert one batch of patients and their records, with their history rows, then
    point each patient at its latest trough (known only once the levels have keys)."""
    options = {"batch_size": 1000, "default_user": user, "default_change_reason": CHANGE_REASON}
    with transaction.atomic():
        bulk_create_with_history([d.patient for d in batch], Patient, **options)
        for attr, model in (
            ("targets", TargetAssignment),
            ("regimens", Regimen),
            ("levels", TroughLevel),
            ("drugs", ConcomitantDrug),
            ("labs", LabResult),
        ):
            objs = [obj for d in batch for obj in getattr(d, attr)]
            for obj in objs:
                obj.patient_id = obj.patient.pk
            if objs:
                bulk_create_with_history(objs, model, **options)
        with_latest = []
        for data in batch:
            if data.latest is not None:
                data.patient.latest_level = data.latest
                with_latest.append(data.patient)
        Patient.objects.bulk_update(with_latest, ["latest_level"], batch_size=1000)


def next_number(prefix: str = DEFAULT_PREFIX) -> int:
    """The number after the highest existing ``<prefix>NNNNNN`` MRN (1 when none)."""
    numbers = [
        int(mrn[len(prefix) :])
        for mrn in Patient.objects.filter(mrn__startswith=prefix).values_list("mrn", flat=True)
        if mrn[len(prefix) :].isdigit()
    ]
    return max(numbers, default=0) + 1


def seed(
    scenario: Scenario,
    *,
    batch_patients: int = 500,
    reassess: bool = False,
    user=None,
    progress: Callable[[str], None] | None = None,
) -> SeedCounts:
    """Generate, judge and insert the scenario's patients, ``batch_patients`` at a time, one
    transaction per batch. The flags are computed before the insert (``judge``); with
    ``reassess`` they are instead computed after it by ``services.patients_reassess``, as
    after an import (slow: it updates every level row)."""
    profiles, catalog = reference_data()
    thresholds, default = config.load_thresholds(), config.default_target()
    counts = SeedCounts()
    last = scenario.first + scenario.patients
    for start in range(scenario.first, last, batch_patients):
        part = replace(scenario, first=start, patients=min(batch_patients, last - start))
        batch = generate(part, profiles, catalog)
        if not reassess:
            judge(batch, thresholds=thresholds, default=default)
        write(batch, user=user)
        if reassess:
            patients_reassess([d.patient for d in batch])
        for data in batch:
            counts.add(data)
        if progress is not None:
            progress(f"  {counts.patients}/{scenario.patients} patients, {counts.levels} levels")
    return counts
