"""§2 Target range: inclusive band, censored results, target in force at a moment."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitoring import rules

LOW, HIGH = D("4.0"), D("6.0")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("3.2", "below"),
        ("3.99", "below"),
        ("3.9999", "below"),
        ("4.0", "in_range"),  # inclusive low
        ("4", "in_range"),
        ("5.0", "in_range"),
        ("6.0", "in_range"),  # inclusive high
        ("6.01", "above"),
        ("6.0001", "above"),
        ("7.1", "above"),
        ("0.1", "below"),
        ("100", "above"),
    ],
)
def test_uncensored_verdict_default_band(value, expected):
    assert rules.range_verdict(D(value), "", LOW, HIGH) == expected


@pytest.mark.parametrize(
    "comparator, value, expected",
    [
        ("<", "1.0", "below"),  # §10.3
        ("<", "3.99", "below"),
        ("<", "4.0", "below"),  # x ≤ low → below
        ("<", "4.01", "indeterminate"),  # x > low: could be in range
        ("<", "5.0", "indeterminate"),
        ("<", "10", "indeterminate"),
        (">", "30", "above"),
        (">", "6.0", "above"),  # x ≥ high → above
        (">", "6.01", "above"),
        (">", "5.99", "indeterminate"),  # x < high: could be in range
        (">", "4.0", "indeterminate"),
        (">", "1.0", "indeterminate"),
    ],
)
def test_censored_verdict(comparator, value, expected):
    assert rules.range_verdict(D(value), comparator, LOW, HIGH) == expected


def test_verdict_uses_unrounded_canonical_value():
    # 4.97 nmol/L = 3.9959794 ng/mL: rounds to 4.00 for display but is below 4.0.
    v = rules.to_ng_ml(D("4.97"), "nmol/L")
    assert rules.round_to(v, 2) == D("4.00")
    assert rules.range_verdict(v, "", LOW, HIGH) == "below"
    # 7.47 nmol/L = 6.0060294 ng/mL: displays as 6.01, above.
    assert rules.range_verdict(rules.to_ng_ml(D("7.47"), "nmol/L"), "", LOW, HIGH) == "above"
    # 7.46 nmol/L = 5.9979892 ng/mL: displays as 6.00, in range.
    assert rules.range_verdict(rules.to_ng_ml(D("7.46"), "nmol/L"), "", LOW, HIGH) == "in_range"


@pytest.mark.parametrize(
    "low, high, value, comparator, expected",
    [
        ("5", "10", "4.9", "", "below"),  # LN induction / ILD
        ("5", "10", "10", "", "in_range"),
        ("6", "10", "10.5", "", "above"),  # liver transplant month 1
        ("4", "8", "7.9", "", "in_range"),
        ("5", "7", "<5", "<", "below"),
        ("5", "7", ">7", ">", "above"),
        ("5", "7", "<6", "<", "indeterminate"),
    ],
)
def test_verdict_other_profiles(low, high, value, comparator, expected):
    number = D(value.lstrip("<>"))
    assert rules.range_verdict(number, comparator, D(low), D(high)) == expected


def _t(day):
    return datetime(2025, 1, day, 8, 0, tzinfo=UTC)


TARGETS = [
    (_t(20), "phase 3"),
    (_t(1), "phase 1"),  # unordered on purpose
    (_t(10), "phase 2"),
]


@pytest.mark.parametrize(
    "moment, expected",
    [
        (datetime(2024, 12, 31, tzinfo=UTC), None),  # before the first assignment
        (_t(1), "phase 1"),  # effective at exactly its start
        (_t(5), "phase 1"),
        (datetime(2025, 1, 10, 7, 59, tzinfo=UTC), "phase 1"),
        (_t(10), "phase 2"),
        (_t(19), "phase 2"),
        (_t(20), "phase 3"),
        (datetime(2026, 1, 1, tzinfo=UTC), "phase 3"),
    ],
)
def test_target_effective_at_collection_time(moment, expected):
    assert rules.effective_at(TARGETS, moment) == expected


def test_effective_at_empty():
    assert rules.effective_at([], _t(1)) is None


def _in_force_by_scan(items, moment):
    """The plain reading of the rule: walk the pairs by start, keep the last one begun."""
    current = None
    for start, payload in sorted(items, key=lambda pair: pair[0]):
        if start <= moment:
            current = payload
    return current


@given(
    starts=st.lists(st.integers(min_value=0, max_value=40), max_size=12),
    moment=st.integers(min_value=-2, max_value=42),
)
def test_timeline_agrees_with_a_scan_ties_included(starts, moment):
    # Days from a fixed instant, many of them equal: of pairs starting together, the last
    # given is in force, as a stable sort and a scan leave it.
    origin = datetime(2025, 1, 1, 8, tzinfo=UTC)
    items = [(origin + timedelta(days=d), f"#{i}") for i, d in enumerate(starts)]
    at = origin + timedelta(days=moment)
    line = rules.Timeline(items)
    assert line.at(at) == _in_force_by_scan(items, at)
    assert line.at(at + timedelta(hours=12)) == _in_force_by_scan(items, at + timedelta(hours=12))
