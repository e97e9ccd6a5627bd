"""Worklist urgency bands (critical, out of range, timing, other, none): table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitoring import followup

AT = datetime(2026, 6, 1, 8, tzinfo=UTC)


def latest(value, comparator="", timing="valid", steady=True, range_="below"):
    return followup.LatestTrough(AT, range_, timing, steady, Decimal(value), comparator)


CASES = [
    ("16 ng/mL above: critical", ["trough_above_range"], latest("16", range_="above"), (), 0),
    ("exactly 15: critical", ["trough_above_range"], latest("15", range_="above"), (), 0),
    ("1.8 below: critical", ["trough_below_range"], latest("1.8"), (), 0),
    ("<1.0 below: critical", ["trough_below_range"], latest("1.0", "<"), (), 0),
    (
        ">30 above the ceiling: critical",
        ["trough_above_range"],
        latest("30", ">", range_="above"),
        (),
        0,
    ),
    (
        ">10 is not known to be critical",
        ["trough_above_range"],
        latest("10", ">", range_="above"),
        (),
        1,
    ),
    (
        "critical even when mistimed",
        ["trough_above_range", "sample_mistimed"],
        latest("20", timing="mistimed", range_="above"),
        (),
        0,
    ),
    ("valid steady 3.2: out of range", ["trough_below_range"], latest("3.2"), (), 1),
    (
        "mistimed 7.5: timing problem",
        ["trough_above_range", "sample_mistimed"],
        latest("7.5", timing="mistimed", range_="above"),
        (),
        2,
    ),
    (
        "before steady state: timing problem",
        ["trough_below_range", "not_steady_state"],
        latest("3.2", steady=False),
        (),
        2,
    ),
    (
        "missing last dose: timing",
        ["c12h_timing_missing"],
        latest("5", timing="unknown", range_="in_range"),
        (),
        2,
    ),
    ("other alert", ["premature_discontinuation"], latest("5", range_="in_range"), (), 3),
    ("nothing", [], latest("5", range_="in_range"), (), 4),
    ("no trough, overdue", ["level_overdue"], None, (), 3),
    (
        "reviewed low trough: no longer ranked",
        ["trough_below_range"],
        latest("3.2"),
        ("trough_below_range",),
        4,
    ),
    (
        "reviewed critical trough drops to its other alerts",
        ["trough_above_range", "interaction_recheck"],
        latest("16", range_="above"),
        ("trough_above_range",),
        3,
    ),
]


@pytest.mark.parametrize(
    ("alerts", "trough", "acknowledged", "band"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_urgency_band(alerts, trough, acknowledged, band):
    assert followup.urgency_band(alerts=alerts, latest=trough, acknowledged=acknowledged) == band


def test_the_critical_thresholds_are_arguments():
    trough = latest("12", range_="above")
    alerts = ["trough_above_range"]
    assert followup.urgency_band(alerts=alerts, latest=trough) == followup.BAND_OUT_OF_RANGE
    assert (
        followup.urgency_band(alerts=alerts, latest=trough, critical_high=Decimal("12"))
        == followup.BAND_CRITICAL
    )


def test_a_dose_change_after_the_latest_trough_moves_it_to_the_waiting_band():
    alerts = ["trough_above_range"]
    trough = latest("16", range_="above")
    assert followup.urgency_band(alerts=alerts, latest=trough) == followup.BAND_CRITICAL
    assert (
        followup.urgency_band(alerts=alerts, latest=trough, changed_since_latest=True)
        == followup.BAND_OTHER
    )
