"""Pure follow-up logic: when the next trough is due, the one next action for a patient,
and the worklist's urgency band (clinical-rules.md §8 and the front office's loop of
measure → interpret → decide → record → re-check).

Like ``rules`` (whose codes and thresholds it uses): no Django import, values in, codes
out, every threshold an argument."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from .rules import (
    BORDERLINE,
    C12H_TIMING_MISSING,
    CNI_COMBINATION,
    DEFAULT_THRESHOLDS,
    DURATION_UNDER_36_MONTHS,
    HIGH_VARIABILITY,
    IN_RANGE,
    INDETERMINATE,
    INTERACTION_RECHECK,
    LEVEL_OVERDUE,
    MISTIMED,
    NEPHROTOXICITY_WATCH,
    NOT_STEADY_STATE,
    OVERIMMUNOSUPPRESSION,
    PRE_EXISTING_CKD,
    PREMATURE_DISCONTINUATION,
    SAMPLE_MISTIMED,
    TROUGH_ABOVE_RANGE,
    TROUGH_BELOW_RANGE,
    VALID,
    DrugEvent,
    expected_level_change,
)

# --- next trough due and the next action (closing the monitoring loop) -------------------


def next_trough_due(
    *,
    on_tacrolimus: bool,
    trough_times: Sequence[datetime],
    change_events: Iterable[datetime],
    today: date,
    overdue_days: int = DEFAULT_THRESHOLDS.overdue_days,
    post_change_days: int = DEFAULT_THRESHOLDS.post_change_trough_days,
    steady_state_hours: Decimal = DEFAULT_THRESHOLDS.steady_state_hours,
) -> date | None:
    """When the next trough is due (§8): ``post_change_days`` after the earliest change
    (dose, formulation, interacting drug) that no trough at steady state has answered yet,
    otherwise ``overdue_days`` after the latest trough. A trough drawn before steady state
    does not answer a change: it is the re-check that is still owed. None off tacrolimus.
    Datetimes are compared as instants; dates are those of the datetimes as given (the
    caller passes the site's local time)."""
    if not on_tacrolimus:
        return None
    settle = timedelta(microseconds=int(steady_state_hours * 3_600_000_000))
    pending = [
        event
        for event in change_events
        if not any(t - event >= settle for t in trough_times) and event.date() <= today
    ]
    if pending:
        return min(pending).date() + timedelta(days=post_change_days)
    latest = max(trough_times, default=None)
    if latest is None:
        return today
    return latest.date() + timedelta(days=overdue_days)


OVERDUE, DUE_THIS_WEEK = "overdue", "due this week"


def due_state(due: date | None, today: date, *, week_days: int = 7) -> str:
    """ "overdue" once the due date has passed, "due this week" within ``week_days``."""
    if due is None:
        return ""
    if due < today:
        return OVERDUE
    if due <= today + timedelta(days=week_days):
        return DUE_THIS_WEEK
    return ""


# Next-action codes: what the clinic does next about a patient, one at a time.
ACTION_ADD_LAST_DOSE = "add_last_dose"
ACTION_RECHECK_AFTER_CHANGE = "recheck_after_change"
ACTION_REPEAT_SENSITIVE_ASSAY = "repeat_sensitive_assay"
ACTION_RECHECK_TIMED = "recheck_timed"
ACTION_RECHECK_STEADY = "recheck_steady_state"
ACTION_REVIEW_DOSE = "review_dose"
ACTION_RECHECK_INTERACTION = "recheck_interaction"
ACTION_ALERT = "alert"  # the action of ``NextAction.alert`` (alert_text words it)
ACTION_NONE = "none"

# After the trough-specific actions, the remaining alerts in this order decide.
ALERT_ACTION_ORDER = (
    CNI_COMBINATION,
    LEVEL_OVERDUE,
    NEPHROTOXICITY_WATCH,
    OVERIMMUNOSUPPRESSION,
    PREMATURE_DISCONTINUATION,
    HIGH_VARIABILITY,
    PRE_EXISTING_CKD,
    DURATION_UNDER_36_MONTHS,
)


@dataclass(frozen=True)
class LatestTrough:
    """The facts about the latest trough that the next action and the urgency read."""

    collected_at: datetime
    range: str
    timing: str
    steady_state: bool
    value_ng_ml: Decimal | None = None
    comparator: str = ""


@dataclass(frozen=True)
class NextAction:
    code: str
    alert: str | None = None  # the alert it answers, if any
    due: date | None = None  # re-check due by
    direction: str | None = None  # "rise" / "fall" expected after an interaction
    timed: bool = False  # the re-check must also be correctly timed


def next_action(
    *,
    alerts: Iterable[str],
    latest: LatestTrough | None,
    changes_since_latest: Sequence[datetime] = (),  # dose or formulation changes
    interaction_events: Sequence[DrugEvent] = (),
    due: date | None = None,
    acknowledged: Collection[str] = (),
) -> NextAction:
    """The one next step for a patient. A trough that cannot be trusted (mistimed,
    borderline, drawn before steady state, censored inside the band) asks for a better
    trough, never for a dose review; a dose or drug change after the latest trough asks
    for the re-check at steady state by its due date. Acknowledged alerts (reviewed by a
    clinician since the last new data) no longer drive the action."""
    codes = set(alerts) - set(acknowledged)
    if C12H_TIMING_MISSING in codes:
        return NextAction(ACTION_ADD_LAST_DOSE, C12H_TIMING_MISSING)
    since_day = latest.collected_at.date() if latest is not None else None
    new_drugs = [
        e
        for e in interaction_events
        if INTERACTION_RECHECK in codes and (since_day is None or e.on > since_day)
    ]
    if changes_since_latest or new_drugs:
        direction = expected_level_change(new_drugs[-1]) if new_drugs else None
        return NextAction(ACTION_RECHECK_AFTER_CHANGE, None, due, direction)
    trough_codes = {TROUGH_BELOW_RANGE, TROUGH_ABOVE_RANGE, SAMPLE_MISTIMED, NOT_STEADY_STATE}
    if latest is not None and (codes & trough_codes or latest.range == INDETERMINATE):
        untimed = latest.timing in (MISTIMED, BORDERLINE)
        if untimed and (latest.range != IN_RANGE or SAMPLE_MISTIMED in codes):
            return NextAction(ACTION_RECHECK_TIMED, None, due, timed=True)
        if not latest.steady_state and NOT_STEADY_STATE in codes:
            return NextAction(ACTION_RECHECK_STEADY, NOT_STEADY_STATE, due, timed=untimed)
        if latest.range == INDETERMINATE:
            return NextAction(ACTION_REPEAT_SENSITIVE_ASSAY, None, due)
        for code in (TROUGH_ABOVE_RANGE, TROUGH_BELOW_RANGE):
            if code in codes:
                return NextAction(ACTION_REVIEW_DOSE, code)
    if CNI_COMBINATION in codes:
        return NextAction(ACTION_ALERT, CNI_COMBINATION)
    if INTERACTION_RECHECK in codes:
        direction = expected_level_change(interaction_events[-1]) if interaction_events else None
        return NextAction(ACTION_RECHECK_INTERACTION, INTERACTION_RECHECK, due, direction)
    for code in ALERT_ACTION_ORDER:
        if code in codes:
            return NextAction(ACTION_ALERT, code, due if code == LEVEL_OVERDUE else None)
    return NextAction(ACTION_NONE)


# --- worklist urgency ------------------------------------------------------------------------

BAND_CRITICAL, BAND_OUT_OF_RANGE, BAND_TIMING, BAND_OTHER, BAND_NONE = 0, 1, 2, 3, 4
TIMING_PROBLEMS = (C12H_TIMING_MISSING, SAMPLE_MISTIMED, NOT_STEADY_STATE)


def critical_level(
    value_ng_ml: Decimal,
    comparator: str,
    *,
    high: Decimal = DEFAULT_THRESHOLDS.critical_high_ng_ml,
    low: Decimal = DEFAULT_THRESHOLDS.critical_low_ng_ml,
) -> bool:
    """Far outside any target: at or above ``high`` or at or below ``low``. A censored
    result counts only when its bound says so (``>30`` is critical, ``>10`` is not)."""
    if comparator == ">":
        return value_ng_ml >= high
    if comparator == "<":
        return value_ng_ml <= low
    return value_ng_ml >= high or value_ng_ml <= low


def urgency_band(
    *,
    alerts: Iterable[str],
    latest: LatestTrough | None,
    acknowledged: Collection[str] = (),
    changed_since_latest: bool = False,
    critical_high: Decimal = DEFAULT_THRESHOLDS.critical_high_ng_ml,
    critical_low: Decimal = DEFAULT_THRESHOLDS.critical_low_ng_ml,
) -> int:
    """The worklist band, most urgent first: a critical trough (whatever its timing), then
    an out-of-range trough that is valid and at steady state, then a timing or steady-state
    problem, then any other alert, then none. Reviewed alerts do not count. A dose change
    recorded after the latest trough has answered it: the patient waits for the re-check
    with the other alerts (``changed_since_latest``)."""
    codes = set(alerts) - set(acknowledged)
    if changed_since_latest:
        return BAND_OTHER if codes else BAND_NONE
    trough_alert = codes & {TROUGH_BELOW_RANGE, TROUGH_ABOVE_RANGE}
    if trough_alert and latest is not None and latest.value_ng_ml is not None:
        if critical_level(
            latest.value_ng_ml, latest.comparator, high=critical_high, low=critical_low
        ):
            return BAND_CRITICAL
        if latest.timing == VALID and latest.steady_state:
            return BAND_OUT_OF_RANGE
    if trough_alert or codes & set(TIMING_PROBLEMS):
        return BAND_TIMING
    if codes:
        return BAND_OTHER
    return BAND_NONE
