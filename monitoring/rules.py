"""Pure clinical logic for tacrolimus monitoring in lupus nephritis.

Everything here follows docs/clinical-rules.md. No Django import: values come in as
Decimal / date / aware datetime, verdicts go out as the stable lowercase codes of §9.
Every threshold is an argument (see ``Thresholds``) so the stored configuration decides,
not a literal buried in the logic.

The shared vocabulary (the codes of §9, ``RuleError``, ``Thresholds``) is in rules_base.py
and the metrics of §7 in rules_metrics.py, so that this module stays readable; both are
re-exported here, and ``rules.X`` is the one name callers use.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# What other modules hold, re-exported: callers say ``rules.X`` whatever module X lives in.
from .rules_base import (  # noqa: F401
    ABOVE,
    ALERT_CODES,
    ALERT_SEVERITY,
    BELOW,
    BORDERLINE,
    C12H_TIMING_MISSING,
    CAUTION,
    CNI_COMBINATION,
    DEFAULT_THRESHOLDS,
    DESIGN,
    DURATION_MET,
    DURATION_UNDER_36_MONTHS,
    DURATION_UNKNOWN,
    GUIDELINE,
    HIGH_VARIABILITY,
    IN_RANGE,
    INDETERMINATE,
    INFORMATION,
    INTERACTION_RECHECK,
    LEVEL_OVERDUE,
    LITERATURE,
    MISTIMED,
    NEPHROTOXICITY_WATCH,
    NOT_STEADY_STATE,
    OVERIMMUNOSUPPRESSION,
    PRE_EXISTING_CKD,
    PREMATURE_DISCONTINUATION,
    SAMPLE_MISTIMED,
    TROUGH_ABOVE_RANGE,
    TROUGH_BELOW_RANGE,
    UNKNOWN,
    VALID,
    WARNING,
    RuleError,
    Thresholds,
)
from .rules_metrics import (  # noqa: F401
    TroughPoint,
    cd_ratio,
    cv_percent,
    dose_suggestion,
    percent_in_range,
    time_in_range,
)

CANONICAL_UNIT = "ng/mL"
NMOL_UNIT = "nmol/L"
# Anhydrous tacrolimus, 804.02 g/mol (the monohydrate's 1.217 factor is wrong here).
NMOL_PER_NG = Decimal("1.2438")
NG_PER_NMOL = Decimal("0.80402")

_MASS_UNITS = {"ng/ml", "ug/l", "µg/l", "μg/l", "mcg/l"}  # micro sign and Greek mu both seen
_MOLAR_UNITS = {"nmol/l"}


# --- text ----------------------------------------------------------------------------------

LINE_BREAKS = frozenset("\t\n\r")
CONTROL_MESSAGE = "contains a control character ({code}), which text may not hold: retype it"


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """The first control character of ``text`` (NUL, escape, bell, C1 codes, a lone
    surrogate...), or None. Multi-line text may hold tabs and line breaks. PostgreSQL refuses
    NUL and SQLite stores it; both would store the others, invisible on every page."""
    if text.isprintable():  # in C: no Cc or Cs character (an import checks every cell)
        return None
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs") and not (multiline and char in LINE_BREAKS):
            return char
    return None


def _escaped(char: str) -> str:
    if unicodedata.category(char) not in ("Cc", "Cs"):
        return char
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``), for a message."""
    return "".join(_escaped(char) for char in text)


def check_text(field: str, text: str, *, multiline: bool = False) -> str:
    """``text`` unchanged, or a RuleError naming the field and the character."""
    char = control_character(text, multiline=multiline)
    if char is not None:
        raise RuleError(field, visible(text), CONTROL_MESSAGE.format(code=f"U+{ord(char):04X}"))
    return text


# --- §1 units and values --------------------------------------------------------------


@dataclass(frozen=True)
class ParsedValue:
    comparator: str  # "", "<" or ">"
    value: Decimal


_VALUE_RE = re.compile(r"^\s*([<>])?\s*([0-9]+(?:[.,][0-9]+)?|[.,][0-9]+)\s*$")


# A ','-delimited file would split "5,2" in two cells; with ';' it is allowed.
DECIMAL_COMMA_IN_FILE = "decimal comma is only accepted in ';'-delimited files"


