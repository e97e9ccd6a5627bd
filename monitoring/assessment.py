"""Apply the pure rules to one patient's records, already loaded (no queries here).

``assess_patient`` is the one place where records meet rules: the stored flags, the pages,
the report and the exports all read its result, so a verdict is computed one way only.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone

from . import followup, rules
from .models import (
    AlertAcknowledgement,
    ConcomitantDrug,
    InteractionDirection,
    LabResult,
    LabTest,
    Patient,
    RecordStatus,
    Regimen,
    TargetAssignment,
    TroughLevel,
)


@dataclass(frozen=True)
class Target:
    low: Decimal
    high: Decimal
    name: str
    evidence: str
    source: str
    reason: str = ""
    effective_from: datetime | None = None


@dataclass
class PatientRecords:
    patient: Patient
    targets: Sequence[TargetAssignment]
    regimens: Sequence[Regimen]
    levels: Sequence[TroughLevel]
    drugs: Sequence[ConcomitantDrug]
    labs: Sequence[LabResult]
    acknowledgements: Sequence[AlertAcknowledgement] = ()


@dataclass
class LevelAssessment:
    level: TroughLevel
    target: Target
    regimen: Regimen | None
    range: str
    timing: rules.Timing
    steady_state: bool
    qualifying: bool

    @property
    def value_ng_ml(self) -> Decimal:
        return self.level.value_ng_ml


@dataclass
class Metrics:
    window_days: int
    n_qualifying: int = 0
    percent_in_range: Decimal | None = None
    ttr_percent: Decimal | None = None
    cv_percent: Decimal | None = None
    cv_n: int = 0
    cd_ratio: Decimal | None = None
    cd_fast_metaboliser: bool = False


@dataclass
class PatientAssessment:
    records: PatientRecords
    now: datetime
    levels: list[LevelAssessment]
    latest: LevelAssessment | None
    current_regimen: Regimen | None
    current_target: Target
    duration: rules.Duration
    metrics: Metrics
    interaction_events: list[rules.DrugEvent]
    active_drugs: list[ConcomitantDrug]
    baseline_creatinine: Decimal | None
    latest_creatinine: Decimal | None
    baseline_egfr: Decimal | None
    dose_suggestion: Decimal | None
    alerts: list[str] = field(default_factory=list)
    next_due: date | None = None
    action: followup.NextAction = field(
        default_factory=lambda: followup.NextAction(followup.ACTION_NONE)
    )
    data_mark: str = ""
    urgency_band: int = followup.BAND_NONE
    problem_since: datetime | None = None
    acknowledged: dict[str, AlertAcknowledgement] = field(default_factory=dict)

    @property
    def warning_count(self) -> int:
        """Warnings not yet reviewed: a reviewed alert no longer ranks the patient."""
        return sum(
            1
            for c in self.alerts
            if rules.ALERT_SEVERITY.get(c) == rules.WARNING and c not in self.acknowledged
        )


def end_of_day(as_of: date) -> datetime:
    """The cutoff instant for an as-of date: data collected on that local day counts."""
    start_next = datetime.combine(as_of + timedelta(days=1), time.min)
    return timezone.make_aware(start_next) - timedelta(microseconds=1)


def local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def target_from_assignment(assignment: TargetAssignment) -> Target:
    return Target(
        low=assignment.low,
        high=assignment.high,
        name=assignment.profile.name + (" (individualised)" if assignment.individualised else ""),
        evidence=assignment.profile.evidence,
        source=assignment.profile.source,
        reason=assignment.reason,
        effective_from=assignment.effective_from,
    )


def regimen_change_times(regimens: Sequence[Regimen]) -> list[datetime]:
    """Starts, stops, dose changes and formulation switches (a repeated identical record is
    not a change)."""
    times = []
    previous = None
    for regimen in regimens:
        key = (regimen.daily_dose_mg, regimen.formulation, regimen.frequency)
        if previous is None or key != previous:
            times.append(regimen.effective_at)
        previous = key
    return times


def drug_events(drugs: Sequence[ConcomitantDrug], as_of: date) -> list[rules.DrugEvent]:
    events = []
    for drug in drugs:
        entry = drug.catalog
        if entry is None or entry.interaction == InteractionDirection.NONE:
            continue
        if drug.started_on <= as_of:
            events.append(rules.DrugEvent(drug.started_on, "start", drug.name, entry.interaction))
        if drug.stopped_on and drug.stopped_on <= as_of:
            events.append(rules.DrugEvent(drug.stopped_on, "stop", drug.name, entry.interaction))
    return events


def active_on(drug: ConcomitantDrug, day: date) -> bool:
    return drug.started_on <= day and (drug.stopped_on is None or drug.stopped_on > day)


# The lab tests the rules read (kidney_baseline); the others are shown, never judged.
RULE_LAB_TESTS = (LabTest.CREATININE, LabTest.EGFR)


def creatinine_values(labs: Sequence[LabResult]) -> list[tuple[datetime, Decimal]]:
    values = []
    for lab in labs:
        if lab.test == LabTest.CREATININE:
            values.append((lab.collected_at, rules.creatinine_mg_dl(lab.value, lab.unit)))
    return sorted(values)


def assess_patient(
    records: PatientRecords,
    *,
    default_target: Target,
    thresholds: rules.Thresholds = rules.DEFAULT_THRESHOLDS,
    as_of: date | None = None,
) -> PatientAssessment:
    """Judge every level and the patient as of a date (default today)."""
    t = thresholds
    as_of = as_of or timezone.localdate()
    now = end_of_day(as_of)
    regimens = sorted(
        (r for r in records.regimens if r.status == RecordStatus.ACTIVE),
        key=lambda r: r.effective_at,
    )
    drugs = [d for d in records.drugs if d.status == RecordStatus.ACTIVE]
    labs = [
        lab for lab in records.labs if lab.status == RecordStatus.ACTIVE and lab.collected_at <= now
    ]
    targets = [(a.effective_from, target_from_assignment(a)) for a in records.targets]
    target_line = rules.Timeline(targets)
    regimen_line = rules.Timeline((r.effective_at, r) for r in regimens)

    events = drug_events(drugs, as_of)
    change_times = regimen_change_times(regimens) + [local_midnight(e.on) for e in events]
    # Sorted UTC instants: each trough is then checked only against the changes of the
    # steady-state window before it (bisect), not against every change of its history.
    changes_utc = sorted(c.astimezone(UTC) for c in change_times)
    steady_window = timedelta(microseconds=int(t.steady_state_hours * 3_600_000_000))

    assessed = []
    in_view = [lv for lv in records.levels if lv.collected_at <= now]
    for level in sorted(in_view, key=lambda lv: (lv.collected_at, lv.pk or 0)):
        target = target_line.at(level.collected_at) or (
            # Before the first assignment the earliest one applies; without any, the default.
            targets[0][1] if targets else default_target
        )
        regimen = regimen_line.at(level.collected_at)
        if regimen is not None and regimen.daily_dose_mg == 0:
            nominal = None  # tacrolimus stopped: there is no dosing interval to time against
        else:
            nominal = regimen.nominal_hours if regimen else None
        timing = rules.timing_verdict(
            level.collected_at,
            level.last_dose_at,
            nominal,
            valid_hours=t.timing_valid_hours,
            borderline_hours=t.timing_borderline_hours,
        )
        drawn = level.collected_at.astimezone(UTC)
        nearby = changes_utc[
            bisect_left(changes_utc, drawn - steady_window) : bisect_right(changes_utc, drawn)
        ]
        steady = rules.at_steady_state(level.collected_at, nearby, hours=t.steady_state_hours)
        verdict = rules.range_verdict(level.value_ng_ml, level.comparator, target.low, target.high)
        qualifying = level.counts_for_flags and timing.code == rules.VALID and steady
        assessed.append(
            LevelAssessment(level, target, regimen, verdict, timing, steady, qualifying)
        )

    counted = [a for a in assessed if a.level.counts_for_flags]
    latest = counted[-1] if counted else None
    current_regimen = regimen_line.at(now)
    current_target = target_line.at(now) or (targets[0][1] if targets else default_target)

    patient = records.patient
    duration = rules.duration_status(
        patient.clock_anchor,
        patient.therapy_end,
        as_of,
        required_months=t.required_months,
        days_per_month=t.days_per_month,
    )

    metrics = compute_metrics(counted, now, current_target, t)

    last_trough_on = timezone.localdate(latest.level.collected_at) if latest else None
    recent_events = rules.recent_interaction_events(
        events, as_of, last_trough_on, recent_days=t.interaction_recent_days
    )

    ended = patient.therapy_end is not None and patient.therapy_end <= as_of
    on_tacrolimus = current_regimen is not None and current_regimen.daily_dose_mg > 0 and not ended
    active = [d for d in drugs if active_on(d, as_of)]
    immuno_codes = set()
    if on_tacrolimus:
        immuno_codes = rules.immunosuppression_alerts(
            [
                rules.ActiveDrug(
                    d.catalog.name, d.catalog.immunosuppressant, d.catalog.calcineurin_inhibitor
                )
                for d in active
                if d.catalog
            ],
            max_others=t.max_other_immunosuppressants,
        )

    baseline_scr, latest_scr, baseline_egfr = kidney_baseline(patient, regimens, labs)

    overdue = rules.level_overdue(
        on_tacrolimus=on_tacrolimus,
        trough_times=[a.level.collected_at for a in counted],
        change_events=[c for c in change_times if c <= now],
        now=now,
        overdue_days=t.overdue_days,
        post_change_days=t.post_change_trough_days,
    )

    suggestion = None
    if (
        latest is not None
        and latest.qualifying
        and not latest.level.comparator
        and latest.range in (rules.BELOW, rules.ABOVE)
        and latest.regimen is not None
        and latest.regimen is current_regimen
    ):
        suggestion = rules.dose_suggestion(
            current_regimen.daily_dose_mg,
            latest.target.low,
            latest.target.high,
            latest.level.value_ng_ml,
            step_mg=t.dose_step_mg,
        )

    result = PatientAssessment(
        records=records,
        now=now,
        levels=assessed,
        latest=latest,
        current_regimen=current_regimen,
        current_target=current_target,
        duration=duration,
        metrics=metrics,
        interaction_events=recent_events,
        active_drugs=active,
        baseline_creatinine=baseline_scr,
        latest_creatinine=latest_scr,
        baseline_egfr=baseline_egfr,
        dose_suggestion=suggestion,
    )
    result.alerts = rules.patient_alerts(
        rules.AlertInputs(
            latest_range=latest.range if latest else None,
            latest_timing=latest.timing.code if latest else None,
            latest_timing_reason=latest.timing.reason if latest else "",
            latest_steady_state=latest.steady_state if latest else None,
            duration_code=duration.code,
            interaction_events=recent_events,
            immunosuppression_codes=immuno_codes,
            pre_existing_ckd=rules.pre_existing_ckd(baseline_egfr, threshold=t.ckd_egfr),
            nephrotoxicity_watch=rules.nephrotoxicity_watch(
                baseline_scr, latest_scr, rise_percent=t.creatinine_rise_percent
            ),
            level_overdue=overdue,
            cv_percent=metrics.cv_percent,
            cv_high_percent=t.cv_high_percent,
        )
    )
    result.data_mark = data_mark(latest, regimens, drugs)
    result.acknowledged = {
        ack.code: ack
        for ack in sorted(records.acknowledgements, key=lambda a: a.acknowledged_at)
        if ack.data_mark == result.data_mark and ack.code in result.alerts
    }
    decide_next_action(result, on_tacrolimus, change_times, events, t)
    return result


def data_mark(
    latest: LevelAssessment | None,
    regimens: Sequence[Regimen],
    drugs: Sequence[ConcomitantDrug],
) -> str:
    """A fingerprint of what an alert review looked at: the latest trough, the newest dose
    record and every drug start and stop. A review holds while it is unchanged; a new
    trough, dose or drug (or one marked in error) makes it lapse."""
    parts = [
        f"trough {latest.level.pk if latest else '-'}",
        f"regimen {max((r.pk or 0 for r in regimens), default='-')}",
        *sorted(f"drug {d.pk} {d.started_on} {d.stopped_on}" for d in drugs),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def decide_next_action(
    result: PatientAssessment,
    on_tacrolimus: bool,
    change_times: Sequence[datetime],
    events: Sequence[rules.DrugEvent],
    t: rules.Thresholds,
) -> None:
    """The next trough's due date and the next action, in the site's local time. Only the
    latest trough can answer a change (it is the newest), so nothing older is read: the
    narrow re-judge of an import loads no more than it did."""
    zone = timezone.get_current_timezone()
    latest = result.latest
    latest_at = latest.level.collected_at.astimezone(zone) if latest else None
    changes = [c.astimezone(zone) for c in change_times if c <= result.now]
    result.next_due = followup.next_trough_due(
        on_tacrolimus=on_tacrolimus,
        trough_times=[latest_at] if latest_at else [],
        change_events=changes,
        today=result.now.astimezone(zone).date(),
        overdue_days=t.overdue_days,
        post_change_days=t.post_change_trough_days,
        steady_state_hours=t.steady_state_hours,
    )
    regimen_changes = [
        c
        for c in regimen_change_times(
            [r for r in result.records.regimens if r.status == RecordStatus.ACTIVE]
        )
        if c <= result.now and (latest_at is None or c > latest_at)
    ]
    latest_facts = (
        followup.LatestTrough(
            latest_at,
            latest.range,
            latest.timing.code,
            latest.steady_state,
            latest.level.value_ng_ml,
            latest.level.comparator,
        )
        if latest
        else None
    )
    result.urgency_band = followup.urgency_band(
        alerts=result.alerts,
        latest=latest_facts,
        acknowledged=set(result.acknowledged),
        changed_since_latest=bool(regimen_changes) and on_tacrolimus,
        critical_high=t.critical_high_ng_ml,
        critical_low=t.critical_low_ng_ml,
    )
    # The oldest problem first within a band: the trough that raised it (none: first).
    result.problem_since = (
        latest.level.collected_at if latest and result.urgency_band != followup.BAND_NONE else None
    )
    result.action = followup.next_action(
        alerts=result.alerts,
        latest=latest_facts,
        changes_since_latest=regimen_changes if on_tacrolimus else [],
        interaction_events=result.interaction_events,
        due=result.next_due,
        acknowledged=set(result.acknowledged),
    )


def compute_metrics(
    counted: Sequence[LevelAssessment], now: datetime, target: Target, t: rules.Thresholds
) -> Metrics:
    """§7 over the window ending now: qualifying troughs only."""
    start = now - timedelta(days=t.metrics_window_days)
    window = [a for a in counted if a.qualifying and a.level.collected_at > start]
    # Looked up once: each lookup goes through asgiref's context-local storage, which for
    # every point of 5,000 patients' windows was a tenth of re-judging them.
    zone = timezone.get_current_timezone()
    points = [
        rules.TroughPoint(
            a.level.collected_at.astimezone(zone).date(),
            a.level.value_ng_ml,
            a.level.comparator,
            a.range,
        )
        for a in window
    ]
    metrics = Metrics(window_days=t.metrics_window_days, n_qualifying=len(points))
    metrics.percent_in_range = rules.percent_in_range(points)
    # TTR uses the band in force now; per-period bands are rare and the rule names one band.
    metrics.ttr_percent = rules.time_in_range(
        points, target.low, target.high, max_gap_days=t.ttr_max_gap_days
    )
    metrics.cv_percent, metrics.cv_n = rules.cv_percent(points, min_n=t.cv_min_n)
    if window and window[-1].regimen is not None:
        metrics.cd_ratio = rules.cd_ratio(
            window[-1].level.value_ng_ml, window[-1].regimen.daily_dose_mg
        )
        metrics.cd_fast_metaboliser = (
            metrics.cd_ratio is not None and metrics.cd_ratio <= t.cd_fast_metaboliser
        )
    return metrics


def with_metrics_window(
    result: PatientAssessment, window_days: int, thresholds: rules.Thresholds
) -> PatientAssessment:
    """The metrics over ``window_days`` instead of the configured window (the patient page's
    window links, the report's period); the alerts keep the configured window."""
    if window_days != thresholds.metrics_window_days:
        counted = [a for a in result.levels if a.level.counts_for_flags]
        result.metrics = compute_metrics(
            counted,
            result.now,
            result.current_target,
            replace(thresholds, metrics_window_days=window_days),
        )
    return result


def kidney_baseline(
    patient: Patient, regimens: Sequence[Regimen], labs: Sequence[LabResult]
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """Baseline creatinine is the last value before tacrolimus started; the watch compares
    the latest value after the start with it."""
    started = next((r.effective_at for r in regimens if r.daily_dose_mg > 0), None)
    values = creatinine_values(labs)
    if started is None or not values:
        return None, None, None
    before = [(at, v) for at, v in values if at < started]
    after = [(at, v) for at, v in values if at >= started]
    baseline = before[-1] if before else None
    latest = after[-1][1] if after else None
    baseline_egfr = None
    if baseline is not None:
        baseline_egfr = rules.egfr(
            baseline[1],
            birth=patient.birth_date,
            on=timezone.localdate(baseline[0]),
            sex=patient.sex,
            height_cm=patient.height_cm,
        )
    else:
        egfr_labs = [lab for lab in labs if lab.test == LabTest.EGFR and lab.collected_at < started]
        if egfr_labs:
            baseline_egfr = max(egfr_labs, key=lambda lab: lab.collected_at).value
    return (baseline[1] if baseline else None), latest, baseline_egfr
