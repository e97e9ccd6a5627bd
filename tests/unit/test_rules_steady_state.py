"""§4 Steady state: a sample less than 72 h after a change is not at steady state."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from monitoring import rules

BERLIN = ZoneInfo("Europe/Berlin")
DRAW = datetime(2025, 6, 10, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    "since_change, steady",
    [
        (72 * H, True),  # exactly 72 h: steady
        (72 * H + M, True),
        (30 * 24 * H, True),
        (71 * H + 59 * M, False),  # 71 h 59 min: not steady
        (72 * H - timedelta(seconds=1), False),
        (48 * H, False),
        (1 * H, False),
        (timedelta(0), False),  # drawn at the moment of the change
        (-1 * H, True),  # a change after the draw does not affect it
        (-100 * H, True),
    ],
)
def test_single_change(since_change, steady):
    assert rules.at_steady_state(DRAW, [DRAW - since_change]) is steady


@pytest.mark.parametrize(
    "changes_hours_ago, steady",
    [
        ([], True),
        ([100, 200], True),
        ([100, 10], False),  # any recent change counts
        ([71, 500], False),
        ([-5, 72], True),
        ([-5, 71], False),
    ],
)
def test_several_changes(changes_hours_ago, steady):
    events = [DRAW - h * H for h in changes_hours_ago]
    assert rules.at_steady_state(DRAW, events) is steady


def test_events_may_be_a_generator():
    assert rules.at_steady_state(DRAW, (DRAW - h * H for h in [10])) is False


@pytest.mark.parametrize(
    "change, draw, steady",
    [
        # Spring forward: 72 wall hours are only 71 real hours -> not steady.
        ((2025, 3, 28, 8, 0), (2025, 3, 31, 8, 0), False),
        ((2025, 3, 28, 7, 0), (2025, 3, 31, 8, 0), True),  # 73 wall = 72 real
        # Fall back: 71 wall hours are 72 real hours -> steady.
        ((2025, 10, 24, 9, 0), (2025, 10, 27, 8, 0), True),
        ((2025, 10, 24, 10, 0), (2025, 10, 27, 8, 0), False),  # 70 wall = 71 real
    ],
)
def test_steady_state_across_dst_uses_real_hours(change, draw, steady):
    assert (
        rules.at_steady_state(datetime(*draw, tzinfo=BERLIN), [datetime(*change, tzinfo=BERLIN)])
        is steady
    )


@pytest.mark.parametrize("hours, since, steady", [("48", 48, True), ("96", 80, False)])
def test_steady_state_hours_configurable(hours, since, steady):
    assert rules.at_steady_state(DRAW, [DRAW - since * H], hours=D(hours)) is steady


def test_default_is_72_hours():
    assert rules.DEFAULT_THRESHOLDS.steady_state_hours == D(72)