def parse_reported_value(
    text: object, *, decimal_comma: bool = False, field: str = "value"
) -> ParsedValue:
    """Parse ``5.2``, ``<1.0``, ``> 30`` into (comparator, value) without coercing censored
    results to a number. A decimal comma is accepted only when the file allows it."""
    raw = "" if text is None else str(text)
    match = _VALUE_RE.match(raw)
    if not match:
        if raw.strip() == "":
            raise RuleError(field, raw, "a value is required")
        if re.match(r"^\s*-", raw):
            raise RuleError(field, raw, "must be greater than zero")
        raise RuleError(field, raw, "is not a number (expected e.g. 5.2, <1.0 or >30)")
    comparator, number = match.group(1) or "", match.group(2)
    if "," in number:
        if not decimal_comma:
            raise RuleError(field, raw, DECIMAL_COMMA_IN_FILE)
        number = number.replace(",", ".")
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only digits
        raise RuleError(field, raw, "is not a number") from exc
    if value <= 0:
        raise RuleError(field, raw, "must be greater than zero")
    return ParsedValue(comparator, value)


def normalise_unit(text: object, *, field: str = "unit") -> str:
    """Return ``ng/mL`` or ``nmol/L`` for any accepted spelling; reject the rest."""
    raw = "" if text is None else str(text)
    key = raw.strip().lower().replace(" ", "")
    if key in _MASS_UNITS:
        return CANONICAL_UNIT
    if key in _MOLAR_UNITS:
        return NMOL_UNIT
    if key == "":
        raise RuleError(field, raw, "a unit is required")
    raise RuleError(field, raw, "unknown unit (accepted: ng/mL, ug/L, µg/L, mcg/L, nmol/L)")


def to_ng_ml(value: Decimal, unit: str) -> Decimal:
    """Canonical ng/mL from a value in an accepted unit (unrounded)."""
    if normalise_unit(unit) == NMOL_UNIT:
        return value * NG_PER_NMOL
    return value


def ng_ml_to_nmol_l(value: Decimal) -> Decimal:
    return value * NMOL_PER_NG


def round_to(value: Decimal, places: int) -> Decimal:
    """Half-up rounding for display (bankers' rounding surprises clinicians)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


# Canonical values are stored with 7 decimals; anything smaller would be stored as zero.
SMALLEST_STORED_NG_ML = Decimal("0.0000001")


@dataclass(frozen=True)
class Level:
    comparator: str
    reported_value: Decimal
    unit: str
    value_ng_ml: Decimal


def parse_level(
    value_text: object,
    unit_text: object,
    *,
    ceiling_ng_ml: Decimal = DEFAULT_THRESHOLDS.plausibility_ceiling_ng_ml,
    decimal_comma: bool = False,
) -> Level:
    """Validate a reported tacrolimus result and convert it to canonical ng/mL."""
    parsed = parse_reported_value(value_text, decimal_comma=decimal_comma)
    unit = normalise_unit(unit_text)
    ng_ml = to_ng_ml(parsed.value, unit)
    if ng_ml < SMALLEST_STORED_NG_ML:
        raise RuleError(
            "value",
            value_text,
            f"is below the smallest storable value ({SMALLEST_STORED_NG_ML} ng/mL)",
        )
    if ng_ml > ceiling_ng_ml:
        raise RuleError(
            "value",
            value_text,
            f"above the plausibility ceiling of {ceiling_ng_ml} ng/mL",
        )
    return Level(parsed.comparator, parsed.value, unit, ng_ml)


# --- §2 target range ---------------------------------------------------------------------


def range_verdict(value_ng_ml: Decimal, comparator: str, low: Decimal, high: Decimal) -> str:
    """Verdict on the unrounded canonical value against the inclusive band [low, high]."""
    if comparator == "<":
        return BELOW if value_ng_ml <= low else INDETERMINATE
    if comparator == ">":
        return ABOVE if value_ng_ml >= high else INDETERMINATE
    if value_ng_ml < low:
        return BELOW
    if value_ng_ml > high:
        return ABOVE
    return IN_RANGE


def effective_at(items: Sequence[tuple[datetime, object]], moment: datetime) -> object | None:
    """The payload of the last (start, payload) pair whose start is at or before ``moment``
    (of pairs starting together, the last given). Used for the target and the regimen in
    force at a sample's collection time."""
    return Timeline(items).at(moment)


class Timeline:
    """(start, payload) pairs sorted once, for ``effective_at`` at many moments: judging
    thousands of samples against one patient's regimens sorted the regimens per sample."""

    __slots__ = ("_payloads", "_starts")

    def __init__(self, items: Iterable[tuple[datetime, object]]) -> None:
        pairs = sorted(items, key=lambda pair: pair[0])  # stable: ties keep their order
        self._starts = [start for start, _ in pairs]
        self._payloads = [payload for _, payload in pairs]

    def at(self, moment: datetime) -> object | None:
        index = bisect_right(self._starts, moment)
        return self._payloads[index - 1] if index else None


