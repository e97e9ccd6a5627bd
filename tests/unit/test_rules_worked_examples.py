"""§10 Worked examples 1-7, end to end through the pure rules."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from monitoring import rules

LOW, HIGH = D("4.0"), D("6.0")  # LN maintenance (KDIGO 2024)
DRAW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


def _sample(value_text, unit, frequency, hours):
    level = rules.parse_level(value_text, unit)
    timing = rules.timing_verdict(
        DRAW, DRAW - timedelta(hours=hours), rules.default_sampling_hours(frequency)
    )
    verdict = rules.range_verdict(level.value_ng_ml, level.comparator, LOW, HIGH)
    return level, timing, verdict


@pytest.mark.parametrize(
    "example, value, unit, frequency, hours, comparator, ng_ml, timing_code, direction, verdict",
    [
        (1, "3.2", "ng/mL", "BID", 12.5, "", "3.2", "valid", "late", "below"),
        (2, "7.1", "ng/mL", "BID", 9.0, "", "7.1", "mistimed", "early", "above"),
        (3, "<1.0", "ng/mL", "BID", 12, "<", "1.0", "valid", None, "below"),
        (4, "5.5", "ng/mL", "QD", 26.5, "", "5.5", "mistimed", "late", "in_range"),
        (5, "6.22", "nmol/L", "BID", 12, "", "5.0010044", "valid", None, "in_range"),
    ],
)
def test_worked_examples_1_to_5(
    example, value, unit, frequency, hours, comparator, ng_ml, timing_code, direction, verdict
):
    level, timing, range_code = _sample(value, unit, frequency, hours)
    assert level.comparator == comparator
    assert level.value_ng_ml == D(ng_ml)
    assert timing.code == timing_code
    assert timing.direction == direction
    assert range_code == verdict


def test_example_1_nmol_display():
    level, _, _ = _sample("3.2", "ng/mL", "BID", 12.5)
    assert rules.round_to(rules.ng_ml_to_nmol_l(level.value_ng_ml), 2) == D("3.98")


def test_example_2_early_reads_high_and_does_not_qualify():
    _, timing, _ = _sample("7.1", "ng/mL", "BID", 9.0)
    assert "falsely high" in rules.timing_explanation(timing)
    # §7: only a qualifying trough (timing valid) may get a dose suggestion.
    assert timing.code != rules.VALID


def test_example_3_censored_excluded_from_cv():
    level, _, _ = _sample("<1.0", "ng/mL", "BID", 12)
    assert (level.comparator, level.reported_value) == ("<", D("1.0"))
    points = [
        rules.TroughPoint(date(2025, 1, d), D(v), "", rules.IN_RANGE)
        for d, v in ((1, 4), (2, 5), (3, 6))
    ]
    censored = rules.TroughPoint(date(2025, 1, 4), level.value_ng_ml, level.comparator, "below")
    assert rules.cv_percent(points + [censored]) == rules.cv_percent(points)
    assert rules.cv_percent(points + [censored])[1] == 3


def test_example_4_late_reads_low():
    _, timing, _ = _sample("5.5", "ng/mL", "QD", 26.5)
    assert timing.nominal_hours == D(24)
    assert "falsely low" in rules.timing_explanation(timing)


def test_example_5_display():
    level, _, _ = _sample("6.22", "nmol/L", "BID", 12)
    assert str(rules.round_to(level.value_ng_ml, 2)) == "5.00"


def test_example_6_premature_discontinuation():
    result = rules.duration_status(date(2023, 1, 15), date(2025, 6, 1), date(2025, 6, 1))
    assert str(rules.round_to(result.total_months, 1)) == "28.5"
    assert result.code == "premature_discontinuation"


@pytest.mark.parametrize(
    "scr, unit, birth, sex, height, expected",
    [
        ("0.9", "mg/dL", date(1990, 1, 1), "F", None, "85.5"),  # 35 y
        ("1.0", "mg/dL", date(1985, 1, 1), "M", None, "97.6"),  # 40 y
        ("80", "µmol/L", date(1990, 1, 1), "F", None, "84.9"),  # 35 y
        ("0.6", "mg/dL", date(2015, 1, 1), "F", D(140), "96.4"),  # child, 140 cm
    ],
)
def test_example_7_egfr(scr, unit, birth, sex, height, expected):
    scr_mg_dl = rules.creatinine_mg_dl(D(scr), unit)
    result = rules.egfr(scr_mg_dl, birth=birth, on=date(2025, 6, 1), sex=sex, height_cm=height)
    assert str(rules.round_to(result, 1)) == expected
