"""The patient's records as the patient page and the printed report show them: plain rows
and sentences for the templates (no logic or queries in a template).

Each function turns an already computed ``PatientAssessment`` into what a table or a
paragraph prints: the levels table (``level_rows``), the alerts with the patient's own
facts (``alert_items``), the dose to consider, the therapy clock, the regimens and drugs,
and the metrics. No request and no query here; the verdicts come from ``assessment`` and
``rules``, and this module only words them and picks their badge style.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.utils import timezone

from .. import charts, datestamps, rules
from ..alert_text import ACK_LABELS, alert_texts
from ..assessment import LevelAssessment, PatientAssessment
from ..models import (
    AlertAcknowledgement,
    ConcomitantDrug,
    EvidenceTag,
    InteractionDirection,
    Patient,
    RecordStatus,
    Regimen,
    TroughLevel,
)

if TYPE_CHECKING:
    from .patient import PageState

FAR_FROM_MODEL_IWRES = 3  # spec §5: a residual this large is pointed out

# Presentation only: which badge style shows a verdict (the verdicts come from the rules).
RANGE_BADGE = {
    rules.IN_RANGE: "ok",
    rules.BELOW: "warning",
    rules.ABOVE: "warning",
    rules.INDETERMINATE: "info",
}
RANGE_LABEL = {
    rules.IN_RANGE: "in range",
    rules.BELOW: "below",
    rules.ABOVE: "above",
    rules.INDETERMINATE: "indeterminate",
}
TIMING_BADGE = {
    rules.VALID: "ok",
    rules.BORDERLINE: "info",
    rules.MISTIMED: "warning",
    rules.UNKNOWN: "warning",
}
SEVERITY_BADGE = {rules.WARNING: "warning", rules.CAUTION: "info", rules.INFORMATION: "info"}
TIMING_ALERTS = (rules.C12H_TIMING_MISSING, rules.SAMPLE_MISTIMED, rules.NOT_STEADY_STATE)


def _dose(mg: Decimal) -> str:
    """3.00 → "3", 4.50 → "4.5", 10 → "10" (never "1E+1")."""
    return f"{Decimal(mg).normalize():f}"


def _value_in(value_ng_ml: Decimal, unit: str) -> Decimal:
    value = rules.ng_ml_to_nmol_l(value_ng_ml) if unit == rules.NMOL_UNIT else value_ng_ml
    return rules.round_to(value, 2)


def _band(low: Decimal, high: Decimal, unit: str, *, with_unit: bool = True) -> str:
    band = f"{_value_in(low, unit)}–{_value_in(high, unit)}"
    return f"{band} {unit}" if with_unit else band


def _months(value: Decimal | None) -> str:
    return "" if value is None else f"{rules.round_to(value, 1)}"


def _percent(value: Decimal | None) -> str:
    return "" if value is None else f"{rules.round_to(value, 1)} %"


def _evidence_label(tag: str) -> str:
    return EvidenceTag(tag).label if tag in EvidenceTag.values else tag


@dataclass
class LevelRow:
    a: LevelAssessment
    value: str
    range_code: str
    range_label: str
    range_badge: str
    timing_code: str
    timing_badge: str
    timing_hours: str
    timing_text: str
    steady_state: bool
    assay: str
    assay_change: str
    target: str
    can_add_last_dose: bool
    can_mark_error: bool
    predicted: str = ""  # the model's individual prediction at this trough
    far_from_model: bool = False  # |IWRES| > 3: often a wrong time or a missed dose

    @property
    def level(self) -> TroughLevel:
        return self.a.level

    # As the page prints the times (``datestamps``: faster than the date filter).
    @property
    def collected_iso(self) -> str:
        return datestamps.iso(self.a.level.collected_at)

    @property
    def collected_minute(self) -> str:
        return datestamps.minute(self.a.level.collected_at)

    @property
    def last_dose_minute(self) -> str:
        last_dose = self.a.level.last_dose_at
        return datestamps.minute(last_dose) if last_dose else ""


def level_rows(
    assessment: PatientAssessment,
    unit: str,
    residuals: dict | None = None,
    *,
    limit: int | None = None,
) -> list[LevelRow]:
    """Every trough (or the newest ``limit``), newest first, entered-in-error ones included
    (shown struck through); with the stored forecast's ``residuals``, the model's prediction
    beside each trough."""
    changes = charts.assay_change_notes(assessment)
    rows = []
    newest_first = assessment.levels[::-1]
    for a in newest_first if limit is None else newest_first[:limit]:
        level = a.level
        hours = ""
        if a.timing.hours is not None:
            hours = f"{rules.round_to(a.timing.hours, 1)} h"
            if a.timing.nominal_hours is not None:
                hours += f" (C{int(a.timing.nominal_hours)}h)"
        rows.append(
            LevelRow(
                a=a,
                value=f"{level.comparator}{_value_in(level.value_ng_ml, unit)}",
                range_code=a.range,
                range_label=RANGE_LABEL[a.range],
                range_badge=RANGE_BADGE[a.range],
                timing_code=a.timing.code,
                timing_badge=TIMING_BADGE[a.timing.code],
                timing_hours=hours,
                timing_text=rules.timing_explanation(a.timing),
                steady_state=a.steady_state,
                assay=level.get_assay_display() if level.assay else "not recorded",
                assay_change=changes.get(id(a), ""),
                target=_band(a.target.low, a.target.high, unit, with_unit=False),
                can_add_last_dose=not level.in_error and level.last_dose_at is None,
                can_mark_error=not level.in_error,
                **_residual_fields((residuals or {}).get(str(level.pk)), unit),
            )
        )
    return rows


def _residual_fields(residual: list | None, unit: str) -> dict:
    if residual is None:
        return {}
    ipred, iwres = residual
    predicted = _value_in(Decimal(str(round(ipred, 4))), unit)
    return {
        "predicted": f"{rules.round_to(predicted, 2)}",
        "far_from_model": abs(iwres) > FAR_FROM_MODEL_IWRES,
    }


@dataclass
class AlertItem:
    code: str
    label: str
    severity: str
    badge: str
    explanation: str
    evidence: str
    action: str
    details: list[str]
    ack: AlertAcknowledgement | None = None
    ack_label: str = ""


def alert_items(assessment: PatientAssessment, unit: str) -> list[AlertItem]:
    """Each alert in the words of ``alert_text``, with the patient's own facts behind it."""
    latest = assessment.latest
    metrics = assessment.metrics
    items = []
    for text in alert_texts(assessment.alerts):
        details: list[str] = []
        if latest is not None and text.code in TIMING_ALERTS:
            when = timezone.localtime(latest.level.collected_at).strftime("%Y-%m-%d %H:%M")
            if text.code == rules.NOT_STEADY_STATE:
                details.append(f"Latest trough {when}: drawn before steady state.")
            else:
                details.append(f"Latest trough {when}: {rules.timing_explanation(latest.timing)}")
        if latest is not None and text.code in (rules.TROUGH_BELOW_RANGE, rules.TROUGH_ABOVE_RANGE):
            level = latest.level
            details.append(
                f"Latest trough {level.comparator}{_value_in(level.value_ng_ml, unit)} {unit} "
                f"on {timezone.localdate(level.collected_at)}; target "
                f"{_band(latest.target.low, latest.target.high, unit)}."
            )
        if text.code == rules.INTERACTION_RECHECK:
            for event in assessment.interaction_events:
                verb = "started" if event.kind == "start" else "stopped"
                details.append(
                    f"{event.drug} {verb} {event.on} ({event.direction} tacrolimus levels): "
                    f"expect the level to {rules.expected_level_change(event)}."
                )
        if text.code == rules.HIGH_VARIABILITY and metrics.cv_percent is not None:
            details.append(f"CV {_percent(metrics.cv_percent)} (n = {metrics.cv_n}).")
        if text.code == rules.LEVEL_OVERDUE:
            details.append(
                f"Latest trough {timezone.localdate(latest.level.collected_at)}."
                if latest is not None
                else "No trough recorded."
            )
        if text.code == rules.NEPHROTOXICITY_WATCH and assessment.baseline_creatinine:
            details.append(
                f"Creatinine {rules.round_to(assessment.latest_creatinine, 2)} mg/dL against "
                f"a baseline of {rules.round_to(assessment.baseline_creatinine, 2)} mg/dL."
            )
        if text.code == rules.PRE_EXISTING_CKD and assessment.baseline_egfr is not None:
            details.append(
                f"Baseline eGFR {rules.round_to(assessment.baseline_egfr, 0)} mL/min/1.73m²."
            )
        items.append(
            AlertItem(
                code=text.code,
                label=text.label,
                severity=text.severity,
                badge=SEVERITY_BADGE.get(text.severity, "info"),
                explanation=text.explanation,
                evidence=text.evidence_label,
                action=text.action,
                details=details,
                ack=assessment.acknowledged.get(text.code),
                ack_label=ACK_LABELS.get(text.code, ""),
            )
        )
    return items


