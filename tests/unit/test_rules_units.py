"""§1 Units and values: parsing reported results, unit spellings, conversion, rejection."""

from decimal import Decimal as D

import pytest

from monitoring import rules
from monitoring.rules import RuleError

MICRO_SIGN = "\u00b5"  # µ MICRO SIGN
GREEK_MU = "\u03bc"  # μ GREEK SMALL LETTER MU


# --- unit spellings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit_text",
    [
        "ng/mL",
        "ng/ml",
        "NG/ML",
        "Ng/Ml",
        "ug/L",
        "UG/L",
        "ug/l",
        f"{MICRO_SIGN}g/L",
        f"{MICRO_SIGN}g/l",
        f"{MICRO_SIGN}G/L",
        f"{GREEK_MU}g/L",
        f"{GREEK_MU}g/l",
        f"{MICRO_SIGN}g/L".upper(),  # upper() turns the micro sign into capital Greek MU
        "mcg/L",
        "MCG/L",
        "mcg/l",
        "Mcg/L",
        " ng/mL ",
        "ng / mL",
    ],
)
def test_mass_units_normalise_to_ng_ml(unit_text):
    assert rules.normalise_unit(unit_text) == "ng/mL"


@pytest.mark.parametrize("unit_text", ["nmol/L", "nmol/l", "NMOL/L", "Nmol/L", " nmol/L "])
def test_molar_unit_normalises_to_nmol_l(unit_text):
    assert rules.normalise_unit(unit_text) == "nmol/L"


@pytest.mark.parametrize(
    "unit_text",
    [
        "mg/L",
        "MG/L",
        "mg/dL",
        "ng/dL",
        "pg/mL",
        "mmol/L",
        "umol/L",
        "g/L",
        "ng",
        "xyz",
        # µg/mL is 1000 × ng/mL: a plausible mislabel that must not pass as ng/mL
        "ug/mL",
        f"{MICRO_SIGN}g/mL",
        f"{GREEK_MU}g/mL",
        "mcg/mL",
    ],
)
def test_unknown_units_rejected_naming_field_and_value(unit_text):
    with pytest.raises(RuleError) as err:
        rules.normalise_unit(unit_text)
    assert err.value.field == "unit"
    assert err.value.value == unit_text
    assert "unit" in str(err.value)
    assert unit_text in str(err.value)


@pytest.mark.parametrize("unit_text", ["", "   ", None])
def test_empty_unit_rejected(unit_text):
    with pytest.raises(RuleError) as err:
        rules.normalise_unit(unit_text)
    assert err.value.field == "unit"
    assert "unit" in str(err.value)


def test_unknown_unit_rejected_through_parse_level():
    with pytest.raises(RuleError) as err:
        rules.parse_level("5.0", "mg/L")
    assert err.value.field == "unit"
    assert err.value.value == "mg/L"
    assert "mg/L" in str(err.value)


# --- conversion ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, unit, expected_ng_ml",
    [
        ("5.0", "ng/mL", "5.0"),
        ("5.0", "ug/L", "5.0"),
        ("5.0", f"{MICRO_SIGN}g/L", "5.0"),
        ("5.0", f"{GREEK_MU}g/L", "5.0"),
        ("5.0", "MCG/L", "5.0"),
        ("6.22", "nmol/L", "5.0010044"),  # 6.22 × 0.80402, unrounded
        ("10", "nmol/L", "8.0402"),
        ("1.2438", "nmol/L", "1.000040076"),
    ],
)
def test_to_ng_ml_is_unrounded(value, unit, expected_ng_ml):
    assert rules.to_ng_ml(D(value), unit) == D(expected_ng_ml)