# --- §3 sample timing ----------------------------------------------------------------------

EARLY, LATE = "early", "late"
NO_LAST_DOSE = "no last-dose time recorded"
NO_REGIMEN = "no regimen recorded"


def _utc_offset(moment: datetime, name: str) -> timedelta:
    offset = moment.utcoffset()  # None when naive, or when the tzinfo gives none
    if offset is None:
        raise ValueError(f"{name} must be time-zone aware")
    return offset


def _require_aware(moment: datetime, name: str) -> None:
    _utc_offset(moment, name)


def elapsed_hours(start: datetime, end: datetime) -> Decimal:
    """Real hours between two aware instants. Subtracting datetimes that share a tzinfo
    compares wall clocks, which is wrong across a daylight-saving change: the change of
    UTC offset between the two is taken off. (Python itself subtracts datetimes of two
    different zones in UTC.)

    A re-judge asks this for every trough. Converting both to UTC and building a Decimal
    took 1.8 us a pair; the offsets alone take a third of that, and the intervals repeat
    (a clinic's draws come at the same hours after the dose), so each distinct one's hours
    are built once and then looked up."""
    start_offset, end_offset = _utc_offset(start, "start"), _utc_offset(end, "end")
    if start.tzinfo is not end.tzinfo:
        return _hours(end - start)
    return _hours(end - start - (end_offset - start_offset))


# Decimal hours by interval: immutable values, the same for one interval whoever asks; a
# bounded cache, for a file of all-different intervals.
@functools.lru_cache(maxsize=4096)
def _hours(interval: timedelta) -> Decimal:
    return Decimal(str(interval.total_seconds())) / Decimal(3600)


def validate_last_dose(
    collected_at: datetime,
    last_dose_at: datetime | None,
    *,
    max_hours: Decimal = DEFAULT_THRESHOLDS.max_dose_to_draw_hours,
) -> None:
    """A last dose after the draw, or more than ``max_hours`` before it, is a data error."""
    if last_dose_at is None:
        return
    hours = elapsed_hours(last_dose_at, collected_at)
    if hours < 0:
        raise RuleError("last_dose_at", last_dose_at.isoformat(), "is after the collection time")
    if hours > max_hours:
        raise RuleError(
            "last_dose_at",
            last_dose_at.isoformat(),
            f"is more than {max_hours} h before the collection time",
        )


@dataclass(frozen=True)
class Timing:
    code: str
    hours: Decimal | None = None
    nominal_hours: Decimal | None = None
    direction: str | None = None  # EARLY reads falsely high, LATE falsely low
    reason: str = ""


def timing_verdict(
    collected_at: datetime,
    last_dose_at: datetime | None,
    nominal_hours: Decimal | None,
    *,
    valid_hours: Decimal = DEFAULT_THRESHOLDS.timing_valid_hours,
    borderline_hours: Decimal = DEFAULT_THRESHOLDS.timing_borderline_hours,
) -> Timing:
    """C12h / C24h check. ``nominal_hours`` is None when no regimen was in force."""
    hours = elapsed_hours(last_dose_at, collected_at) if last_dose_at else None
    if last_dose_at is None:
        return Timing(UNKNOWN, None, nominal_hours, None, NO_LAST_DOSE)
    if nominal_hours is None:
        return Timing(UNKNOWN, hours, None, None, NO_REGIMEN)
    offset = hours - nominal_hours
    direction = EARLY if offset < 0 else LATE if offset > 0 else None
    if abs(offset) <= valid_hours:
        return Timing(VALID, hours, nominal_hours, direction)
    if abs(offset) <= borderline_hours:
        return Timing(BORDERLINE, hours, nominal_hours, direction)
    return Timing(MISTIMED, hours, nominal_hours, direction)


def default_sampling_hours(frequency: str) -> Decimal:
    """12 h for twice-daily, 24 h for once-daily dosing."""
    return Decimal(24) if frequency.upper() == "QD" else Decimal(12)


DOSES_PER_DAY = {"BID": 2, "QD": 1}
# [D] Clock times assumed when a regimen records none (site time zone).
DEFAULT_DOSE_TIMES = {"BID": ("08:00", "20:00"), "QD": ("08:00",)}


