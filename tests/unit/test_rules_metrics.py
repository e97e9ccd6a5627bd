"""§7 Metrics: % in range, time in range (Rosendaal), CV, C/D ratio, dose suggestion."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from monitoring import rules
from monitoring.rules import TroughPoint

DAY0 = date(2025, 1, 1)
LOW, HIGH = D("4.0"), D("6.0")


def _pt(day, value, comparator="", verdict=None):
    v = D(str(value))
    if verdict is None:
        verdict = rules.range_verdict(v, comparator, LOW, HIGH)
    return TroughPoint(DAY0 + timedelta(days=day), v, comparator, verdict)


# --- % in range -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, expected",
    [
        ([], None),
        ([5], "100"),
        ([3], "0"),
        ([4, 5, 6, 7], "75"),
        ([3.2, 7.1], "0"),
        ([4.0, 6.0], "100"),  # inclusive bounds
        ([5, 5, 3], str(D(200) / D(3))),
    ],
)
def test_percent_in_range(values, expected):
    points = [_pt(i, v) for i, v in enumerate(values)]
    result = rules.percent_in_range(points)
    assert result == (None if expected is None else D(expected))


def test_percent_in_range_indeterminate_is_not_in_range():
    points = [_pt(0, 5), _pt(1, 5.0, "<")]  # <5.0 against 4-6 is indeterminate
    assert points[1].verdict == "indeterminate"
    assert rules.percent_in_range(points) == D(50)


# --- time in therapeutic range ------------------------------------------------------------


@pytest.mark.parametrize(
    "points, expected",
    [
        ([(0, 3.0), (10, 7.0)], "50"),  # §7 example
        ([(10, 7.0), (0, 3.0)], "50"),  # order of input does not matter
        ([(0, 5.0), (10, 5.0)], "100"),
        ([(0, 2.0), (10, 3.0)], "0"),
        ([(0, 8.0), (20, 9.0)], "0"),
        # 56-day gap included: 3 + 4k/56 is within 4..6 for k = 14..42 -> 29 of 56 days
        ([(0, 3.0), (56, 7.0)], str(D(29) * 100 / D(56))),
        ([(0, 5.0), (57, 5.0)], None),  # 57-day gap excluded, nothing left
        ([(0, 3.0), (10, 7.0), (67, 5.0)], "50"),  # second interval (57 d) excluded
        # 10 days 3->7 (5 in range) + 56 days 7->5 (7 - 2k/56 <= 6 for k = 28..55: 28 days)
        ([(0, 3.0), (10, 7.0), (66, 5.0)], str(D(33) * 100 / D(66))),
        ([(0, 5.0)], None),  # a single trough: no interval
        ([], None),
        ([(0, 5.0), (0, 5.0)], None),  # same day twice: zero-length interval skipped
    ],
)
def test_time_in_range(points, expected):
    trough_points = [_pt(d, v) for d, v in points]
    result = rules.time_in_range(trough_points, LOW, HIGH)
    assert result == (None if expected is None else D(expected))


def test_time_in_range_censored_less_than_enters_as_x():
    censored = [_pt(0, 3.0, "<"), _pt(10, 7.0)]
    plain = [_pt(0, 3.0), _pt(10, 7.0)]
    assert rules.time_in_range(censored, LOW, HIGH) == rules.time_in_range(plain, LOW, HIGH)
    assert rules.time_in_range(censored, LOW, HIGH) == D(50)


@pytest.mark.parametrize("max_gap, expected", [(9, None), (10, D(50))])
def test_time_in_range_gap_configurable(max_gap, expected):
    points = [_pt(0, 3.0), _pt(10, 7.0)]
    assert rules.time_in_range(points, LOW, HIGH, max_gap_days=max_gap) == expected


def test_ttr_default_gap_is_56_days():
    assert rules.DEFAULT_THRESHOLDS.ttr_max_gap_days == 56


# --- intra-patient variability --------------------------------------------------------------


@pytest.mark.parametrize(
    "values, cv_1dp, n",
    [
        ([(4, ""), (5, ""), (6, ""), (5, "")], "16.3", 4),  # §7 example
        ([(4, ""), (5, ""), (6, ""), (5, ""), (1.0, "<")], "16.3", 4),  # censored excluded
        ([(4, ""), (5, ""), (6, ""), (5, ""), (30, ">")], "16.3", 4),
        ([(5, ""), (5, ""), (5, "")], "0.0", 3),
        ([(2, ""), (4, ""), (6, "")], "50.0", 3),
        ([(4, ""), (6, "")], None, 2),  # n < 3: not shown
        ([(4, ""), (6, ""), (1.0, "<")], None, 2),  # §10.3: censored not counted
        ([(5, "")], None, 1),
        ([], None, 0),
    ],
)
def test_cv_percent(values, cv_1dp, n):
    points = [_pt(i, v, c) for i, (v, c) in enumerate(values)]
    cv, count = rules.cv_percent(points)
    assert count == n
    if cv_1dp is None:
        assert cv is None
    else:
        assert rules.round_to(cv, 1) == D(cv_1dp)


def test_cv_min_n_configurable():
    points = [_pt(0, 4), _pt(1, 6)]
    cv, n = rules.cv_percent(points, min_n=2)
    assert n == 2
    assert rules.round_to(cv, 1) == D("28.3")


# --- C/D ratio -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trough, dose, expected",
    [
        ("3.2", "3", D("3.2") / D(3)),
        ("5", "5", D(1)),
        ("4", "8", D("0.5")),
        ("6", "2", D(3)),
        ("5", None, None),
        ("5", "0", None),
        ("5", "-1", None),
    ],
)
def test_cd_ratio(trough, dose, expected):
    assert rules.cd_ratio(D(trough), None if dose is None else D(dose)) == expected


# --- proportional dose suggestion -------------------------------------------------------------


@pytest.mark.parametrize(
    "dose, low, high, measured, expected",
    [
        ("3", "4", "6", "3.2", "4.5"),  # §7 example: 4.69 -> 4.5
        ("4", "4", "6", "10", "2.0"),
        ("2", "4", "6", "8", "1.5"),  # 1.25 -> nearest 0.5, tie rounds up
        ("2", "4", "6", "2", "5.0"),
        ("5", "4", "6", "7.1", "3.5"),  # 3.52
        ("3", "5", "10", "3", "7.5"),
        ("0", "4", "6", "3", None),
        ("3", "4", "6", "0", None),
    ],
)
def test_dose_suggestion(dose, low, high, measured, expected):
    result = rules.dose_suggestion(D(dose), D(low), D(high), D(measured))
    assert result == (None if expected is None else D(expected))


def test_dose_suggestion_step_configurable():
    # 3 x 5 / 3.2 = 4.6875 -> nearest 0.25 = 4.75
    assert rules.dose_suggestion(D(3), LOW, HIGH, D("3.2"), step_mg=D("0.25")) == D("4.75")
