"""§6 Kidney: creatinine units, CKD-EPI 2021 (adults), bedside CKiD (children),
pre-existing CKD and the nephrotoxicity watch."""

from datetime import date
from decimal import Decimal as D

import pytest

from monitoring import rules
from monitoring.rules import RuleError

MICRO_SIGN = "\u00b5"
GREEK_MU = "\u03bc"


# --- §10.7 worked examples (compared rounded to 1 decimal) -----------------------------


@pytest.mark.parametrize(
    "scr, unit, age, sex, expected",
    [
        ("0.9", "mg/dL", 35, "F", "85.5"),
        ("1.0", "mg/dL", 40, "M", "97.6"),
        ("80", f"{MICRO_SIGN}mol/L", 35, "F", "84.9"),
        ("80", f"{GREEK_MU}mol/L", 35, "F", "84.9"),
        ("80", "umol/L", 35, "F", "84.9"),
    ],
)
def test_ckd_epi_worked_examples(scr, unit, age, sex, expected):
    scr_mg_dl = rules.creatinine_mg_dl(D(scr), unit)
    assert rules.round_to(rules.egfr_ckd_epi_2021(scr_mg_dl, age, sex), 1) == D(expected)


def test_ckid_worked_example():
    assert rules.round_to(rules.egfr_ckid_bedside(D(140), D("0.6")), 1) == D("96.4")
    assert rules.egfr_ckid_bedside(D(140), D("0.6")) == D("0.413") * 140 / D("0.6")


@pytest.mark.parametrize(
    "birth, on, sex, height, scr, expected",
    [
        # adult worked examples through egfr(), age from birth date
        (date(1990, 1, 1), date(2025, 6, 1), "F", None, "0.9", "85.5"),
        (date(1985, 1, 1), date(2025, 6, 1), "M", None, "1.0", "97.6"),
        # child: 140 cm, 0.6 mg/dL
        (date(2015, 1, 1), date(2025, 6, 1), "F", D(140), "0.6", "96.4"),
        (date(2015, 1, 1), date(2025, 6, 1), "M", D(140), "0.6", "96.4"),
    ],
)
def test_egfr_dispatch_worked_examples(birth, on, sex, height, scr, expected):
    result = rules.egfr(D(scr), birth=birth, on=on, sex=sex, height_cm=height)
    assert rules.round_to(result, 1) == D(expected)


# --- formula structure ---------------------------------------------------------------