def doses_per_day(frequency: str) -> int:
    return DOSES_PER_DAY[frequency.upper()]


def default_dose_times(frequency: str) -> tuple[str, ...]:
    return DEFAULT_DOSE_TIMES[frequency.upper()]


_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_dose_times(text: str, frequency: str, *, field: str = "dose_times") -> tuple[str, ...]:
    """``"08:00;20:00"`` → ``("08:00", "20:00")``: 24-hour HH:MM, strictly increasing within
    the day, exactly as many as the frequency's doses per day. Empty → the defaults."""
    text = (text or "").strip()
    if not text:
        return default_dose_times(frequency)
    times = []
    for part in text.split(";"):
        match = _CLOCK_RE.match(part.strip())
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise RuleError(field, text, f"'{part.strip()}' is not a 24-hour time HH:MM")
        times.append(f"{int(match[1]):02d}:{match[2]}")
    if any(later <= earlier for earlier, later in zip(times, times[1:], strict=False)):
        raise RuleError(field, text, "times must be strictly increasing within the day")
    expected = doses_per_day(frequency)
    if len(times) != expected:
        raise RuleError(
            field, text, f"{frequency.upper()} needs {expected} time(s), {len(times)} given"
        )
    return tuple(times)


def timing_explanation(timing: Timing) -> str:
    """Plain words for the UI, including which way an off-time sample misleads."""
    if timing.code == UNKNOWN:
        return f"Timing unknown: {timing.reason}."
    nominal = f"C{int(timing.nominal_hours)}h" if timing.nominal_hours is not None else "trough"
    hours = f"{round_to(timing.hours, 1)} h after the dose"
    if timing.code == VALID:
        return f"{nominal} sample, {hours}."
    if timing.direction == EARLY:
        return f"{hours}: drawn early, so the level reads falsely high."
    return f"{hours}: drawn late, so the level reads falsely low."


# --- §4 steady state ---------------------------------------------------------------------


def at_steady_state(
    collected_at: datetime,
    change_events: Iterable[datetime],
    *,
    hours: Decimal = DEFAULT_THRESHOLDS.steady_state_hours,
) -> bool:
    """False when the sample was drawn less than ``hours`` after a dose change, formulation
    switch or interacting-drug start/stop. Exactly ``hours`` after counts as steady."""
    _require_aware(collected_at, "collected_at")
    drawn = collected_at.astimezone(UTC)
    # Whole microseconds, exact: this runs for every trough against every change, so it
    # compares timedeltas rather than building a Decimal per pair as elapsed_hours does.
    window = timedelta(microseconds=int(hours * 3_600_000_000))
    for event in change_events:
        _require_aware(event, "change event")
        if timedelta(0) <= drawn - event.astimezone(UTC) < window:
            return False
    return True


# --- §5 duration of immunosuppression --------------------------------------------------


def months_between(start: date, end: date, days_per_month: Decimal) -> Decimal:
    return Decimal((end - start).days) / days_per_month


@dataclass(frozen=True)
class Duration:
    code: str  # met, duration_under_36_months, premature_discontinuation, unknown
    months: Decimal | None  # to the end date or as-of date, whichever is earlier
    total_months: Decimal | None  # to the recorded/planned end, or to as-of when ongoing
    planned: bool = False  # the end date lies after the as-of date


def duration_status(
    start: date | None,
    end: date | None,
    as_of: date,
    *,
    required_months: Decimal = DEFAULT_THRESHOLDS.required_months,
    days_per_month: Decimal = DEFAULT_THRESHOLDS.days_per_month,
) -> Duration:
    """The 36-month rule. A recorded or planned end short of the requirement is premature
    discontinuation, which wins over 'under 36 months'. ``met`` only when the requirement has
    passed by the as-of date, or the recorded end came at or after it: a planned end beyond
    36 months does not make a patient at 34.8 months ``met``. Compared unrounded."""
    if start is None:
        return Duration(DURATION_UNKNOWN, None, None)
    so_far = months_between(start, min(end, as_of) if end else as_of, days_per_month)
    so_far = max(so_far, Decimal(0))
    if end is not None:
        total = months_between(start, end, days_per_month)
        planned = end > as_of
        if total < required_months:
            code = PREMATURE_DISCONTINUATION
        elif not planned or so_far >= required_months:
            code = DURATION_MET
        else:
            code = DURATION_UNDER_36_MONTHS
        return Duration(code, so_far, total, planned)
    code = DURATION_UNDER_36_MONTHS if so_far < required_months else DURATION_MET
    return Duration(code, so_far, so_far)