def dose_suggestion_text(assessment: PatientAssessment) -> str:
    """Decision support, never an order: "Consider 4.5 mg/day (currently 3 mg/day); ..."."""
    if assessment.dose_suggestion is None or assessment.current_regimen is None:
        return ""
    return (
        f"Consider {_dose(assessment.dose_suggestion)} mg/day (currently "
        f"{_dose(assessment.current_regimen.daily_dose_mg)} mg/day); re-check the trough in "
        "1–2 weeks at steady state."
    )


def duration_text(
    patient: Patient, assessment: PatientAssessment, thresholds: rules.Thresholds
) -> str:
    """ "N.N of 36 months since induction start 2024-09-01" (or the other anchor, named)."""
    duration = assessment.duration
    required = _dose(thresholds.required_months)
    if duration.months is None:
        return f"No therapy start recorded: the {required}-month clock cannot run."
    if patient.anchor_date:
        since = f"since {patient.anchor_reason or 'anchor'} {patient.anchor_date}"
    else:
        since = f"since induction start {patient.therapy_start}"
    text = f"{_months(duration.months)} of {required} months {since}"
    if patient.therapy_end and duration.planned:
        text += (
            f"; the planned end gives {_months(duration.total_months)} "
            f"(planned end of immunosuppression {patient.therapy_end})"
        )
    elif patient.therapy_end:
        text += (
            f"; end of immunosuppression {patient.therapy_end} "
            f"({_months(duration.total_months)} months in total)"
        )
    return text


