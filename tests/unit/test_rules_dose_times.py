"""Dosing clock times of a regimen (rules.parse_dose_times): the one check the admin, the
CSV import and the dose reconstruction share."""

import pytest

from monitoring import rules


@pytest.mark.parametrize(
    ("text", "frequency", "expected"),
    [
        ("", "BID", ("08:00", "20:00")),
        ("  ", "QD", ("08:00",)),
        ("07:30;19:30", "BID", ("07:30", "19:30")),
        (" 7:30 ; 21:00 ", "bid", ("07:30", "21:00")),
        ("00:00", "QD", ("00:00",)),
        ("23:59", "QD", ("23:59",)),
    ],
)
def test_valid_times_are_normalised_and_empty_means_the_defaults(text, frequency, expected):
    assert rules.parse_dose_times(text, frequency) == expected


@pytest.mark.parametrize(
    ("text", "frequency", "message"),
    [
        ("24:00", "QD", "'24:00' is not a 24-hour time HH:MM"),
        ("08:60", "QD", "'08:60' is not a 24-hour time HH:MM"),
        ("8am", "QD", "'8am' is not a 24-hour time HH:MM"),
        ("08:00,20:00", "BID", "'08:00,20:00' is not a 24-hour time HH:MM"),
        ("20:00;08:00", "BID", "strictly increasing"),
        ("08:00;08:00", "BID", "strictly increasing"),
        ("08:00", "BID", "BID needs 2 time(s), 1 given"),
        ("08:00;20:00", "QD", "QD needs 1 time(s), 2 given"),
        ("08:00;", "QD", "'' is not a 24-hour time"),
    ],
)
def test_bad_times_are_refused_naming_the_field_and_value(text, frequency, message):
    with pytest.raises(rules.RuleError) as caught:
        rules.parse_dose_times(text, frequency)
    assert caught.value.field == "dose_times"
    assert caught.value.value == text.strip()
    assert message in caught.value.message


def test_doses_per_day_follow_the_frequency():
    assert rules.doses_per_day("BID") == 2
    assert rules.doses_per_day("qd") == 1
