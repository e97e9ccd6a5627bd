"""A patient's tacrolimus history as the NM-TRAN style data set of the PK engine
(docs/model-informed-dosing.md §3 and §5): the doses rebuilt from the regimens and the
troughs' last-dose times, the troughs in ng/mL, and the covariates of the models.

The engine (``monitoring.pk``) never sees a model instance: ``patient_pk_dataset`` reads the
records (three queries, however many troughs), turns them into plain inputs, and the pure
``build_dataset`` does the rest, so the reconstruction is tested without a database.

The data set leaves the site for research and audit, so it names nobody: one subject with
``ID`` 1, no MRN, no name; dates only in ``DATETIME`` (UTC, for audit; the engine ignores it).

Decisions where the specification is silent (said here once, and in the notes a clinician
reads where they touch a patient):
- A result reported as ``>x`` (above the upper limit) is excluded: used as an observation at
  x it would pull the estimate down, and M3 covers only the lower limit.
- Only final and corrected troughs are used; preliminary and entered-in-error ones are not.
- A trough drawn before any regimen applies is not used (no dose could explain it).
- The last-dose time moves the scheduled dose nearest to it only if one lies within
  ``MOVE_LIMIT``; otherwise the schedule stands and the note says so.
- When no regimen is in force 14 days before the first trough, the data set starts with the
  first recorded dose and no steady-state dose (the record says tacrolimus began then).
- ``therapy_end`` (a date): no dose after that local day. A regimen of 0 mg/day stops dosing
  from its first dosing time at or after ``effective_at``, like any regimen change.
- Doses at or after the last trough are left out: they cannot inform it.
- ``FEMALE`` is empty for sex X; ``AGE`` is completed years on the record's local date;
  ``TDD`` is 0 after therapy end.
- Nonexistent local dosing times (the spring-forward hour) fall one hour later in real time;
  repeated ones (autumn) are taken at their first occurrence.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import TextIO

from django.utils import timezone

from . import rules
from .csv_safe import SafeCsvWriter
from .models import Cyp3a5Expresser, Formulation, LabTest, LevelStatus, Patient, RecordStatus

COVARIATE_COLUMNS = ["HCT", "WT", "CYP3A5", "IR", "FORM", "AGE", "FEMALE", "TDD"]
COLUMNS = [
    "ID",
    "TIME",
    "EVID",
    "AMT",
    "DV",
    "MDV",
    "II",
    "ADDL",
    "SS",
    "CENS",
    *COVARIATE_COLUMNS,
    "DATETIME",
]
SUBJECT_ID = 1
WINDOW = timedelta(days=14)  # §5: the data set starts this long before the first trough
MOVE_LIMIT = timedelta(hours=24)  # [D] a last-dose time further from any scheduled dose moves none
USED_STATUSES = (LevelStatus.FINAL, LevelStatus.CORRECTED)
TIME_PLACES = Decimal("0.0001")  # hours: 0.36 s
VALUE_PLACES = Decimal("0.0001")


# --- inputs (plain values, no model instances) ---------------------------------------------


@dataclass(frozen=True)
class RegimenInput:
    effective_at: datetime
    formulation: str
    frequency: str
    daily_dose_mg: Decimal
    clock_times: tuple[str, ...]


@dataclass(frozen=True)
class TroughInput:
    collected_at: datetime
    last_dose_at: datetime | None
    value_ng_ml: Decimal
    comparator: str = ""
    status: str = LevelStatus.FINAL
    reported: str = ""  # as reported, for the notes
    key: int | None = None  # the stored result's id, carried to its observation row
    excluded: str = ""  # why a clinician left it out of the fit (empty: used)


@dataclass(frozen=True)
class LabInput:
    collected_at: datetime
    test: str
    value: Decimal


@dataclass(frozen=True)
class PatientInput:
    birth_date: date
    sex: str
    cyp3a5_expresser: str = Cyp3a5Expresser.UNKNOWN
    therapy_end: date | None = None


@dataclass
class PkDataSet:
    """``rows``: dicts with the keys of ``COLUMNS`` in that order (None: empty cell);
    ``notes``: what a clinician should know about how the records were read."""

    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The covariates now (the latest labs, the regimen in force): what a forecast uses.
    current: dict = field(default_factory=dict)
    # The stored result of each observation row, in order (not written out).
    levels: list = field(default_factory=list)


# --- the reconstruction ------------------------------------------------------------------------


@dataclass
class _Dose:
    at: datetime  # UTC
    regimen: int  # index into the sorted regimens
    amount: Decimal
    moved: bool = False
    ss: bool = False


@dataclass
class _Regimen:
    source: RegimenInput
    applies_at: datetime  # UTC: first dosing time at or after effective_at

    @property
    def per_dose(self) -> Decimal:
        return self.source.daily_dose_mg / rules.doses_per_day(self.source.frequency)

    @property
    def interval_hours(self) -> Decimal:
        return Decimal(24) / rules.doses_per_day(self.source.frequency)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _local_doses(
    regimen: RegimenInput, zone: tzinfo, start: datetime, end: datetime
) -> list[datetime]:
    """The regimen's dosing clock times in [start, end), as UTC instants. Each day's times are
    made in local time and then converted, so a dose stays at 08:00 on the clock across a
    daylight-saving change (the interval around it is 11 or 13 real hours)."""
    if end <= start:
        return []
    clocks = [_clock(t) for t in regimen.clock_times]
    day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    found = []
    while day <= last_day:
        for clock in clocks:
            moment = datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)
            if start <= moment < end:
                found.append(moment)
        day += timedelta(days=1)
    return found


def _first_dose_at_or_after(regimen: RegimenInput, zone: tzinfo, moment: datetime) -> datetime:
    return _local_doses(regimen, zone, moment, moment + timedelta(days=2))[0]


def _hours(delta: timedelta) -> Decimal:
    seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 10**6
    return seconds / 3600


def _round(value: Decimal, places: Decimal) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_UP).normalize() + 0


def _local_text(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


class _Builder:
    def __init__(
        self,
        patient: PatientInput,
        regimens: Sequence[RegimenInput],
        troughs: Sequence[TroughInput],
        labs: Sequence[LabInput],
        zone: tzinfo,
    ) -> None:
        self.patient = patient
        self.zone = zone
        self.notes: list[str] = []
        ordered = [
            _Regimen(r, _first_dose_at_or_after(r, zone, r.effective_at))
            for r in sorted(regimens, key=lambda r: r.effective_at)
        ]
        # A regimen whose successor's first dose comes no later than its own never applied
        # (e.g. BID from 07:00, then QD at 08:00 from 07:30): leave it out, so the first-dose
        # times stay in order for the look-ups below.
        kept: list[_Regimen] = []
        for r in reversed(ordered):
            if not kept or r.applies_at < kept[-1].applies_at:
                kept.append(r)
        self.regimens = kept[::-1]
        self.applies = [r.applies_at for r in self.regimens]
        self.troughs = self._usable(sorted(troughs, key=lambda t: t.collected_at))
        self.labs = {
            test: sorted(
                ((lab.collected_at, lab.value) for lab in labs if lab.test == test),
                key=lambda pair: pair[0],
            )
            for test in (LabTest.HCT, LabTest.WEIGHT)
        }
        self.lab_times = {test: [at for at, _ in found] for test, found in self.labs.items()}
        self.end_of_therapy = (
            datetime.combine(patient.therapy_end + timedelta(days=1), time.min, tzinfo=zone)
            if patient.therapy_end
            else None
        )

    # which regimen is in force: the last one whose first dose has come
    def regimen_at(self, moment: datetime) -> int | None:
        index = bisect.bisect_right(self.applies, moment) - 1
        return index if index >= 0 else None

    def _usable(self, troughs: list[TroughInput]) -> list[TroughInput]:
        used = []
        skipped = {LevelStatus.ENTERED_IN_ERROR: 0, LevelStatus.PRELIMINARY: 0}
        for trough in troughs:
            when = _local_text(trough.collected_at, self.zone)
            if trough.status not in USED_STATUSES:
                skipped[trough.status] = skipped.get(trough.status, 0) + 1
            elif trough.excluded:
                self.notes.append(f"trough of {when} excluded from the fit: {trough.excluded}")
            elif trough.comparator == ">":
                self.notes.append(
                    f"trough of {when} not used: reported as {trough.reported or '>'} "
                    "(above the measuring range, no value to fit)"
                )
            elif self.regimen_at(trough.collected_at) is None:
                self.notes.append(
                    f"trough of {when} not used: no tacrolimus regimen applies before it"
                )
            else:
                used.append(trough)
        if skipped[LevelStatus.ENTERED_IN_ERROR]:
            self.notes.append(
                f"{skipped[LevelStatus.ENTERED_IN_ERROR]} trough(s) entered in error not used"
            )
        if skipped[LevelStatus.PRELIMINARY]:
            self.notes.append(
                f"{skipped[LevelStatus.PRELIMINARY]} preliminary trough(s) not used "
                "(waiting for the final result)"
            )
        return used

    # --- doses --------------------------------------------------------------------------------

    def scheduled_doses(self, start: datetime, until: datetime) -> list[_Dose]:
        doses = []
        for index, regimen in enumerate(self.regimens):
            if regimen.source.daily_dose_mg <= 0:
                continue
            begin = max(regimen.applies_at, start)
            end = self.applies[index + 1] if index + 1 < len(self.applies) else until
            end = min(end, until)
            if self.end_of_therapy is not None:
                end = min(end, self.end_of_therapy)
            doses.extend(
                _Dose(moment, index, regimen.per_dose)
                for moment in _local_doses(regimen.source, self.zone, begin, end)
            )
        return doses

    def apply_last_dose_times(self, doses: list[_Dose]) -> None:
        """§5: the scheduled dose nearest a recorded last-dose time moves to it; scheduled
        doses after it and before the draw were held and count as taken right after it."""
        keys = [d.at for d in doses]
        for trough in self.troughs:
            when = _local_text(trough.collected_at, self.zone)
            last = trough.last_dose_at
            if last is None:
                self.notes.append(
                    f"trough of {when} used on the dosing schedule: no last-dose time"
                )
                continue
            low = bisect.bisect_left(keys, last - MOVE_LIMIT)
            high = bisect.bisect_right(keys, max(trough.collected_at, last + MOVE_LIMIT))
            window = doses[low:high]
            nearest = min(
                (d for d in window if abs(d.at - last) <= MOVE_LIMIT),
                key=lambda d: (abs(d.at - last), d.at),
                default=None,
            )
            if nearest is None:
                self.notes.append(
                    f"trough of {when}: no scheduled dose near the last-dose time "
                    f"{_local_text(last, self.zone)}; the dosing schedule is used"
                )
                continue
            if nearest.at != last:
                nearest.at, nearest.moved = last, True
            held = [d for d in window if d is not nearest and last < d.at < trough.collected_at]
            if held:
                scheduled = ", ".join(_local_text(d.at, self.zone) for d in held)
                self.notes.append(
                    f"trough of {when}: the dose scheduled at {scheduled} counted as taken "
                    "right after the draw (held for the trough)"
                )
            for dose in held:
                dose.at, dose.moved = trough.collected_at, True
            window.sort(key=lambda d: d.at)
            doses[low:high] = window
            keys[low:high] = [d.at for d in window]

    # --- rows ---------------------------------------------------------------------------------

    def build(self) -> PkDataSet:
        if not self.troughs:
            self.notes.append("no trough usable by the model: the data set is empty")
            return PkDataSet([], self.notes)
        first, last = self.troughs[0].collected_at, self.troughs[-1].collected_at
        start = first - WINDOW
        in_force = self.regimen_at(start)
        # Doses up to a day past the last trough, so that its last-dose time finds the
        # scheduled dose nearest to it even when that one lies after the draw.
        doses = self.scheduled_doses(start, last + MOVE_LIMIT)
        dosing = (
            in_force is not None
            and self.regimens[in_force].source.daily_dose_mg > 0
            and (self.end_of_therapy is None or start < self.end_of_therapy)
        )
        if dosing and doses:
            doses[0].ss = True
        elif in_force is None:
            self.notes.append(
                f"no regimen in force on {_local_text(start, self.zone)} (14 days before the "
                "first trough): the data set starts with the first recorded dose, not at "
                "steady state"
            )
        else:
            self.notes.append(
                f"tacrolimus stopped on {_local_text(start, self.zone)} (14 days before the "
                "first trough): no steady-state dose"
            )
        self.apply_last_dose_times(doses)
        doses = [d for d in doses if d.at < last]
        observations = [(t.collected_at, t) for t in self.troughs]
        records = [(run[0].at, 0, self._dose_row(run)) for run in self._runs(doses, observations)]
        records += [(at, 1, self._observation_row(t)) for at, t in observations]
        records.sort(key=lambda r: (r[0], r[1]))
        origin = records[0][0]
        rows, levels = [], []
        for at, _kind, row in records:
            row["TIME"] = _round(_hours(at - origin), TIME_PLACES)
            row.update(self._covariates(at, row.pop("_regimen")))
            row["DATETIME"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            rows.append({column: row.get(column) for column in COLUMNS})
            if row["EVID"] == 0:
                levels.append(row.get("_level"))
        self._covariate_notes(records[0][0], records[-1][0])
        return PkDataSet(rows, self.notes, levels=levels)

    def _runs(
        self, doses: list[_Dose], observations: list[tuple[datetime, TroughInput]]
    ) -> Iterable[list[_Dose]]:
        """Doses grouped into ADDL runs: same regimen, same amount, equal spacing, nothing
        moved, no trough inside. Where the clock times are not evenly spaced (07:00 and
        21:00), one run per clock time (II 24) is shorter, and is used when it is."""
        obs_times = [at for at, _ in observations]
        blocks: list[list[_Dose]] = []
        seen = 0  # troughs at or before the current dose (both lists are in time order)
        for dose in doses:
            before = seen
            while seen < len(obs_times) and obs_times[seen] <= dose.at:
                seen += 1
            block = blocks[-1] if blocks else None
            if (
                block
                and seen == before  # no trough since the block's last dose
                and not dose.moved
                and not dose.ss
                and not block[-1].moved
                and dose.regimen == block[-1].regimen
                and dose.amount == block[-1].amount
            ):
                block.append(dose)
            else:
                blocks.append([dose])
        for block in blocks:
            whole = self._greedy(block)
            if len(whole) <= 2:
                yield from whole
                continue
            by_clock = self._by_clock(block)
            yield from whole if len(whole) <= len(by_clock) else by_clock

    def _greedy(self, doses: list[_Dose]) -> list[list[_Dose]]:
        runs: list[list[_Dose]] = []
        for dose in doses:
            run = runs[-1] if runs else None
            if run is not None and (
                (len(run) == 1 and self._may_start(run[0], dose))
                or (len(run) > 1 and dose.at - run[-1].at == run[1].at - run[0].at)
            ):
                run.append(dose)
            else:
                runs.append([dose])
        return runs

    def _may_start(self, first: _Dose, second: _Dose) -> bool:
        gap = _hours(second.at - first.at)
        if first.ss:  # a steady-state dose's II is the regimen's interval
            return gap == self.regimens[first.regimen].interval_hours
        return gap > 0

    def _by_clock(self, doses: list[_Dose]) -> list[list[_Dose]]:
        head = [[doses[0]]] if doses[0].ss else []
        rest = doses[1:] if doses[0].ss else doses
        slots: dict[str, list[_Dose]] = {}
        for dose in rest:
            slots.setdefault(dose.at.astimezone(self.zone).strftime("%H:%M"), []).append(dose)
        runs = head + [run for slot in slots.values() for run in self._greedy(slot)]
        return sorted(runs, key=lambda run: run[0].at)

    def _dose_row(self, run: list[_Dose]) -> dict:
        first = run[0]
        if len(run) > 1:
            interval = _round(_hours(run[1].at - first.at), TIME_PLACES)
        elif first.ss:
            interval = self.regimens[first.regimen].interval_hours
        else:
            interval = Decimal(0)
        return {
            "ID": SUBJECT_ID,
            "EVID": 1,
            "AMT": first.amount.normalize() + 0,
            "DV": None,
            "MDV": 1,
            "II": interval,
            "ADDL": len(run) - 1,
            "SS": 1 if first.ss else 0,
            "CENS": 0,
            "_regimen": first.regimen,
        }

    def _observation_row(self, trough: TroughInput) -> dict:
        return {
            "ID": SUBJECT_ID,
            "EVID": 0,
            "AMT": Decimal(0),
            "DV": _round(trough.value_ng_ml, VALUE_PLACES),
            "MDV": 0,
            "II": Decimal(0),
            "ADDL": 0,
            "SS": 0,
            "CENS": 1 if trough.comparator == "<" else 0,
            "_regimen": self.regimen_at(trough.collected_at),
            "_level": trough.key,
        }

    # --- covariates ---------------------------------------------------------------------------

    def _latest(self, test: str, moment: datetime) -> Decimal | None:
        found = self.labs[test]
        index = bisect.bisect_right(self.lab_times[test], moment) - 1
        return found[index][1].normalize() + 0 if index >= 0 else None

    def _covariates(self, moment: datetime, regimen_index: int | None) -> dict:
        regimen = self.regimens[regimen_index].source if regimen_index is not None else None
        stopped = self.end_of_therapy is not None and moment >= self.end_of_therapy
        tdd = None
        if regimen is not None:
            tdd = Decimal(0) if stopped else regimen.daily_dose_mg.normalize() + 0
        return {
            "HCT": self._latest(LabTest.HCT, moment),
            "WT": self._latest(LabTest.WEIGHT, moment),
            "CYP3A5": {Cyp3a5Expresser.YES: 1, Cyp3a5Expresser.NO: 0}.get(
                self.patient.cyp3a5_expresser
            ),
            "IR": None if regimen is None else int(regimen.formulation == Formulation.IR),
            "FORM": None if regimen is None else regimen.formulation,
            "AGE": rules.age_in_years(self.patient.birth_date, moment.astimezone(self.zone).date()),
            "FEMALE": {"F": 1, "M": 0}.get(self.patient.sex),
            "TDD": tdd,
        }

    def _covariate_notes(self, first: datetime, last: datetime) -> None:
        for test, name in ((LabTest.HCT, "hematocrit"), (LabTest.WEIGHT, "body weight")):
            found = [at for at, _ in self.labs[test] if at <= last]
            if not found:
                self.notes.append(f"no {name} recorded: the model's default is used")
            elif found[0] > first:
                self.notes.append(
                    f"no {name} before {_local_text(found[0], self.zone)}: the model's default "
                    "is used for the records before it"
                )
        if self.patient.cyp3a5_expresser not in (Cyp3a5Expresser.YES, Cyp3a5Expresser.NO):
            self.notes.append("CYP3A5 expresser status unknown: the model's default is used")
        if self.patient.sex not in ("F", "M"):
            self.notes.append("sex recorded as X: FEMALE is left empty")


def build_dataset(
    patient: PatientInput,
    regimens: Sequence[RegimenInput],
    troughs: Sequence[TroughInput],
    labs: Sequence[LabInput] = (),
    *,
    zone: tzinfo | None = None,
    now: datetime | None = None,
) -> PkDataSet:
    """The data set of one patient from plain inputs (pure: no database). ``now``: the
    moment of ``current`` (the covariates a forecast uses), default the present."""
    builder = _Builder(patient, regimens, troughs, labs, zone or timezone.get_current_timezone())
    dataset = builder.build()
    moment = now or timezone.now()
    dataset.current = builder._covariates(moment, builder.regimen_at(moment))
    return dataset


# --- from the database, and to a file ------------------------------------------------------------


def patient_pk_dataset(patient: Patient) -> PkDataSet:
    """The data set of a patient's records: three queries whatever their number."""
    notes = []
    regimens = []
    for r in patient.regimens.filter(status=RecordStatus.ACTIVE).order_by("effective_at"):
        try:
            times = r.clock_times
        except rules.RuleError:  # stored before validation existed: say so, use the defaults
            times = rules.default_dose_times(r.frequency)
            notes.append(
                f"regimen of {_local_text(r.effective_at, timezone.get_current_timezone())}: "
                f"dose times '{r.dose_times}' unreadable, the defaults are used"
            )
        regimens.append(
            RegimenInput(r.effective_at, r.formulation, r.frequency, r.daily_dose_mg, times)
        )
    troughs = [
        TroughInput(
            t.collected_at,
            t.last_dose_at,
            t.value_ng_ml,
            t.comparator,
            t.status,
            f"{t.reported_value} {t.reported_unit}",
            key=t.pk,
            excluded=t.fit_excluded_reason,
        )
        for t in patient.levels.all()
    ]
    labs = [
        LabInput(lab.collected_at, lab.test, lab.value)
        for lab in patient.labs.filter(
            status=RecordStatus.ACTIVE, test__in=(LabTest.HCT, LabTest.WEIGHT)
        )
    ]
    dataset = build_dataset(
        PatientInput(
            patient.birth_date, patient.sex, patient.cyp3a5_expresser, patient.therapy_end
        ),
        regimens,
        troughs,
        labs,
    )
    dataset.notes[:0] = notes
    return dataset


def _cell(value: object, column: str) -> str:
    if value is None:
        return "." if column == "DV" else ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def write_csv(dataset: PkDataSet, handle: TextIO) -> None:
    writer = SafeCsvWriter(handle, lineterminator="\n")  # text cells spreadsheet-safe
    writer.writerow(COLUMNS)
    for row in dataset.rows:
        writer.writerow([_cell(row[column], column) for column in COLUMNS])