@dataclass
class RegimenRow:
    regimen: Regimen
    change: str
    current: bool
    dose: str
    sampling: str

    @property
    def effective_minute(self) -> str:
        """As the page prints it (``datestamps``: faster than the date filter)."""
        return datestamps.minute(self.regimen.effective_at)


def regimen_rows(assessment: PatientAssessment) -> list[RegimenRow]:
    records = assessment.records
    active = sorted(
        (r for r in records.regimens if r.status == RecordStatus.ACTIVE),
        key=lambda r: r.effective_at,
    )
    labels = {id(r): label for r, label in charts.dose_changes(active)}
    current = assessment.current_regimen
    rows = [
        RegimenRow(
            regimen=r,
            change=(
                labels.get(id(r), "no change (repeated record)")
                if r.status == RecordStatus.ACTIVE
                else ""
            ),
            current=r is current,
            dose=_dose(r.daily_dose_mg),
            sampling=_dose(r.nominal_hours),
        )
        for r in records.regimens
    ]
    return sorted(rows, key=lambda row: row.regimen.effective_at, reverse=True)


@dataclass
class DrugRow:
    drug: ConcomitantDrug
    state: str
    badges: list[tuple[str, str]]  # (style, text)


def drug_rows(assessment: PatientAssessment) -> list[DrugRow]:
    active_ids = {id(d) for d in assessment.active_drugs}
    today = timezone.localdate(assessment.now)
    rows = []
    for drug in sorted(assessment.records.drugs, key=lambda d: d.started_on, reverse=True):
        if drug.status == RecordStatus.ENTERED_IN_ERROR:
            state = "entered in error"
        elif id(drug) in active_ids:
            state = "active"
        elif drug.started_on > today:
            state = "planned"
        else:
            state = "stopped"
        badges = []
        entry = drug.catalog
        if entry is None:
            badges.append(("plain", "not in the catalogue"))
        else:
            strength = f" ({entry.get_strength_display().lower()})" if entry.strength else ""
            if entry.interaction == InteractionDirection.RAISES:
                badges.append(("warning", f"raises tacrolimus level{strength}"))
            elif entry.interaction == InteractionDirection.LOWERS:
                badges.append(("warning", f"lowers tacrolimus level{strength}"))
            if entry.immunosuppressant:
                badges.append(("info", "immunosuppressant"))
            if entry.calcineurin_inhibitor:
                badges.append(("danger", "CNI (calcineurin inhibitor)"))
        rows.append(DrugRow(drug, state, badges))
    return rows


@dataclass
class MetricsView:
    window_months: int
    window_days: int
    n_qualifying: int
    percent_in_range: str
    ttr: str
    cv: str
    cv_n: int
    cv_min_n: int
    cv_high: str
    cd_ratio: str
    cd_fast: bool
    cd_threshold: str
    ttr_gap_days: int


def metrics_view(
    assessment: PatientAssessment, state: PageState, thresholds: rules.Thresholds
) -> MetricsView:
    m = assessment.metrics
    return MetricsView(
        window_months=state.window_months,
        window_days=m.window_days,
        n_qualifying=m.n_qualifying,
        percent_in_range=_percent(m.percent_in_range),
        ttr=_percent(m.ttr_percent),
        cv=_percent(m.cv_percent) if m.cv_n >= thresholds.cv_min_n else "",
        cv_n=m.cv_n,
        cv_min_n=thresholds.cv_min_n,
        cv_high=_dose(thresholds.cv_high_percent),
        cd_ratio="" if m.cd_ratio is None else f"{rules.round_to(m.cd_ratio, 2)}",
        cd_fast=m.cd_fast_metaboliser,
        cd_threshold=f"{rules.round_to(thresholds.cd_fast_metaboliser, 1)}",
        ttr_gap_days=thresholds.ttr_max_gap_days,
    )
