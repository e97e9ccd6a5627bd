"""Field validation shared by the admin forms, the web pages and every importer, so a value
one of them rejects, all of them reject, with the same message (field, value, rule)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.utils import timezone

from . import rules
from .models import (
    MRN_VALIDATOR,
    Assay,
    Cyp3a5Expresser,
    Formulation,
    Frequency,
    LabTest,
    LevelStatus,
    Sex,
)

RuleError = rules.RuleError

MAX_DAILY_DOSE_MG = Decimal("50")  # [D] far above any tacrolimus dose: catches unit slips
MAX_SAMPLING_HOURS = Decimal("48")
MAX_HEIGHT_CM = Decimal("250")
MIN_HEIGHT_CM = Decimal("30")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)

LAB_UNITS = {
    LabTest.CREATININE: ("mg/dL", "umol/L"),
    LabTest.EGFR: ("mL/min/1.73m2",),
    LabTest.UPCR: ("g/g", "mg/mmol", "mg/mg"),
    LabTest.POTASSIUM: ("mmol/L",),
    LabTest.MAGNESIUM: ("mmol/L", "mg/dL"),
    LabTest.C3: ("g/L", "mg/dL"),
    LabTest.C4: ("g/L", "mg/dL"),
    LabTest.ANTI_DSDNA: ("IU/mL",),
    LabTest.HCT: ("%",),
    LabTest.WEIGHT: ("kg",),
}

# [D] Plausible ranges of the PK covariates: a hematocrit given as a fraction (0.38 L/L) or a
# weight in grams or pounds would silently change a predicted dose, so it is refused.
LAB_PLAUSIBLE = {
    LabTest.HCT: (Decimal("10"), Decimal("70")),
    LabTest.WEIGHT: (Decimal("0.5"), Decimal("300")),
}

ASSAY_SPELLINGS = {"LC-MS/MS": Assay.LCMSMS, "LCMS/MS": Assay.LCMSMS, "LC-MSMS": Assay.LCMSMS}


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def required(value: object, field: str) -> str:
    text = _text(value)
    if not text:
        raise RuleError(field, text, "is required")
    return text


def mrn(value: object, field: str = "mrn") -> str:
    text = required(value, field)
    try:
        MRN_VALIDATOR(text)
    except Exception as exc:
        raise RuleError(field, text, "letters, digits and '-' only, up to 32 characters") from exc
    return text


def parse_date(value: object, field: str, *, not_future: bool = False) -> date | None:
    text = _text(value)
    if not text:
        return None
    if not _DATE_RE.match(text):
        raise RuleError(field, text, "is not a date (expected YYYY-MM-DD)")
    try:
        parsed = date.fromisoformat(text)
    except ValueError as exc:
        raise RuleError(field, text, "is not a valid calendar date") from exc
    if not_future and parsed > timezone.localdate():
        raise RuleError(field, text, "is in the future")
    return parsed


def parse_datetime(value: object, field: str, *, not_future: bool = False) -> datetime | None:
    """ISO 8601; without an offset it is local time in the site's time zone. A local time
    that does not exist (skipped by a daylight-saving change) is rejected; one that occurs
    twice (the repeated autumn hour) is taken as its first occurrence."""
    text = _text(value)
    if not text:
        return None
    match = _DATETIME_RE.match(text)
    if not match:
        raise RuleError(
            field, text, "is not a date-time (expected e.g. 2026-03-12T07:30 or with +01:00)"
        )
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError as exc:
        raise RuleError(field, text, "is not a valid date-time") from exc
    if parsed.tzinfo is None:
        zone = timezone.get_current_timezone()
        parsed = parsed.replace(tzinfo=zone)
        if isinstance(zone, ZoneInfo) and not _exists_locally(parsed):
            raise RuleError(
                field,
                text,
                f"does not exist in {zone.key} (clocks skipped it); give the UTC offset",
            )
    if not_future:
        not_in_future(parsed, field, raw=text)
    return parsed


def not_in_future(moment: datetime, field: str, *, raw: str | None = None) -> datetime:
    if moment > timezone.now():
        raise RuleError(field, raw if raw is not None else moment.isoformat(), "is in the future")
    return moment


# The stored precision of canonical values (TroughLevel.value_ng_ml): compare at it, so a
# re-import of an nmol/L result is recognised as unchanged.
STORED_PLACES = Decimal("0.0000001")


def stored_ng_ml(value: Decimal) -> Decimal:
    return value.quantize(STORED_PLACES)


def _exists_locally(moment: datetime) -> bool:
    """A wall-clock time exists if it survives a round trip through UTC."""
    back = moment.astimezone(ZoneInfo("UTC")).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def parse_decimal(
    value: object,
    field: str,
    *,
    decimal_comma: bool = False,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    allow_zero: bool = True,
) -> Decimal | None:
    text = _text(value)
    if not text:
        return None
    normal = text.replace(",", ".") if decimal_comma else text
    if not re.match(r"^-?(\d+(\.\d*)?|\.\d+)$", normal):
        if "," in text and not decimal_comma:
            raise RuleError(field, text, "decimal comma is only accepted in ';'-delimited files")
        raise RuleError(field, text, "is not a number")
    try:
        number = Decimal(normal)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise RuleError(field, text, "is not a number") from exc
    if number < 0:
        raise RuleError(field, text, "must not be negative")
    if not allow_zero and number == 0:
        raise RuleError(field, text, "must be greater than zero")
    if minimum is not None and number < minimum:
        raise RuleError(field, text, f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise RuleError(field, text, f"must not exceed {maximum}")
    return number


def choice(value: object, field: str, choices: type, *, default: str | None = None) -> str:
    text = _text(value)
    if not text:
        if default is not None:
            return default
        raise RuleError(field, text, "is required")
    for option in choices.values:
        if text.upper() == str(option).upper():
            return option
    accepted = ", ".join(str(v) for v in choices.values if v)
    raise RuleError(field, text, f"is not one of {accepted}")


def sex(value: object) -> str:
    return choice(value, "sex", Sex)


def cyp3a5_expresser(value: object) -> str:
    """``yes``, ``no`` or ``unknown`` in any case; empty is unknown."""
    return choice(
        _text(value).lower(), "cyp3a5_expresser", Cyp3a5Expresser, default=Cyp3a5Expresser.UNKNOWN
    )


def height_cm(value: object, *, decimal_comma: bool = False) -> Decimal | None:
    return parse_decimal(
        value,
        "height_cm",
        decimal_comma=decimal_comma,
        minimum=MIN_HEIGHT_CM,
        maximum=MAX_HEIGHT_CM,
    )


def formulation(value: object) -> str:
    return choice(value, "formulation", Formulation)


def frequency(value: object) -> str:
    return choice(value, "frequency", Frequency)


def daily_dose_mg(value: object, *, decimal_comma: bool = False) -> Decimal:
    dose = parse_decimal(
        value, "daily_dose_mg", decimal_comma=decimal_comma, maximum=MAX_DAILY_DOSE_MG
    )
    if dose is None:
        raise RuleError("daily_dose_mg", _text(value), "is required")
    return dose


def sampling_hours(value: object, *, decimal_comma: bool = False) -> Decimal | None:
    return parse_decimal(
        value,
        "sampling_hours",
        decimal_comma=decimal_comma,
        allow_zero=False,
        maximum=MAX_SAMPLING_HOURS,
    )


def dose_times(value: object, frequency: str) -> str:
    """The stored form of a regimen's dosing clock times: ``08:00;20:00`` normalised, or
    empty (the frequency's defaults apply on read)."""
    text = _text(value)
    if not text:
        return ""
    return ";".join(rules.parse_dose_times(text, frequency))


def assay(value: object) -> str:
    text = _text(value)
    if text.upper() in ASSAY_SPELLINGS:
        return ASSAY_SPELLINGS[text.upper()]
    return choice(text, "assay", Assay, default="")


def level_status(value: object) -> str:
    text = _text(value)
    allowed = (LevelStatus.FINAL, LevelStatus.CORRECTED, LevelStatus.PRELIMINARY)
    if not text:
        return LevelStatus.FINAL
    for option in allowed:
        if text.lower() == option:
            return option
    raise RuleError("status", text, "is not one of final, corrected, preliminary")


def level_timing(
    collected_at: datetime,
    last_dose_at: datetime | None,
    thresholds: rules.Thresholds,
    *,
    raw: str | None = None,
) -> None:
    """The last dose must fall in the window before the draw; ``raw`` is the text as the
    user typed it, so the message quotes what they wrote rather than our reformatting."""
    try:
        rules.validate_last_dose(
            collected_at, last_dose_at, max_hours=thresholds.max_dose_to_draw_hours
        )
    except RuleError as exc:
        raise RuleError(exc.field, raw if raw is not None else exc.value, exc.message) from exc


def lab_test(value: object) -> str:
    return choice(_text(value).lower(), "test", LabTest)


def lab_unit(test: str, value: object) -> str:
    text = required(value, "unit")
    key = text.replace("µ", "u").replace("μ", "u").replace(" ", "").lower()
    for unit in LAB_UNITS[test]:
        if key == unit.lower():
            return unit
    accepted = ", ".join(LAB_UNITS[test])
    raise RuleError("unit", text, f"is not a unit for {test} (accepted: {accepted})")


def lab_value(value: object, *, decimal_comma: bool = False, test: str | None = None) -> Decimal:
    number = parse_decimal(value, "value", decimal_comma=decimal_comma)
    if number is None:
        raise RuleError("value", _text(value), "is required")
    if test in LAB_PLAUSIBLE:
        low, high = LAB_PLAUSIBLE[test]
        if not low <= number <= high:
            unit = LAB_UNITS[test][0]
            raise RuleError(
                "value", _text(value), f"is not a plausible {test} ({low}–{high} {unit})"
            )
    return number
