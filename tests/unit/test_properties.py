"""Property-based tests (hypothesis) of the rules and parsers: whatever comes in, the answer
is a value or a RuleError naming the field (never another exception), and unit conversions
round-trip. No database: the importers' database half is tested in tests/integration."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from monitoring import rules, validation
from monitoring.importers import hl7 as hl7_import
from monitoring.importers.csv_reader import read_table
from monitoring.models import Assay, LabTest

# Each property runs on many inputs; keep the whole file to a few seconds.
settings.register_profile(
    "tdm", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("tdm")

ANY_TEXT = st.text(max_size=60)
# Text that looks like what people type into a value cell: digits, signs, separators, spaces.
VALUE_TEXT = st.text(alphabet="0123456789.,<>=+- eE\t", max_size=20)
UNIT_TEXT = st.one_of(
    st.sampled_from(
        [
            "ng/mL",
            "ug/L",
            "µg/L",
            "μg/L",
            "mcg/L",
            "nmol/L",
            " NG/ML ",
            "nmol/l",
            "mg/L",
            "",
            "ng / mL",
        ]
    ),
    ANY_TEXT,
)
# Canonical concentrations as stored (up to 7 decimals), within the plausibility ceiling.
NG_ML = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)
AWARE = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def returns_or_rule_error(func, *args, **kwargs):
    """Call func: a RuleError is an answer too; anything else escapes and fails the test."""
    try:
        return func(*args, **kwargs)
    except rules.RuleError as exc:
        assert exc.field and exc.message
        return exc


# --- values and units -------------------------------------------------------------------------


@given(VALUE_TEXT | ANY_TEXT, st.booleans())
@example("9" * 5000, False)
@example("<0", False)
@example("1e5", False)
@example("NaN", False)
@example("Infinity", False)
@example("٣٫٥", False)  # Arabic-Indic digits
def test_a_reported_value_parses_or_is_refused(text, decimal_comma):
    result = returns_or_rule_error(rules.parse_reported_value, text, decimal_comma=decimal_comma)

    if isinstance(result, rules.ParsedValue):
        assert result.comparator in ("", "<", ">")
        assert result.value > 0
        assert result.value.is_finite()


@given(VALUE_TEXT | ANY_TEXT, UNIT_TEXT)
def test_a_level_parses_within_the_ceiling_or_is_refused(value, unit):
    result = returns_or_rule_error(rules.parse_level, value, unit)

    if isinstance(result, rules.Level):
        assert 0 < result.value_ng_ml <= rules.DEFAULT_THRESHOLDS.plausibility_ceiling_ng_ml
        assert result.unit in (rules.CANONICAL_UNIT, rules.NMOL_UNIT)


@given(UNIT_TEXT)
def test_unit_normalisation_is_idempotent(unit):
    result = returns_or_rule_error(rules.normalise_unit, unit)

    if isinstance(result, str):
        assert rules.normalise_unit(result) == result


@given(NG_ML)
def test_ng_to_nmol_to_ng_round_trips(ng):
    back = rules.to_ng_ml(rules.ng_ml_to_nmol_l(ng), rules.NMOL_UNIT)

    # The two published factors (×1.2438, ×0.80402) are each rounded, so a round trip is
    # exact to 5 parts in 100 000 — far inside the 2-decimal display.
    assert abs(back - ng) <= ng * Decimal("0.00005")
    assert rules.round_to(back, 2) == rules.round_to(ng, 2)


@given(NG_ML)
def test_a_value_shown_in_nmol_and_typed_back_reads_the_same_in_ng(ng):
    shown = rules.round_to(rules.ng_ml_to_nmol_l(ng), 2)  # what the page displays

    level = rules.parse_level(str(shown), "nmol/L", ceiling_ng_ml=Decimal("200"))

    # Off by at most the display's half-step (0.005 nmol/L ≈ 0.004 ng/mL) plus the factors'
    # own rounding: a value on a rounding boundary may flip its last shown digit, no more.
    assert abs(level.value_ng_ml - ng) <= Decimal("0.005") * rules.NG_PER_NMOL + ng * Decimal(
        "0.00005"
    )


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("124.37"), places=2))
def test_a_result_reported_in_nmol_is_shown_in_nmol_as_reported(nmol):
    level = rules.parse_level(str(nmol), "nmol/L")

    assert rules.round_to(rules.ng_ml_to_nmol_l(level.value_ng_ml), 2) == nmol


@given(st.decimals(min_value=Decimal("0.0000001"), max_value=Decimal("100"), places=7))
def test_an_accepted_level_is_storable(ng):
    level = returns_or_rule_error(rules.parse_level, f"{ng:f}", "ng/mL")

    if isinstance(level, rules.Level):
        stored = validation.stored_ng_ml(level.value_ng_ml)
        assert stored > 0  # the database refuses a zero (level_value_positive)
        assert len(stored.as_tuple().digits) <= 14  # max_digits of value_ng_ml


@pytest.mark.parametrize("text", ["0.00000001", "<0.00000004"])
def test_a_value_too_small_to_store_is_refused_by_the_parser(text):
    with pytest.raises(rules.RuleError):
        rules.parse_level(text, "ng/mL")


@given(NG_ML, st.sampled_from(["", "<", ">"]), NG_ML, NG_ML)
def test_the_range_verdict_is_always_one_of_the_codes(value, comparator, a, b):
    low, high = sorted((a, b))
    assume(low < high)

    verdict = rules.range_verdict(value, comparator, low, high)

    assert verdict in (rules.BELOW, rules.IN_RANGE, rules.ABOVE, rules.INDETERMINATE)
    if not comparator:
        assert (verdict == rules.IN_RANGE) == (low <= value <= high)


# --- timing and metrics ------------------------------------------------------------------------


@given(AWARE, st.one_of(st.none(), AWARE), st.sampled_from([None, Decimal(12), Decimal(24)]))
def test_the_timing_verdict_never_fails(collected, last_dose, nominal):
    timing = rules.timing_verdict(collected, last_dose, nominal)

    assert timing.code in (rules.VALID, rules.BORDERLINE, rules.MISTIMED, rules.UNKNOWN)


POINTS = st.lists(
    st.builds(
        rules.TroughPoint,
        collected_on=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
        value_ng_ml=NG_ML,
        comparator=st.sampled_from(["", "<", ">"]),
        verdict=st.sampled_from([rules.BELOW, rules.IN_RANGE, rules.ABOVE, rules.INDETERMINATE]),
    ),
    max_size=30,
)


def _time_in_range_day_by_day(points, low, high, max_gap_days):
    """Rosendaal as §7 words it, one interpolated day at a time (what ``time_in_range``
    did before it counted each interval in closed form): the reference it must equal."""
    ordered = sorted(points, key=lambda p: p.collected_on)
    days_total = days_in = 0
    for first, second in zip(ordered, ordered[1:], strict=False):
        span = (second.collected_on - first.collected_on).days
        if span <= 0 or span > max_gap_days:
            continue
        for day in range(span):
            value = first.value_ng_ml + (second.value_ng_ml - first.value_ng_ml) * day / span
            days_total += 1
            days_in += low <= value <= high
    return None if days_total == 0 else Decimal(days_in) * 100 / Decimal(days_total)


# As stored (numeric(14,7)), within a band's reach so that lines cross its edges often.
STORED_NG_ML = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("12"), places=7)
BAND_EDGE = st.decimals(min_value=Decimal("1"), max_value=Decimal("9"), places=2)


@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=200), STORED_NG_ML | NG_ML), max_size=12),
    BAND_EDGE,
    BAND_EDGE,
    st.integers(min_value=1, max_value=80),
)
@example([(0, Decimal("3")), (10, Decimal("7"))], Decimal(4), Decimal(6), 56)  # §7: 50 %
@example([(0, Decimal("7")), (56, Decimal("5"))], Decimal(4), Decimal(6), 56)  # falling
@example([(0, Decimal("4")), (8, Decimal("4"))], Decimal(4), Decimal(6), 56)  # on the edge
def test_time_in_range_counts_as_day_by_day(days_values, low, high, max_gap):
    assume(low <= high)
    points = [
        rules.TroughPoint(date(2026, 1, 1) + timedelta(days=day), value, "", rules.IN_RANGE)
        for day, value in days_values
    ]
    expected = _time_in_range_day_by_day(points, low, high, max_gap)
    assert rules.time_in_range(points, low, high, max_gap_days=max_gap) == expected


@given(POINTS)
def test_metrics_are_percentages_or_absent(points):
    pir = rules.percent_in_range(points)
    ttr = rules.time_in_range(points, Decimal(4), Decimal(6))
    cv, n = rules.cv_percent(points)

    for value in (pir, ttr):
        assert value is None or 0 <= value <= 100
    assert cv is None or cv >= 0
    assert n == sum(1 for p in points if not p.comparator)


@given(st.decimals(min_value=Decimal("0"), max_value=Decimal("50"), places=2), NG_ML, NG_ML, NG_ML)
def test_a_dose_suggestion_is_a_whole_number_of_steps(dose, a, b, measured):
    low, high = sorted((a, b))
    suggestion = rules.dose_suggestion(dose, low, high, measured)

    if suggestion is not None:
        assert suggestion >= 0
        assert suggestion % rules.DEFAULT_THRESHOLDS.dose_step_mg == 0


# --- field validators (the importers' and forms' shared path) ---------------------------------

FIELD_PARSERS = [
    lambda v: validation.mrn(v),
    lambda v: validation.parse_date(v, "d"),
    lambda v: validation.parse_date(v, "d", not_future=True),
    lambda v: validation.parse_datetime(v, "t"),
    lambda v: validation.parse_datetime(v, "t", not_future=True),
    lambda v: validation.parse_decimal(v, "x"),
    lambda v: validation.parse_decimal(v, "x", decimal_comma=True),
    lambda v: validation.sex(v),
    lambda v: validation.height_cm(v),
    lambda v: validation.formulation(v),
    lambda v: validation.frequency(v),
    lambda v: validation.daily_dose_mg(v),
    lambda v: validation.sampling_hours(v),
    lambda v: validation.assay(v),
    lambda v: validation.level_status(v),
    lambda v: validation.lab_test(v),
    lambda v: validation.lab_value(v),
    lambda v: validation.lab_unit(LabTest.CREATININE, v),
]
HOSTILE = st.one_of(
    ANY_TEXT,
    VALUE_TEXT,
    st.text(alphabet=string.digits + "-:T +Z.", max_size=30),  # date-time look-alikes
    st.sampled_from(
        [
            "'; DROP TABLE monitoring_patient; --",
            "<script>alert(1)</script>",
            "\x00",
            "\ufeff",
            "9" * 400,
            "-0",
            "1e308",
            "2026-02-30",
            "2026-03-29T02:30",
            "0000-00-00",
            "9999-12-31T23:59:59+14:00",
            "\u202e",
            "NaN",
            "  ",
        ]
    ),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
)


@pytest.mark.parametrize("parse", FIELD_PARSERS)
@given(value=HOSTILE)
def test_every_field_validator_answers_a_value_or_a_rule_error(parse, value):
    returns_or_rule_error(parse, value)


@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    )
)
def test_an_iso_date_time_with_offset_round_trips(moment):
    moment = moment.replace(microsecond=0)

    assert validation.parse_datetime(moment.isoformat(), "t") == moment


@given(st.decimals(min_value=Decimal("0"), max_value=Decimal("99999"), places=4))
def test_a_decimal_written_with_a_comma_reads_as_with_a_point(number):
    text = f"{number:f}"

    assert validation.parse_decimal(
        text.replace(".", ","), "x", decimal_comma=True
    ) == validation.parse_decimal(text, "x")


@given(st.sampled_from(list(Assay)))
def test_every_assay_code_is_accepted(assay):
    assert validation.assay(assay.value) == assay.value


# --- whole files ------------------------------------------------------------------------------


@given(st.binary(max_size=400))
@example(b"\xff\xfe" + "mrn,value\n".encode("utf-16-le"))
@example(b"\xef\xbb\xbfmrn;value\n1;5,2\n")
@example(b'mrn,value\n"unterminated,5\n')
@example(b"\x00\x00\x00")
def test_any_bytes_are_read_as_a_table_or_reported(data):
    table = read_table(data, required=("mrn", "value"), optional=("unit",))

    for line, row in table.rows:
        assert line >= 2
        assert {"mrn", "value"} <= set(row) or table.problems
    for problem in table.problems:
        assert str(problem)


CSV_CELLS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(
    st.lists(st.lists(CSV_CELLS, min_size=1, max_size=6), min_size=1, max_size=8),
    st.sampled_from([",", ";"]),
)
def test_csv_text_is_read_as_a_table_or_reported(rows, delimiter):
    text = "\n".join(delimiter.join(cells) for cells in rows)

    table = read_table(text.encode("utf-8"), required=("mrn",), optional=())

    assert table.rows or table.problems or not any(any(c.strip() for c in r) for r in rows[1:])


HL7_ALPHABET = string.ascii_uppercase + string.digits + "|^~\\&.<>-+ "
SEGMENT = st.one_of(
    st.sampled_from(
        [
            "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20260312093000||ORU^R01|M1|P|2.5.1",
            "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20260312093000||ADT^A01|M2|P|2.5.1",
            "PID|1||MRN-1^^^GH^MR||Doe^Jane||19880412|F",
            "OBR|1|O1|ACC-1|77348-1^Tacrolimus^LN|||20260312073000",
            "OBX|1|NM|77348-1^Tacrolimus^LN||5.2|ng/mL|||||F|||20260312073000",
            "OBX|2|SN|11253-2^Tacrolimus^LN||<^1.0|ng/mL|||||P",
            "OBX|3|NM|2160-0^Creatinine^LN||0.9|mg/dL|||||C",
            "MSH|",
            "MSH",
            "OBX",
            "PID|",
            "FHS|^~\\&",
            "\x0b",
            "\x1c",
        ]
    ),
    st.text(alphabet=HL7_ALPHABET, max_size=60),
    st.text(alphabet=HL7_ALPHABET, max_size=40).map(lambda s: "OBX|" + s),
    st.text(alphabet=HL7_ALPHABET, max_size=40).map(lambda s: "MSH|" + s),
)


@given(st.lists(SEGMENT, max_size=8), st.sampled_from(["\r", "\n", "\r\n"]))
@settings(max_examples=500)
def test_hl7_text_is_read_or_rejected_never_crashes(segments, newline):
    """Everything an HL7 message goes through before the database: split, parse, header,
    patient, observations. A message that cannot be read is rejected (AR), not a crash."""
    text = newline.join(segments)

    for group in hl7_import.split_messages(text):
        try:
            message = hl7_import._parse(group)
            hl7_import._read_header(message)
            mrn = hl7_import._patient_mrn(message)
            observations, errors = hl7_import._observations(
                message, mrn, hl7_import.MessageResult(1)
            )
        except hl7_import._Reject as exc:
            assert exc.code and str(exc)
            continue
        for observation in observations:
            assert observation.kind in ("levels", "labs")
        assert all(isinstance(e, str) for e in errors)


@given(st.text(alphabet=string.digits + "+-.", max_size=24))
@example("20260229120000")
@example("20250229120000")
@example("99991231235959.9999-1200")
@example("202603120730+9999")
def test_hl7_timestamps_convert_or_are_refused(text):
    result = returns_or_rule_error(hl7_import.hl7_timestamp, text, "OBX-14")

    if isinstance(result, str):
        parsed = validation.parse_datetime(result, "OBX-14")
        assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["202603120730+9999", "202603120730-2400"])
def test_an_impossible_utc_offset_is_refused(text):
    with pytest.raises(rules.RuleError):
        hl7_import.hl7_timestamp(text, "OBX-14")


@given(st.integers(min_value=0, max_value=3650))
def test_months_between_never_goes_backwards(days):
    start = date(2024, 1, 1)
    months = rules.months_between(start, start + timedelta(days=days), Decimal("30.4375"))

    assert months >= 0
