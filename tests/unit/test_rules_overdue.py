"""§8 Monitoring schedule: level_overdue."""

from datetime import UTC, datetime, timedelta

import pytest

from monitoring import rules

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
D_ = timedelta(days=1)
S = timedelta(seconds=1)


def _ago(delta):
    return NOW - delta


@pytest.mark.parametrize(
    "trough_ages, expected",
    [
        ([10 * D_], False),
        ([89 * D_], False),
        ([90 * D_], False),  # exactly 90 days: not overdue
        ([90 * D_ + S], True),  # older than 90 days
        ([91 * D_], True),
        ([200 * D_], True),
        ([200 * D_, 30 * D_], False),  # the latest trough decides
        ([200 * D_, 95 * D_], True),
        ([], True),  # on tacrolimus and never a trough
    ],
)
def test_overdue_by_age_of_latest_trough(trough_ages, expected):
    assert (
        rules.level_overdue(
            on_tacrolimus=True,
            trough_times=[_ago(a) for a in trough_ages],
            change_events=[],
            now=NOW,
        )
        is expected
    )


@pytest.mark.parametrize(
    "change_age, trough_ages, expected",
    [
        (15 * D_, [20 * D_], True),  # window passed, only a trough before the change
        (15 * D_, [], True),
        (15 * D_, [12 * D_], False),  # trough 3 days after the change
        (15 * D_, [20 * D_, 2 * D_], False),  # trough 13 days after the change
        (14 * D_, [20 * D_], False),  # exactly 14 days: window not yet passed
        (14 * D_ + S, [20 * D_], True),  # window just passed
        (10 * D_, [20 * D_], False),  # still inside the window
        (0 * D_, [20 * D_], False),
        (-1 * D_, [20 * D_], False),  # a future change
        # Implemented interpretation (see report): a trough drawn after the 14-day
        # window still answers the change; the flag describes what is outstanding now.
        (30 * D_, [10 * D_], False),
    ],
)
def test_overdue_after_change_event(change_age, trough_ages, expected):
    troughs = [_ago(a) for a in trough_ages] or []
    # a recent-enough trough keeps the 90-day rule quiet except where none exists
    assert (
        rules.level_overdue(
            on_tacrolimus=True,
            trough_times=troughs,
            change_events=[_ago(change_age)],
            now=NOW,
        )
        is expected
    )


def test_one_unanswered_change_among_several_is_enough():
    troughs = [_ago(40 * D_), _ago(25 * D_)]
    changes = [_ago(30 * D_), _ago(20 * D_)]  # the first is answered, the second is not
    assert (
        rules.level_overdue(
            on_tacrolimus=True, trough_times=troughs, change_events=changes, now=NOW
        )
        is True
    )


@pytest.mark.parametrize(
    "trough_ages, change_ages",
    [
        ([], []),
        ([200 * D_], []),
        ([20 * D_], [15 * D_]),
        ([], [30 * D_]),
    ],
)
def test_never_overdue_when_not_on_tacrolimus(trough_ages, change_ages):
    assert (
        rules.level_overdue(
            on_tacrolimus=False,
            trough_times=[_ago(a) for a in trough_ages],
            change_events=[_ago(a) for a in change_ages],
            now=NOW,
        )
        is False
    )


@pytest.mark.parametrize(
    "overdue_days, post_change_days, trough_age, change_age, expected",
    [
        (30, 14, 31 * D_, None, True),
        (30, 14, 30 * D_, None, False),
        (90, 7, 20 * D_, 8 * D_, True),
        (90, 7, 20 * D_, 7 * D_, False),
    ],
)
def test_overdue_thresholds_configurable(
    overdue_days, post_change_days, trough_age, change_age, expected
):
    assert (
        rules.level_overdue(
            on_tacrolimus=True,
            trough_times=[_ago(trough_age)],
            change_events=[] if change_age is None else [_ago(change_age)],
            now=NOW,
            overdue_days=overdue_days,
            post_change_days=post_change_days,
        )
        is expected
    )


def test_defaults():
    assert rules.DEFAULT_THRESHOLDS.overdue_days == 90
    assert rules.DEFAULT_THRESHOLDS.post_change_trough_days == 14