@pytest.mark.parametrize(
    "ng_ml, expected_nmol_display",
    [
        ("3.2", "3.98"),  # §10.1
        ("4", "4.98"),  # §1: 4–6 ng/mL is 4.98–7.46 nmol/L, not "5–7.4"
        ("6", "7.46"),
        ("5", "6.22"),
        ("1", "1.24"),
        ("10", "12.44"),
    ],
)
def test_ng_ml_to_nmol_l_uses_anhydrous_factor(ng_ml, expected_nmol_display):
    assert rules.round_to(rules.ng_ml_to_nmol_l(D(ng_ml)), 2) == D(expected_nmol_display)


def test_conversion_factors_are_anhydrous_not_monohydrate():
    assert rules.NMOL_PER_NG == D("1.2438")
    assert rules.NG_PER_NMOL == D("0.80402")
    assert rules.ng_ml_to_nmol_l(D(1)) != D("1.217")


@pytest.mark.parametrize(
    "nmol, expected_ng_display",
    [("6.22", "5.00"), ("4.98", "4.00"), ("7.46", "6.00"), ("12.44", "10.00")],
)
def test_nmol_to_ng_ml_display(nmol, expected_ng_display):
    assert rules.round_to(rules.to_ng_ml(D(nmol), "nmol/L"), 2) == D(expected_ng_display)


@pytest.mark.parametrize(
    "value, places, expected",
    [
        ("3.98016", 2, "3.98"),
        ("2.345", 2, "2.35"),  # half-up, not bankers' (which would give 2.34)
        ("2.355", 2, "2.36"),
        ("0.125", 2, "0.13"),
        ("2.5", 0, "3"),
        ("3.5", 0, "4"),
        ("28.5174", 1, "28.5"),
        ("28.45", 1, "28.5"),
        ("5.0010044", 2, "5.00"),
        ("7", 2, "7.00"),
    ],
)
def test_round_to_half_up(value, places, expected):
    result = rules.round_to(D(value), places)
    assert result == D(expected)
    assert str(result) == expected  # the displayed digits, trailing zeros kept


# --- reported value parsing -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, comparator, value",
    [
        ("5.2", "", "5.2"),
        (" 5.2 ", "", "5.2"),
        ("5", "", "5"),
        ("0.5", "", "0.5"),
        (".5", "", "0.5"),
        ("100", "", "100"),
        ("<1.0", "<", "1.0"),
        ("< 1.0", "<", "1.0"),
        (" <1.0 ", "<", "1.0"),
        (">30", ">", "30"),
        ("> 30", ">", "30"),
        ("<2", "<", "2"),
    ],
)
def test_parse_reported_value(text, comparator, value):
    parsed = rules.parse_reported_value(text)
    assert parsed.comparator == comparator
    assert parsed.value == D(value)


def test_censored_value_is_not_coerced():
    parsed = rules.parse_reported_value("<1.0")
    assert parsed == rules.ParsedValue("<", D("1.0"))
    assert parsed.value != 0


@pytest.mark.parametrize(
    "text, expected_comparator, expected_value",
    [("5,2", "", "5.2"), ("<1,0", "<", "1.0"), ("> 30,5", ">", "30.5"), ("5.2", "", "5.2")],
)
def test_decimal_comma_accepted_only_when_allowed(text, expected_comparator, expected_value):
    parsed = rules.parse_reported_value(text, decimal_comma=True)
    assert (parsed.comparator, parsed.value) == (expected_comparator, D(expected_value))


@pytest.mark.parametrize("text", ["5,2", "<1,0", "0,5"])
def test_decimal_comma_rejected_by_default(text):
    with pytest.raises(RuleError) as err:
        rules.parse_reported_value(text)
    assert err.value.value == text
    assert "comma" in err.value.message


@pytest.mark.parametrize(
    "text",
    [
        "-1",
        "-0.5",
        " -3.2",
        "0",
        "0.0",
        "0,0",
        "<0",
        ">0.0",
        "abc",
        "five",
        "5.2.1",
        "1e3",
        "5 ng/mL",
        "<",
        ">",
        "<<1",
        "NaN",
        "Infinity",
        "",
        "   ",
        None,
    ],
)
def test_invalid_values_rejected_naming_field_and_value(text):
    with pytest.raises(RuleError) as err:
        rules.parse_reported_value(text, decimal_comma=True, field="value")
    assert err.value.field == "value"
    assert err.value.value == ("" if text is None else text)
    assert "value" in str(err.value)
    if text:
        assert text in str(err.value)