def duration_progress(duration: Duration, required_months: Decimal) -> str:
    """ "34.8 of 36 months", and with a planned end "…; the planned end gives 42.0"."""
    if duration.months is None:
        return ""
    required = f"{required_months.normalize():f}"
    text = f"{round_to(duration.months, 1)} of {required} months"
    if duration.planned and duration.total_months is not None:
        text += f"; the planned end gives {round_to(duration.total_months, 1)}"
    return text


# --- §6 kidney function ------------------------------------------------------------------

CREATININE_UMOL_PER_MG_DL = Decimal("88.4")


def creatinine_mg_dl(value: Decimal, unit: str) -> Decimal:
    key = unit.strip().lower().replace(" ", "").replace("µ", "u").replace("μ", "u")
    if key == "mg/dl":
        return value
    if key == "umol/l":
        return value / CREATININE_UMOL_PER_MG_DL
    raise RuleError("unit", unit, "unknown creatinine unit (accepted: mg/dL, umol/L)")


def egfr_ckd_epi_2021(scr_mg_dl: Decimal, age_years: int, sex: str) -> Decimal | None:
    """Race-free CKD-EPI 2021 for adults; None when sex is neither F nor M."""
    if sex not in ("F", "M"):
        return None
    female = sex == "F"
    kappa = 0.7 if female else 0.9
    alpha = -0.241 if female else -0.302
    ratio = float(scr_mg_dl) / kappa
    egfr = (
        142
        * min(ratio, 1.0) ** alpha
        * max(ratio, 1.0) ** -1.200
        * 0.9938**age_years
        * (1.012 if female else 1.0)
    )
    return Decimal(str(round(egfr, 6)))


def egfr_ckid_bedside(height_cm: Decimal, scr_mg_dl: Decimal) -> Decimal:
    """Bedside CKiD (Schwartz 2009) for children."""
    return Decimal("0.413") * height_cm / scr_mg_dl


def age_in_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def egfr(
    scr_mg_dl: Decimal, *, birth: date, on: date, sex: str, height_cm: Decimal | None
) -> Decimal | None:
    """CKD-EPI 2021 from 18 years, bedside CKiD below (None without a height)."""
    age = age_in_years(birth, on)
    if age < 18:
        return egfr_ckid_bedside(height_cm, scr_mg_dl) if height_cm else None
    return egfr_ckd_epi_2021(scr_mg_dl, age, sex)


def pre_existing_ckd(
    baseline_egfr: Decimal | None, *, threshold: Decimal = DEFAULT_THRESHOLDS.ckd_egfr
) -> bool:
    return baseline_egfr is not None and baseline_egfr < threshold


def nephrotoxicity_watch(
    baseline_scr: Decimal | None,
    latest_scr: Decimal | None,
    *,
    rise_percent: Decimal = DEFAULT_THRESHOLDS.creatinine_rise_percent,
) -> bool:
    """Creatinine up by ``rise_percent`` or more over the pre-tacrolimus baseline."""
    if baseline_scr is None or latest_scr is None or baseline_scr <= 0:
        return False
    return (latest_scr - baseline_scr) * 100 >= rise_percent * baseline_scr


# --- §6 concomitant drugs --------------------------------------------------------------

RAISES, LOWERS = "raises", "lowers"


@dataclass(frozen=True)
class ActiveDrug:
    name: str
    immunosuppressant: bool = False
    calcineurin_inhibitor: bool = False


def immunosuppression_alerts(
    active_drugs: Iterable[ActiveDrug],
    *,
    max_others: int = DEFAULT_THRESHOLDS.max_other_immunosuppressants,
) -> set[str]:
    """Over-immunosuppression and CNI combination, counting drugs besides tacrolimus.
    Duplicate entries of one drug count once."""
    others = {d.name.lower() for d in active_drugs if d.immunosuppressant}
    cnis = {d.name.lower() for d in active_drugs if d.calcineurin_inhibitor}
    codes = set()
    if cnis:
        codes.add(CNI_COMBINATION)
    if len(others - cnis) > max_others:
        codes.add(OVERIMMUNOSUPPRESSION)
    return codes


@dataclass(frozen=True)
class DrugEvent:
    on: date
    kind: str  # "start" or "stop"
    drug: str
    direction: str  # RAISES or LOWERS


