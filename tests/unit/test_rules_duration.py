"""§5 Duration of immunosuppression: the 36-month rule, months = days / 30.4375."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from monitoring import rules

START = date(2023, 1, 1)
AS_OF = date(2025, 6, 1)


def _days(n):
    return START + timedelta(days=n)


@pytest.mark.parametrize(
    "start, end, as_of, code",
    [
        # §10.6: induction 2023-01-15, stopped 2025-06-01 -> 28.5 months -> premature
        (date(2023, 1, 15), date(2025, 6, 1), date(2025, 7, 1), "premature_discontinuation"),
        (date(2023, 1, 15), date(2025, 6, 1), date(2025, 6, 1), "premature_discontinuation"),
        # ongoing therapy
        (START, None, _days(1096), "met"),  # 36.008 months
        (START, None, _days(1095), "duration_under_36_months"),  # 35.975 months
        (START, None, _days(2000), "met"),
        (START, None, _days(0), "duration_under_36_months"),
        (START, None, _days(400), "duration_under_36_months"),
        # ended therapy, the end date decides
        (START, _days(1096), _days(1500), "met"),  # ended at or after 36 months
        (START, _days(1095), _days(1500), "premature_discontinuation"),
        (START, _days(2000), _days(2100), "met"),
        # planned end in the future
        (START, _days(900), _days(400), "premature_discontinuation"),  # wins over under-36
        (START, _days(1095), _days(400), "premature_discontinuation"),
        # planned long enough, but 36 months have not passed yet: not met (§5)
        (START, _days(1096), _days(400), "duration_under_36_months"),
        (START, _days(1300), _days(1096), "met"),  # 36 months passed by the as-of date
        (START, _days(1300), _days(1095), "duration_under_36_months"),
        # no anchor
        (None, None, AS_OF, "unknown"),
        (None, date(2025, 1, 1), AS_OF, "unknown"),
    ],
)
def test_duration_code(start, end, as_of, code):
    assert rules.duration_status(start, end, as_of).code == code


def test_worked_example_months_display():
    result = rules.duration_status(date(2023, 1, 15), date(2025, 6, 1), date(2025, 7, 1))
    assert (date(2025, 6, 1) - date(2023, 1, 15)).days == 868
    assert rules.round_to(result.total_months, 1) == D("28.5")
    assert rules.round_to(result.months, 1) == D("28.5")


@pytest.mark.parametrize(
    "days, months_1dp, code",
    [
        (1095, "36.0", "duration_under_36_months"),  # displays 36.0 but is 35.975: raw compare
        (1096, "36.0", "met"),
        (1065, "35.0", "duration_under_36_months"),
        (365, "12.0", "duration_under_36_months"),
        (0, "0.0", "duration_under_36_months"),
    ],
)
def test_raw_comparison_not_rounded(days, months_1dp, code):
    result = rules.duration_status(START, None, _days(days))
    assert result.months == D(days) / D("30.4375")
    assert rules.round_to(result.months, 1) == D(months_1dp)
    assert result.code == code


def test_planned_end_progress_and_total():
    # Planned end in the future: progress is so far, the verdict uses the planned total.
    result = rules.duration_status(START, _days(900), _days(400))
    assert result.months == D(400) / D("30.4375")
    assert result.total_months == D(900) / D("30.4375")


def test_ended_months_stop_at_end():
    result = rules.duration_status(START, _days(500), _days(800))
    assert result.months == D(500) / D("30.4375")
    assert result.total_months == D(500) / D("30.4375")


def test_as_of_before_start_is_not_negative():
    result = rules.duration_status(date(2025, 1, 1), None, date(2024, 12, 1))
    assert result.months == 0
    assert result.code == "duration_under_36_months"


def test_unknown_has_no_months():
    result = rules.duration_status(None, None, AS_OF)
    assert result.months is None and result.total_months is None


@pytest.mark.parametrize(
    "required, days, code",
    [
        ("24", 731, "met"),
        ("24", 730, "duration_under_36_months"),
        ("48", 1096, "duration_under_36_months"),
    ],
)
def test_required_months_configurable(required, days, code):
    assert rules.duration_status(START, None, _days(days), required_months=D(required)).code == code


def test_months_between():
    assert rules.months_between(START, _days(30), D("30.4375")) == D(30) / D("30.4375")


def test_a_planned_end_past_36_months_is_not_met_before_36_months_have_passed():
    """§5's example: on therapy at 34.8 months, planned end at 42 months."""
    as_of = _days(1059)  # 34.79 months
    planned_end = _days(1278)  # 41.99 months

    result = rules.duration_status(START, planned_end, as_of)

    assert result.code == "duration_under_36_months"
    assert result.planned
    assert rules.duration_progress(result, D(36)) == "34.8 of 36 months; the planned end gives 42.0"


def test_progress_without_a_planned_end_is_months_so_far():
    ongoing = rules.duration_status(START, None, _days(400))
    ended = rules.duration_status(START, _days(1200), _days(1500))

    assert rules.duration_progress(ongoing, D(36)) == "13.1 of 36 months"
    assert not ended.planned
    assert rules.duration_progress(ended, D(36)) == "39.4 of 36 months"