@pytest.mark.parametrize("text", ["-1", "-0.5", "0", "0.0"])
def test_negative_and_zero_say_greater_than_zero(text):
    with pytest.raises(RuleError) as err:
        rules.parse_reported_value(text)
    assert "greater than zero" in err.value.message


def test_field_name_is_passed_through():
    with pytest.raises(RuleError) as err:
        rules.parse_reported_value("abc", field="trough_value")
    assert err.value.field == "trough_value"
    assert str(err.value).startswith("trough_value")


# --- full level: value + unit + plausibility ceiling -------------------------------------


@pytest.mark.parametrize(
    "value_text, unit_text, comparator, reported, unit, ng_ml",
    [
        ("3.2", "ng/mL", "", "3.2", "ng/mL", "3.2"),
        ("5.5", "ug/L", "", "5.5", "ng/mL", "5.5"),
        ("6.22", "nmol/L", "", "6.22", "nmol/L", "5.0010044"),
        ("<1.0", "ng/mL", "<", "1.0", "ng/mL", "1.0"),
        ("> 30", "mcg/L", ">", "30", "ng/mL", "30"),
        ("100", "ng/mL", "", "100", "ng/mL", "100"),  # ceiling itself is accepted
        ("124.37", "nmol/L", "", "124.37", "nmol/L", "99.9959674"),  # just under, canonical
    ],
)
def test_parse_level_accepts(value_text, unit_text, comparator, reported, unit, ng_ml):
    level = rules.parse_level(value_text, unit_text)
    assert level == rules.Level(comparator, D(reported), unit, D(ng_ml))


@pytest.mark.parametrize(
    "value_text, unit_text",
    [
        ("100.01", "ng/mL"),
        ("101", "ug/L"),
        ("150", "mcg/L"),
        (">150", "ng/mL"),
        ("125", "nmol/L"),  # 125 nmol/L = 100.5025 ng/mL: the ceiling is on the canonical value
        ("124.38", "nmol/L"),  # 100.0040 ng/mL
    ],
)
def test_parse_level_rejects_above_ceiling(value_text, unit_text):
    with pytest.raises(RuleError) as err:
        rules.parse_level(value_text, unit_text)
    assert err.value.field == "value"
    assert err.value.value == value_text
    assert value_text in str(err.value)
    assert "ceiling" in err.value.message


def test_ceiling_is_configurable():
    assert rules.parse_level("120", "ng/mL", ceiling_ng_ml=D(150)).value_ng_ml == D(120)
    with pytest.raises(RuleError):
        rules.parse_level("60", "ng/mL", ceiling_ng_ml=D(50))


def test_default_ceiling_is_100():
    assert rules.DEFAULT_THRESHOLDS.plausibility_ceiling_ng_ml == D(100)


@pytest.mark.parametrize(
    "value_text, unit_text, decimal_comma, ok",
    [
        ("5,2", "ng/mL", False, False),
        ("5,2", "ng/mL", True, True),
        ("6,22", "nmol/L", True, True),
    ],
)
def test_parse_level_decimal_comma(value_text, unit_text, decimal_comma, ok):
    if ok:
        level = rules.parse_level(value_text, unit_text, decimal_comma=decimal_comma)
        assert level.reported_value == D(value_text.replace(",", "."))
    else:
        with pytest.raises(RuleError):
            rules.parse_level(value_text, unit_text, decimal_comma=decimal_comma)


@pytest.mark.parametrize("value_text", ["-5", "0", "abc", ""])
def test_parse_level_rejects_bad_values(value_text):
    with pytest.raises(RuleError) as err:
        rules.parse_level(value_text, "ng/mL")
    assert err.value.field == "value"