def recent_interaction_events(
    events: Iterable[DrugEvent],
    as_of: date,
    last_trough_on: date | None,
    *,
    recent_days: int = DEFAULT_THRESHOLDS.interaction_recent_days,
) -> list[DrugEvent]:
    """Interacting-drug starts/stops within ``recent_days`` of ``as_of`` or since the last
    trough: each calls for a re-check of the trough."""
    hits = []
    for event in events:
        if event.on > as_of:
            continue
        recent = (as_of - event.on).days <= recent_days
        since_trough = last_trough_on is not None and event.on > last_trough_on
        if recent or since_trough:
            hits.append(event)
    return sorted(hits, key=lambda e: (e.on, e.drug))


def expected_level_change(event: DrugEvent) -> str:
    """Starting an inhibitor raises the level; stopping it lets the level fall (and the
    reverse for inducers)."""
    rises = (event.direction == RAISES) == (event.kind == "start")
    return "rise" if rises else "fall"


# --- §7 metrics: in rules_metrics.py (percent and time in range, CV, C/D ratio, dose) -----


# --- §8 monitoring schedule ------------------------------------------------------------


def level_overdue(
    *,
    on_tacrolimus: bool,
    trough_times: Sequence[datetime],
    change_events: Iterable[datetime],
    now: datetime,
    overdue_days: int = DEFAULT_THRESHOLDS.overdue_days,
    post_change_days: int = DEFAULT_THRESHOLDS.post_change_trough_days,
) -> bool:
    """Overdue when the latest trough is older than ``overdue_days`` (or there is none), or
    when a change has had no trough within ``post_change_days`` once that window has passed.
    A trough drawn later than the window still answers the change: the flag describes what
    is outstanding now, not a lapse already made good."""
    if not on_tacrolimus:
        return False
    latest = max(trough_times, default=None)
    if latest is None or now - latest > timedelta(days=overdue_days):
        return True
    window = timedelta(days=post_change_days)
    for event in change_events:
        if now - event <= window:
            continue  # still inside the window: not overdue yet
        if not latest > event:  # no trough after the change (the latest is the last chance)
            return True
    return False


# --- the patient's alert list -------------------------------------------------------------


@dataclass
class AlertInputs:
    """Everything the patient's alert list is decided from, already judged per level."""

    latest_range: str | None = None
    latest_timing: str | None = None
    latest_timing_reason: str = ""
    latest_steady_state: bool | None = None
    duration_code: str = DURATION_UNKNOWN
    interaction_events: list[DrugEvent] = field(default_factory=list)
    immunosuppression_codes: set[str] = field(default_factory=set)
    pre_existing_ckd: bool = False
    nephrotoxicity_watch: bool = False
    level_overdue: bool = False
    cv_percent: Decimal | None = None
    cv_high_percent: Decimal = DEFAULT_THRESHOLDS.cv_high_percent


def patient_alerts(inputs: AlertInputs) -> list[str]:
    """The patient's alert codes (§9), sorted. Trough alerts refer to the latest trough."""
    codes: set[str] = set()
    if inputs.latest_range == BELOW:
        codes.add(TROUGH_BELOW_RANGE)
    elif inputs.latest_range == ABOVE:
        codes.add(TROUGH_ABOVE_RANGE)
    if inputs.latest_timing == UNKNOWN and inputs.latest_timing_reason == NO_LAST_DOSE:
        codes.add(C12H_TIMING_MISSING)
    elif inputs.latest_timing == MISTIMED:
        codes.add(SAMPLE_MISTIMED)
    if inputs.latest_steady_state is False:
        codes.add(NOT_STEADY_STATE)
    if inputs.duration_code in (DURATION_UNDER_36_MONTHS, PREMATURE_DISCONTINUATION):
        codes.add(inputs.duration_code)
    if inputs.interaction_events:
        codes.add(INTERACTION_RECHECK)
    codes |= inputs.immunosuppression_codes
    if inputs.pre_existing_ckd:
        codes.add(PRE_EXISTING_CKD)
    if inputs.nephrotoxicity_watch:
        codes.add(NEPHROTOXICITY_WATCH)
    if inputs.level_overdue:
        codes.add(LEVEL_OVERDUE)
    if inputs.cv_percent is not None and inputs.cv_percent > inputs.cv_high_percent:
        codes.add(HIGH_VARIABILITY)
    return sorted(codes)


def urgency_key(codes: Iterable[str]) -> tuple[int, int]:
    """Sort key for the worklist: more warnings first, then more alerts."""
    codes = list(codes)
    warnings = sum(1 for c in codes if ALERT_SEVERITY.get(c) == WARNING)
    return (-warnings, -len(codes))
