"""One synthetic patient's history, drawn by ``PatientGenerator`` (synthetic.py writes them).

Every patient is drawn from its own random generator, seeded by ``(seed, number)``, so a
patient's records depend only on the seed, its number and the as-of date: the same seed
gives the same data whatever the batch size, and ``--append`` extends a set without
changing the patients already there.

What the generator models (clinical-rules.md is the reference for the flags they raise):
- tacrolimus started after induction; IR twice daily, some switched to ER or LCP once daily
  (LCP at 70 % of the dose), dose changes after out-of-range troughs, a few stops;
- troughs every 2–8 weeks (``interval_days``), drawn 07:00–12:00 with realistic timing
  errors: the evening dose taken late, the morning dose taken before the draw (a peak, far
  too early), missing last-dose times (lab-interface results), missed doses that give
  results below the assay's limit (``<1.0``, ``<2.0``) and the odd ``>30``;
- trough values from a pharmacokinetic simulation unlike the shipped models
  (``synthetic_pk``): between-patient and between-occasion variability, CYP3A5 expressers,
  the doses as taken (scatter, forgotten doses, runs of missed doses), interacting drugs
  that change clearance, assay noise; several units and assays, corrected, preliminary
  and entered-in-error results;
- concomitant drugs (mycophenolate, glucocorticoids, hydroxychloroquine, antihypertensives,
  short antifungal or antibiotic courses, rarely ciclosporin), matched to the catalogue;
- kidney labs every three months (creatinine, UPCR, eGFR for some, hematocrit; weight once
  a year), immunology twice a year
  for some; a slow creatinine rise for a few (nephrotoxicity watch), CKD before tacrolimus
  for some (pre-existing CKD).

All names are invented; MRNs are ``<prefix><number>`` (``SYN-000001``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from . import rules, synthetic_pk, validation
from .catalog import match_drug
from .config import DEFAULT_PROFILE_CODE
from .models import (
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    LevelStatus,
    Patient,
    RecordStatus,
    Regimen,
    Source,
    TargetAssignment,
    TargetProfile,
    TroughLevel,
)
from .synthetic_names import FAMILY_NAMES, GIVEN_F, GIVEN_M

DEFAULT_PREFIX = "SYN-"
DEFAULT_INTERVAL_DAYS = (14, 56)

LN_CLASSES = (("IV", 40), ("III", 20), ("V", 15), ("IV+V", 15), ("III+V", 10))
ASSAYS = (("LCMSMS", 60), ("CMIA", 22), ("ECLIA", 12), ("QMS", 6))
LLOQ = {
    "LCMSMS": Decimal("1.0"),
    "CMIA": Decimal("2.0"),
    "ECLIA": Decimal("1.0"),
    "QMS": Decimal("1.5"),
    "EMIT": Decimal("2.0"),
}
ULOQ = Decimal("30")
MASS_UNITS = (("ng/mL", 82), ("ug/L", 8), ("µg/L", 4), ("mcg/L", 2))
NMOL_SHARE = 0.06  # some labs report tacrolimus in nmol/L
NG_TO_NMOL = Decimal("1.2438")

# (name as written in the record, probability per patient)
BACKGROUND_DRUGS = (
    ("Hydroxychloroquine 200 mg", 0.85),
    ("Ramipril 5 mg", 0.45),
    ("Losartan 50 mg", 0.2),
    ("Atorvastatin 20 mg", 0.25),
    ("Calcium carbonate / colecalciferol", 0.5),
    ("Omeprazole 20 mg", 0.3),
    ("Amlodipine 5 mg", 0.15),
)
# Short courses of interacting drugs: name, days (min, max), level factor while taken.
INTERACTING_COURSES = (
    ("Fluconazole 200 mg", (7, 14), 1.6),
    ("Clarithromycin 500 mg", (7, 10), 2.0),
    ("Erythromycin", (5, 10), 1.5),
    ("Rifampicin 600 mg", (90, 180), 0.35),
    ("Diltiazem 120 mg", (60, 365), 1.4),
    ("Carbamazepine", (120, 365), 0.5),
    ("Voriconazole", (14, 28), 2.5),
    ("Paxlovid (nirmatrelvir/ritonavir)", (5, 5), 3.0),
)


@dataclass(frozen=True)
class Scenario:
    """What to generate. ``first`` is the number of the first patient (MRN suffix)."""

    patients: int
    years: float
    seed: int
    as_of: date
    first: int = 1
    prefix: str = DEFAULT_PREFIX
    interval_days: tuple[int, int] = DEFAULT_INTERVAL_DAYS
    zone: ZoneInfo | None = None
    recent_share: float = 0.1  # patients who started recently (shorter history)
    overdue_share: float = 0.08  # patients whose last trough is months old

    def mrn(self, number: int) -> str:
        return f"{self.prefix}{number:06d}"


@dataclass
class PatientData:
    """One patient's unsaved records."""

    patient: Patient
    targets: list[TargetAssignment] = field(default_factory=list)
    regimens: list[Regimen] = field(default_factory=list)
    levels: list[TroughLevel] = field(default_factory=list)
    drugs: list[ConcomitantDrug] = field(default_factory=list)
    labs: list[LabResult] = field(default_factory=list)
    latest: TroughLevel | None = None