@pytest.mark.parametrize(
    "scr, age, sex, expected",
    [
        # Scr = kappa: both min and max terms are 1
        ("0.7", 0, "F", 142 * 1.012),
        ("0.9", 0, "M", 142.0),
        ("0.9", 50, "M", 142 * 0.9938**50),
        ("0.7", 60, "F", 142 * 0.9938**60 * 1.012),
        # Scr = kappa / 2: only the alpha term acts
        ("0.35", 0, "F", 142 * 0.5**-0.241 * 1.012),
        ("0.45", 0, "M", 142 * 0.5**-0.302),
        # Scr = 2 kappa: only the -1.200 term acts
        ("1.4", 0, "F", 142 * 2**-1.2 * 1.012),
        ("1.8", 0, "M", 142 * 2**-1.2),
        ("1.8", 70, "M", 142 * 2**-1.2 * 0.9938**70),
    ],
)
def test_ckd_epi_terms(scr, age, sex, expected):
    assert float(rules.egfr_ckd_epi_2021(D(scr), age, sex)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("sex", ["", "X", "f", "m", "U", None])
def test_ckd_epi_unknown_sex_gives_none(sex):
    assert rules.egfr_ckd_epi_2021(D("1.0"), 40, sex) is None


def test_ckd_epi_is_race_free_and_decreasing():
    values = [rules.egfr_ckd_epi_2021(D(s), 50, "M") for s in ("0.5", "0.9", "1.5", "3.0")]
    assert values == sorted(values, reverse=True)
    assert rules.egfr_ckd_epi_2021(D("1.0"), 40, "M") > rules.egfr_ckd_epi_2021(D("1.0"), 60, "M")


# --- adult / child split at 18 ---------------------------------------------------------


@pytest.mark.parametrize(
    "birth, on, height, uses",
    [
        (date(2007, 6, 1), date(2025, 6, 1), D(170), "adult"),  # 18th birthday: adult
        (date(2007, 6, 2), date(2025, 6, 1), D(170), "child"),  # one day short of 18
        (date(2010, 1, 1), date(2025, 6, 1), D(150), "child"),
        (date(1960, 1, 1), date(2025, 6, 1), D(170), "adult"),
        (date(1960, 1, 1), date(2025, 6, 1), None, "adult"),  # height not needed for adults
    ],
)
def test_egfr_uses_ckid_below_18(birth, on, height, uses):
    scr = D("0.8")
    result = rules.egfr(scr, birth=birth, on=on, sex="F", height_cm=height)
    if uses == "child":
        assert result == rules.egfr_ckid_bedside(height, scr)
    else:
        assert result == rules.egfr_ckd_epi_2021(scr, rules.age_in_years(birth, on), "F")


def test_child_without_height_gives_none():
    assert (
        rules.egfr(D("0.6"), birth=date(2015, 1, 1), on=date(2025, 6, 1), sex="F", height_cm=None)
        is None
    )


@pytest.mark.parametrize(
    "birth, on, age",
    [
        (date(1990, 6, 1), date(2025, 6, 1), 35),
        (date(1990, 6, 2), date(2025, 6, 1), 34),
        (date(1990, 5, 31), date(2025, 6, 1), 35),
        (date(2000, 2, 29), date(2025, 2, 28), 24),
        (date(2000, 2, 29), date(2025, 3, 1), 25),
    ],
)
def test_age_in_years(birth, on, age):
    assert rules.age_in_years(birth, on) == age


# --- creatinine units ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, unit, expected",
    [
        ("0.9", "mg/dL", "0.9"),
        ("0.9", "mg/dl", "0.9"),
        ("0.9", "MG/DL", "0.9"),
        ("88.4", "umol/L", "1"),
        ("88.4", f"{MICRO_SIGN}mol/L", "1"),
        ("88.4", f"{GREEK_MU}mol/L", "1"),
        ("176.8", "UMOL/L", "2"),
        ("80", " µmol / L ", str(D(80) / D("88.4"))),
    ],
)
def test_creatinine_units(value, unit, expected):
    assert rules.creatinine_mg_dl(D(value), unit) == D(expected)


@pytest.mark.parametrize("unit", ["mmol/L", "mg/L", "ng/mL", "", "g/dL"])
def test_creatinine_unknown_unit_rejected(unit):
    with pytest.raises(RuleError) as err:
        rules.creatinine_mg_dl(D("1.0"), unit)
    assert err.value.field == "unit"
    assert err.value.value == unit


# --- pre-existing CKD and nephrotoxicity watch ------------------------------------------


@pytest.mark.parametrize(
    "baseline_egfr, expected",
    [
        (None, False),
        ("59.9", True),
        ("30", True),
        ("60", False),  # < 60 only
        ("60.0", False),
        ("85.5", False),
    ],
)
def test_pre_existing_ckd(baseline_egfr, expected):
    value = None if baseline_egfr is None else D(baseline_egfr)
    assert rules.pre_existing_ckd(value) is expected


def test_pre_existing_ckd_threshold_configurable():
    assert rules.pre_existing_ckd(D(50), threshold=D(45)) is False
    assert rules.pre_existing_ckd(D(44), threshold=D(45)) is True


@pytest.mark.parametrize(
    "baseline, latest, expected",
    [
        ("1.0", "1.3", True),  # exactly +30 %
        ("1.0", "1.29", False),
        ("1.0", "1.31", True),
        ("0.8", "1.04", True),  # exactly +30 %
        ("0.8", "1.039", False),
        ("1.0", "2.0", True),
        ("1.0", "0.9", False),  # a fall
        ("1.0", "1.0", False),
        (None, "2.0", False),
        ("1.0", None, False),
        (None, None, False),
        ("0", "1.0", False),
    ],
)
def test_nephrotoxicity_watch(baseline, latest, expected):
    b = None if baseline is None else D(baseline)
    latest_value = None if latest is None else D(latest)
    assert rules.nephrotoxicity_watch(b, latest_value) is expected


def test_nephrotoxicity_rise_configurable():
    assert rules.nephrotoxicity_watch(D("1.0"), D("1.2"), rise_percent=D(20)) is True
    assert rules.nephrotoxicity_watch(D("1.0"), D("1.2"), rise_percent=D(25)) is False
