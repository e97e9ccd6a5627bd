"""The next action and the next trough's due date (clinical-rules.md §8): table-driven."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from monitoring import followup, rules
from monitoring.alert_text import action_text

NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
TODAY = NOW.date()
DUE = date(2026, 6, 29)


def trough(range_="below", timing="valid", steady=True, days_ago=5) -> followup.LatestTrough:
    return followup.LatestTrough(NOW - timedelta(days=days_ago), range_, timing, steady)


CASES = [
    # (id, alerts, latest, changes since latest, interaction events, expected words)
    (
        "valid low trough: review dose",
        ["trough_below_range"],
        trough("below"),
        [],
        [],
        "review dose",
    ),
    (
        "mistimed high trough: re-check a correctly timed trough",
        ["trough_above_range", "sample_mistimed"],
        trough("above", "mistimed"),
        [],
        [],
        "re-check a correctly timed trough",
    ),
    (
        "borderline low trough: re-check a correctly timed trough",
        ["trough_below_range"],
        trough("below", "borderline"),
        [],
        [],
        "re-check a correctly timed trough",
    ),
    (
        "low trough before steady state: re-check at steady state",
        ["trough_below_range", "not_steady_state"],
        trough("below", "valid", steady=False),
        [],
        [],
        "re-check trough at steady state",
    ),
    (
        "indeterminate trough: repeat with a more sensitive assay",
        [],
        trough("indeterminate"),
        [],
        [],
        "repeat the trough with a more sensitive assay (result censored inside the band)",
    ),
    (
        "dose change after a low trough: re-check at steady state, due by",
        ["trough_below_range"],
        trough("below"),
        [NOW - timedelta(days=1)],
        [],
        "re-check trough at steady state, due by 2026-06-29",
    ),
    (
        "missing last dose first",
        ["c12h_timing_missing", "trough_below_range"],
        trough("below", "unknown"),
        [],
        [],
        "add last-dose time",
    ),
    (
        "interaction: re-check trough with the expected direction",
        ["interaction_recheck"],
        trough("in_range", days_ago=20),
        [],
        [rules.DrugEvent(TODAY - timedelta(days=25), "start", "clarithromycin", rules.RAISES)],
        "re-check trough (expect the level to rise), due by 2026-06-29",
    ),
    (
        "interacting drug stopped after the latest trough: re-check after the change",
        ["interaction_recheck"],
        trough("in_range", days_ago=20),
        [],
        [rules.DrugEvent(TODAY - timedelta(days=3), "stop", "clarithromycin", rules.RAISES)],
        "re-check trough at steady state (expect the level to fall), due by 2026-06-29",
    ),
    ("nothing to do", [], trough("in_range"), [], [], "no action"),
]


@pytest.mark.parametrize(
    ("alerts", "latest", "changes", "events", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_next_action(alerts, latest, changes, events, expected):
    action = followup.next_action(
        alerts=alerts,
        latest=latest,
        changes_since_latest=changes,
        interaction_events=events,
        due=DUE,
    )
    assert action_text(action) == expected
    if latest.timing != rules.VALID or not latest.steady_state:
        assert action.code != followup.ACTION_REVIEW_DOSE


def test_an_acknowledged_alert_no_longer_drives_the_action():
    action = followup.next_action(
        alerts=["trough_below_range", "level_overdue"],
        latest=trough("below"),
        due=DUE,
        acknowledged={"trough_below_range"},
    )
    assert action_text(action) == "re-check trough (due 2026-06-29)"


DUE_CASES = [
    # (id, trough times, change times, expected due)
    ("latest trough + 90 days", [NOW - timedelta(days=10)], [], TODAY + timedelta(days=80)),
    (
        "change after the latest trough: + 14 days",
        [NOW - timedelta(days=10)],
        [NOW - timedelta(days=2)],
        TODAY + timedelta(days=12),
    ),
    (
        "a trough before steady state does not answer the change",
        [NOW - timedelta(days=1)],
        [NOW - timedelta(days=2)],
        TODAY + timedelta(days=12),
    ),
    (
        "a trough at steady state answers it",
        [NOW - timedelta(days=1)],
        [NOW - timedelta(days=5)],
        TODAY + timedelta(days=89),
    ),
    ("no trough and no change: due now", [], [], TODAY),
]


@pytest.mark.parametrize(
    ("troughs", "changes", "expected"),
    [case[1:] for case in DUE_CASES],
    ids=[case[0] for case in DUE_CASES],
)
def test_next_trough_due(troughs, changes, expected):
    due = followup.next_trough_due(
        on_tacrolimus=True, trough_times=troughs, change_events=changes, today=TODAY
    )
    assert due == expected


def test_no_trough_is_due_off_tacrolimus():
    assert (
        followup.next_trough_due(
            on_tacrolimus=False, trough_times=[], change_events=[], today=TODAY
        )
        is None
    )


@pytest.mark.parametrize(
    ("due", "state"),
    [
        (TODAY - timedelta(days=1), "overdue"),
        (TODAY, "due this week"),
        (TODAY + timedelta(days=7), "due this week"),
        (TODAY + timedelta(days=8), ""),
        (None, ""),
    ],
)
def test_due_state(due, state):
    assert followup.due_state(due, TODAY) == state