def _weighted(rng: random.Random, options: Sequence[tuple[object, int]]):
    values, weights = zip(*options, strict=True)
    return rng.choices(values, weights=weights)[0]


def _dec(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def _half_mg(value: float) -> Decimal:
    """Doses come in 0.5 mg steps (0.5 mg and 1 mg capsules)."""
    return Decimal(max(1, round(value * 2))) / 2


@dataclass(frozen=True)
class _Habits:
    """What stays with a patient: metabolism, variability, adherence, routine and lab."""

    pk: synthetic_pk.TruePk
    adherence: float
    evening: float
    missing_timing: float
    assay: str
    nmol: bool
    mass_unit: str


class _Timeline:
    """The regimen in force and the interacting drugs, as the level model needs them."""

    def __init__(self) -> None:
        self.regimens: list[Regimen] = []
        self.factors: list[tuple[date, date, float]] = []  # interacting drug periods

    def regimen_at(self, moment: datetime) -> Regimen | None:
        current = None
        for regimen in self.regimens:
            if regimen.effective_at <= moment:
                current = regimen
            else:
                break
        return current

    def factor_at(self, day: date) -> float:
        factor = 1.0
        for start, stop, f in self.factors:
            if start <= day < stop:
                factor *= f
        return factor


class PatientGenerator:
    """Draws one patient's history. Uses only its own ``rng``: reproducible by seed."""

    def __init__(
        self,
        scenario: Scenario,
        number: int,
        profiles: dict[str, TargetProfile],
        catalog: Sequence[DrugCatalogEntry],
        matched: dict[str, DrugCatalogEntry | None] | None = None,
    ):
        self.s = scenario
        self.number = number
        self.rng = random.Random(f"{scenario.seed}:{number}")  # noqa: S311 - not security
        self.profiles = profiles
        self.catalog = catalog
        self.zone = scenario.zone or timezone.get_current_timezone()
        self.matched = {} if matched is None else matched  # shared: matching is slow

    # --- helpers ---------------------------------------------------------------------

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone)

    def match(self, name: str) -> DrugCatalogEntry | None:
        if name not in self.matched:
            self.matched[name] = match_drug(name, self.catalog)
        return self.matched[name]

    # --- the patient -------------------------------------------------------------------

    def build(self) -> PatientData:
        rng, s = self.rng, self.s
        today = s.as_of
        years = s.years
        if rng.random() < s.recent_share:  # recently started: under the 36-month clock
            years = max(0.3, years * rng.uniform(0.1, 0.5))
        tac_start = today - timedelta(days=int(years * 365.25) + rng.randint(0, 30))
        therapy_start = tac_start - timedelta(days=rng.randint(0, 180))

        sex = _weighted(rng, (("F", 88), ("M", 11), ("X", 1)))
        child = rng.random() < 0.05
        age_at_start = rng.randint(10, 16) if child else rng.randint(18, 62)
        birth = therapy_start - timedelta(days=int(age_at_start * 365.25) + rng.randint(0, 364))
        given = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
        patient = Patient(
            mrn=s.mrn(self.number),
            family_name=rng.choice(FAMILY_NAMES),
            given_name=given,
            birth_date=birth,
            sex=sex,
            height_cm=_dec(rng.uniform(140, 172), 1) if child else None,
            ln_class=_weighted(rng, LN_CLASSES),
            active=rng.random() > 0.03,
            therapy_start=therapy_start if rng.random() > 0.02 else None,
        )
        ends = None
        roll = rng.random()
        if roll < 0.04 and patient.therapy_start:  # planned or actual stop before 36 months
            ends = therapy_start + timedelta(days=rng.randint(24 * 30, 34 * 30))
        elif roll < 0.08 and patient.therapy_start:  # stopped after a full course
            ends = therapy_start + timedelta(days=rng.randint(37 * 30, 60 * 30))
        if ends is not None and ends < tac_start + timedelta(days=120):
            ends = None
        patient.therapy_end = ends
        if rng.random() < 0.03 and patient.therapy_start:
            patient.anchor_date = therapy_start + timedelta(days=rng.randint(150, 400))
            patient.anchor_reason = "Complete renal response (clinician's anchor)"

        data = PatientData(patient)
        self.targets(data, birth, tac_start)
        stop = ends if ends is not None and ends <= today else None
        timeline = _Timeline()
        self.drugs(data, timeline, therapy_start, tac_start, today)
        self.levels_and_regimens(data, timeline, tac_start, stop, today)
        self.labs(data, therapy_start, tac_start, today)
        return data

    def targets(self, data: PatientData, birth: date, tac_start: date) -> None:
        rng = self.rng
        maintenance = self.profiles[DEFAULT_PROFILE_CODE]
        patient = data.patient
        data.targets.append(
            TargetAssignment(patient=patient, profile=maintenance, effective_from=self.at(birth, 0))
        )
        induction = self.profiles.get("ln_induction")
        if induction is not None and rng.random() < 0.15:
            data.targets[0].profile = induction
            data.targets.append(
                TargetAssignment(
                    patient=patient,
                    profile=maintenance,
                    effective_from=self.at(tac_start + timedelta(days=rng.randint(150, 240)), 0),
                )
            )
        if rng.random() < 0.05:
            data.targets.append(
                TargetAssignment(
                    patient=patient,
                    profile=maintenance,
                    effective_from=self.at(tac_start + timedelta(days=rng.randint(300, 700)), 0),
                    low_override=Decimal("5.00"),
                    high_override=Decimal("7.00"),
                    reason="Relapse on 4–6 ng/mL; individual target agreed in clinic",
                )
            )
        data.targets.sort(key=lambda t: t.effective_from)

    def drug(
        self,
        data: PatientData,
        name: str,
        started: date,
        stopped: date | None,
        *,
        in_error: bool = False,
    ) -> None:
        if not in_error and any(
            d.name.lower() == name.lower() and d.started_on == started for d in data.drugs
        ):
            return  # one active record per drug and start date (the import key)
        data.drugs.append(
            ConcomitantDrug(
                patient=data.patient,
                name=name,
                catalog=self.match(name),
                started_on=started,
                stopped_on=stopped,
                source=Source.MANUAL,
                status=RecordStatus.ENTERED_IN_ERROR if in_error else RecordStatus.ACTIVE,
                error_reason="Recorded on the wrong patient" if in_error else "",
            )
        )

    def drugs(
        self,
        data: PatientData,
        timeline: _Timeline,
        therapy_start: date,
        tac_start: date,
        today: date,
    ) -> None:
        rng = self.rng
        span = max(1, (today - tac_start).days)
        if rng.random() < 0.2:
            self.drug(
                data,
                "Cyclophosphamide (Euro-Lupus)",
                therapy_start,
                therapy_start + timedelta(days=84),
            )
        self.drug(
            data, "Methylprednisolone 500 mg IV", therapy_start, therapy_start + timedelta(days=3)
        )
        if rng.random() < 0.9:
            name = rng.choice(("Prednisolone 5 mg", "Prednisone 7.5 mg", "Prednisolone"))
            stopped = (
                tac_start + timedelta(days=rng.randint(400, 1500)) if rng.random() < 0.3 else None
            )
            self.drug(data, name, therapy_start, stopped if stopped and stopped < today else None)
        roll = rng.random()
        if roll < 0.82:
            name = rng.choice(
                ("Mycophenolate mofetil 1 g", "CellCept 500 mg", "Myfortic 720 mg", "MMF")
            )
            stopped = (
                tac_start + timedelta(days=rng.randint(300, 1800)) if rng.random() < 0.2 else None
            )
            self.drug(
                data,
                name,
                therapy_start + timedelta(days=rng.randint(0, 30)),
                stopped if stopped and stopped < today else None,
            )
        elif roll < 0.9:
            self.drug(data, "Azathioprine 100 mg", tac_start, None)
        if rng.random() < 0.1:
            self.drug(
                data, "Belimumab (Benlysta)", tac_start + timedelta(days=rng.randint(0, span)), None
            )
        if rng.random() < 0.05:
            start = tac_start + timedelta(days=rng.randint(0, span))
            self.drug(data, "Rituximab", start, start + timedelta(days=15))
        if rng.random() < 0.01:
            self.drug(
                data, "Ciclosporin (Neoral)", today - timedelta(days=rng.randint(5, 120)), None
            )
        for name, probability in BACKGROUND_DRUGS:
            if rng.random() < probability:
                start = therapy_start - timedelta(days=rng.randint(0, 2000))
                self.drug(data, name, start, None)
        courses = 0 if rng.random() < 0.8 else rng.randint(1, 3)
        for _ in range(courses):
            name, (low, high), factor = rng.choice(INTERACTING_COURSES)
            start = tac_start + timedelta(days=rng.randint(30, span))
            stop = start + timedelta(days=rng.randint(low, high))
            self.drug(data, name, start, stop if stop <= today else None)
            timeline.factors.append((start, stop, factor))
        if rng.random() < 0.01:
            self.drug(data, "Fluconazole 50 mg", today - timedelta(days=30), None, in_error=True)

    def regimen(
        self,
        data: PatientData,
        timeline: _Timeline,
        at: datetime,
        formulation: str,
        frequency: str,
        dose: Decimal,
        note: str = "",
    ) -> Regimen | None:
        if any(r.effective_at == at for r in timeline.regimens):
            return None  # one active regimen per start time (the import key)
        regimen = Regimen(
            patient=data.patient,
            effective_at=at,
            formulation=formulation,
            frequency=frequency,
            daily_dose_mg=dose,
            note=note,
            source=Source.MANUAL,
        )
        data.regimens.append(regimen)
        timeline.regimens.append(regimen)
        return regimen

    def levels_and_regimens(
        self,
        data: PatientData,
        timeline: _Timeline,
        tac_start: date,
        stop: date | None,
        today: date,
    ) -> None:
        rng = self.rng
        patient = data.patient
        expresser = _weighted(rng, (("yes", 15), ("no", 50), ("unknown", 35)))
        patient.cyp3a5_expresser = expresser
        habits = _Habits(
            # Genotype unknown to the clinic is still the patient's: some are expressers.
            pk=synthetic_pk.draw_patient(
                rng, expresser == "yes" or (expresser == "unknown" and rng.random() < 0.15)
            ),
            adherence=rng.uniform(0.96, 1.0),
            evening=20 + rng.choice((-1, -0.5, 0, 0, 0, 0.5, 1)),  # usual BID evening dose
            missing_timing=0.5 if rng.random() < 0.1 else 0.05,
            assay=_weighted(rng, ASSAYS),
            nmol=rng.random() < NMOL_SHARE,
            mass_unit=_weighted(rng, MASS_UNITS),
        )
        span = max(1, (today - tac_start).days)
        assay_switch = (
            tac_start + timedelta(days=rng.randint(min(200, span), span))
            if rng.random() < 0.1
            else None
        )
        dose = _half_mg(rng.choice((2, 3, 3, 4, 4, 5, 6)))
        self.regimen(data, timeline, self.at(tac_start, 20), "IR", "BID", dose, "Started")
        switch_on = (
            tac_start + timedelta(days=rng.randint(min(90, span), span))
            if rng.random() < 0.2
            else None
        )
        if rng.random() < 0.02 and stop is None:  # a regimen record typed in error
            data.regimens.append(
                Regimen(
                    patient=patient,
                    effective_at=self.at(tac_start + timedelta(days=40), 20),
                    formulation="IR",
                    frequency="BID",
                    daily_dose_mg=dose * 10,
                    status=RecordStatus.ENTERED_IN_ERROR,
                    error_reason="Dose typed ×10",
                    source=Source.MANUAL,
                )
            )

        lo, hi = self.s.interval_days
        day = tac_start + timedelta(days=rng.randint(5, 14))
        overdue = rng.random() < self.s.overdue_share
        end = min(stop or today, today - timedelta(days=rng.randint(95, 200) if overdue else 1))
        last_change = last_event = tac_start  # last dose change; last trough or change
        n = 0
        while day <= end:
            current = timeline.regimen_at(self.at(day, 7))
            if switch_on is not None and day >= switch_on and current.frequency == "BID":
                formulation = rng.choice(("ER", "ER", "LCP"))
                new_dose = (
                    current.daily_dose_mg
                    if formulation == "ER"
                    else _half_mg(float(current.daily_dose_mg) * 0.7)
                )
                # Between two troughs, usually a week or so before the next one.
                on = max(
                    last_event + timedelta(days=1),
                    min(switch_on, day - timedelta(days=rng.randint(5, 10))),
                )
                on = min(on, day)
                self.regimen(
                    data,
                    timeline,
                    self.at(on, 8),
                    formulation,
                    "QD",
                    new_dose,
                    f"Switched to {formulation} once daily",
                )
                switch_on, last_change, last_event = None, on, on
            n += 1
            assay = "CMIA" if assay_switch and day >= assay_switch else habits.assay
            value, level = self.level(data, timeline, day, n, habits, assay)
            last_event = day
            # The clinician acts on some clearly out-of-range results, not more often than
            # every two months: a proportional dose change a day or three later.
            regimen = timeline.regimen_at(level.collected_at)
            if (
                regimen is not None
                and regimen.daily_dose_mg > 0
                and (value < 3.5 or value > 6.5)
                and level.last_dose_at is not None
                and (day - last_change).days > 60
                and rng.random() < 0.6
            ):
                proposed = _half_mg(float(regimen.daily_dose_mg) * 5.0 / max(value, 1.0))
                proposed = min(proposed, regimen.daily_dose_mg + 2)
                proposed = max(proposed, regimen.daily_dose_mg - 2, Decimal("0.5"))
                change_day = day + timedelta(days=rng.randint(1, 3))
                if proposed != regimen.daily_dose_mg and change_day <= end:
                    hour = 20 if regimen.frequency == "BID" else 8
                    self.regimen(
                        data,
                        timeline,
                        self.at(change_day, hour),
                        regimen.formulation,
                        regimen.frequency,
                        proposed,
                        "Dose adjusted after trough",
                    )
                    last_change = last_event = change_day
                    if rng.random() < 0.08:  # re-checked too soon: not at steady state
                        day = change_day + timedelta(days=rng.randint(1, 2))
                        continue
            day += timedelta(days=rng.randint(lo, hi))
        if stop is not None:
            last = timeline.regimens[-1]
            self.regimen(
                data,
                timeline,
                self.at(stop, 21),
                last.formulation,
                last.frequency,
                Decimal("0"),
                "Tacrolimus stopped",
            )
        if data.levels and rng.random() < 0.05:
            latest = data.levels[-1]
            if latest.status == LevelStatus.FINAL:
                latest.status = LevelStatus.PRELIMINARY
                latest.source = Source.HL7

    def level(
        self, data: PatientData, timeline: _Timeline, day: date, n: int, habits: _Habits, assay: str
    ) -> tuple[float, TroughLevel]:
        """One trough: when the last dose was taken and the blood drawn, and what it read."""
        rng = self.rng
        morning = self.at(day, 0)
        regimen = timeline.regimen_at(morning + timedelta(hours=7))
        dose = float(regimen.daily_dose_mg) if regimen else 0.0
        once_daily = regimen is not None and regimen.frequency == "QD"
        nominal = 24.0 if once_daily else 12.0
        # Last dose: the evening before (BID) or the morning before (QD), near the habit.
        dose_hour = (8.0 if once_daily else habits.evening) + rng.gauss(0, 0.3) - 24
        roll = rng.random()
        if roll < 0.72:
            off = rng.gauss(0, 0.4)  # drawn on time
        elif roll < 0.86:
            off = rng.choice((-1, 1)) * rng.uniform(1.0, 2.0) + 0.3  # a little off
        elif roll < 0.97:
            off = rng.uniform(2.0, 4.0) if rng.random() < 0.75 else -rng.uniform(2.0, 3.0)
        else:
            off = None  # the morning dose taken before the draw: a peak
        if off is None:
            draw_hour = rng.uniform(8.0, 10.5)
            dose_hour = draw_hour - rng.uniform(0.75, 2.5)
        else:
            draw_hour = min(max(dose_hour + nominal + off, 6.5), 13.0)
        collected = morning + timedelta(minutes=5 * round(draw_hour * 12))
        last_dose = morning + timedelta(minutes=5 * round(dose_hour * 12))
        taken = self.doses_taken(timeline, habits, collected, last_dose)
        if rng.random() < habits.missing_timing:
            last_dose = None
        value = synthetic_pk.measured(
            rng,
            synthetic_pk.concentration(
                habits.pk,
                taken,
                clearance_factor=1.0 / timeline.factor_at(day),
                occasion=rng.gauss(0, synthetic_pk.BETWEEN_OCCASION_SD),
            ),
        )
        lloq, reported, unit = LLOQ[assay], None, habits.mass_unit
        if dose == 0:
            reported = f"<{lloq}"
        elif value < float(lloq):
            reported = f"<{lloq}" if rng.random() < 0.85 else f"< {lloq}"
        elif value > float(ULOQ):
            reported = f">{ULOQ}"
        if habits.nmol:
            unit = "nmol/L"
            if reported is None:
                reported = f"{Decimal(str(value)) * NG_TO_NMOL:.2f}"
            else:  # the limit itself converted, as such labs do
                reported = f"{reported[0]}{float(reported.lstrip('<> ')) * 1.2438:.1f}"
        elif reported is None:
            reported = f"{value:.1f}" if rng.random() < 0.9 else f"{value:.2f}"
        parsed = rules.parse_level(reported, unit)
        status, error_reason = LevelStatus.FINAL, ""
        roll = rng.random()
        if roll < 0.005:
            status = LevelStatus.ENTERED_IN_ERROR
            error_reason = "Sample haemolysed; result withdrawn by the lab"
        elif roll < 0.015:
            status = LevelStatus.CORRECTED
        source = Source.HL7 if last_dose is None else rng.choice((Source.CSV, Source.MANUAL))
        level = TroughLevel(
            patient=data.patient,
            collected_at=collected,
            last_dose_at=last_dose,
            reported_value=reported,
            reported_unit=unit,
            comparator=parsed.comparator,
            value_ng_ml=validation.stored_ng_ml(parsed.value_ng_ml),
            assay=assay,
            accession=f"SY{self.number:06d}{n:05d}",
            status=status,
            error_reason=error_reason,
            source=source,
        )
        data.levels.append(level)
        return float(parsed.value_ng_ml), level

    def doses_taken(
        self, timeline: _Timeline, habits: _Habits, collected: datetime, last_dose: datetime
    ) -> list[tuple[float, float, str]]:
        """The ten days of doses before a draw, as the patient took them: (hours before the
        draw, mg, formulation). The schedule of the regimen in force (08:00, and the usual
        evening time for twice daily), a little scatter, the odd missed dose, a run of
        missed doses before some draws, and the last dose at its recorded time."""
        rng = self.rng
        taken = []
        start = collected - timedelta(days=10)
        day = start.date()
        while day <= collected.date():
            for hour in (8.0, habits.evening):
                moment = self.at(day, 0) + timedelta(hours=hour + rng.gauss(0, 0.25))
                regimen = timeline.regimen_at(moment)
                if regimen is None or regimen.daily_dose_mg <= 0:
                    continue
                if regimen.frequency == "QD" and hour != 8.0:
                    continue
                if not start <= moment < collected or abs(moment - last_dose) < timedelta(hours=3):
                    continue
                if rng.random() < 0.02:  # a forgotten dose
                    continue
                per_dose = float(regimen.daily_dose_mg) / (2 if regimen.frequency == "BID" else 1)
                taken.append((moment, per_dose, regimen.formulation))
            day += timedelta(days=1)
        regimen = timeline.regimen_at(last_dose)
        if regimen is not None and regimen.daily_dose_mg > 0 and last_dose < collected:
            per_dose = float(regimen.daily_dose_mg) / (2 if regimen.frequency == "BID" else 1)
            taken.append((last_dose, per_dose, regimen.formulation))
        if rng.random() > habits.adherence:  # a run of missed doses before this draw
            missed = rng.randint(2, 4)
            taken.sort()
            taken = taken[: max(0, len(taken) - missed)]
        return [
            ((collected - moment).total_seconds() / 3600, mg, formulation)
            for moment, mg, formulation in taken
        ]

    def labs(self, data: PatientData, therapy_start: date, tac_start: date, today: date) -> None:
        rng = self.rng
        patient = data.patient
        ckd = rng.random() < 0.08
        baseline = (
            rng.uniform(1.5, 2.3)
            if ckd
            else (rng.uniform(0.55, 1.0) if patient.sex == "F" else rng.uniform(0.7, 1.2))
        )
        rise = rng.uniform(1.35, 1.7) if rng.random() < 0.06 else rng.uniform(0.9, 1.12)
        umol = rng.random() < 0.25
        with_egfr = rng.random() < 0.5
        immunology = rng.random() < 0.35
        upcr_unit = "mg/mmol" if rng.random() < 0.3 else "g/g"
        proteinuria = rng.uniform(1.0, 4.0)
        hematocrit = rng.uniform(30.0, 42.0) if patient.sex == "M" else rng.uniform(28.0, 39.0)
        weight = rng.uniform(45.0, 90.0)
        day = therapy_start - timedelta(days=rng.randint(3, 20))
        span = max(1, (today - tac_start).days)
        quarter = 0
        while day < today:
            moment = self.at(day, rng.choice((8, 9, 10)), rng.randrange(0, 60, 5))
            progress = min(1.0, max(0.0, (day - tac_start).days / span))
            scr = baseline * (1 + (rise - 1) * progress) * math.exp(rng.gauss(0, 0.05))
            if umol:
                self.lab(data, moment, "creatinine", _dec(scr * 88.4, 0), "umol/L")
            else:
                self.lab(data, moment, "creatinine", _dec(scr, 2), "mg/dL")
            if with_egfr:
                age = rules.age_in_years(patient.birth_date, day)
                if age >= 18 and patient.sex in ("F", "M"):
                    egfr = rules.egfr_ckd_epi_2021(_dec(scr, 2), age, patient.sex)
                    if egfr is not None:
                        self.lab(data, moment, "egfr", rules.round_to(egfr, 0), "mL/min/1.73m2")
            self.lab(data, moment, "hct", _dec(hematocrit * math.exp(rng.gauss(0, 0.04)), 1), "%")
            if quarter % 4 == 0:
                self.lab(data, moment, "weight", _dec(weight * rng.uniform(0.97, 1.03), 1), "kg")
            proteinuria = max(0.05, proteinuria * rng.uniform(0.6, 1.05))
            upcr = proteinuria * (113.0 if upcr_unit == "mg/mmol" else 1.0)
            self.lab(data, moment, "upcr", _dec(upcr, 2 if upcr_unit == "g/g" else 0), upcr_unit)
            if immunology and quarter % 2 == 0:
                self.lab(data, moment, "c3", _dec(rng.uniform(0.6, 1.4), 2), "g/L")
                self.lab(data, moment, "c4", _dec(rng.uniform(0.08, 0.35), 2), "g/L")
                self.lab(data, moment, "anti_dsdna", _dec(rng.uniform(5, 300), 0), "IU/mL")
            quarter += 1
            day += timedelta(days=rng.randint(75, 105))

    def lab(
        self, data: PatientData, moment: datetime, test: str, value: Decimal, unit: str
    ) -> None:
        data.labs.append(
            LabResult(
                patient=data.patient,
                collected_at=moment,
                test=test,
                value=value,
                unit=unit,
                source=Source.HL7,
            )
        )
