"""§3 Sample timing (C12h / C24h), including daylight-saving changes and last-dose checks."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitoring import rules
from monitoring.rules import RuleError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

DRAW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


def _timing(hours_after_dose, nominal="12"):
    return rules.timing_verdict(DRAW, DRAW - hours_after_dose, D(nominal))


H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    "elapsed, nominal, code, direction",
    [
        (12 * H, "12", "valid", None),
        (12.5 * H, "12", "valid", "late"),  # §10.1
        (11.5 * H, "12", "valid", "early"),
        (13 * H, "12", "valid", "late"),  # exactly +1 h: valid
        (11 * H, "12", "valid", "early"),  # exactly -1 h: valid
        (13 * H + M, "12", "borderline", "late"),  # +1 h 1 min
        (11 * H - M, "12", "borderline", "early"),  # -1 h 1 min
        (13 * H + timedelta(seconds=1), "12", "borderline", "late"),
        (14 * H, "12", "borderline", "late"),  # exactly +2 h: borderline
        (10 * H, "12", "borderline", "early"),  # exactly -2 h: borderline
        (14 * H + M, "12", "mistimed", "late"),
        (10 * H - M, "12", "mistimed", "early"),
        (9 * H, "12", "mistimed", "early"),  # §10.2: early, reads high
        (16 * H, "12", "mistimed", "late"),
        (24 * H, "24", "valid", None),
        (25 * H, "24", "valid", "late"),
        (23 * H, "24", "valid", "early"),
        (25 * H + M, "24", "borderline", "late"),
        (26 * H, "24", "borderline", "late"),
        (22 * H, "24", "borderline", "early"),
        (26.5 * H, "24", "mistimed", "late"),  # §10.4 Advagraf QD: late, reads low
        (21 * H, "24", "mistimed", "early"),
        (12 * H, "24", "mistimed", "early"),  # a QD sample drawn at 12 h
    ],
)
def test_timing_verdict_table(elapsed, nominal, code, direction):
    timing = _timing(elapsed, nominal)
    assert timing.code == code
    assert timing.direction == direction
    assert timing.hours == D(str(elapsed.total_seconds())) / 3600
    assert timing.nominal_hours == D(nominal)
    assert timing.reason == ""


@pytest.mark.parametrize("nominal", [D(12), D(24), None])
def test_missing_last_dose_is_unknown_never_valid(nominal):
    timing = rules.timing_verdict(DRAW, None, nominal)
    assert timing.code == "unknown"
    assert timing.code != "valid"
    assert timing.reason == rules.NO_LAST_DOSE
    assert timing.hours is None


def test_no_regimen_is_unknown_with_reason():
    timing = rules.timing_verdict(DRAW, DRAW - 12 * H, None)
    assert timing.code == "unknown"
    assert timing.reason == "no regimen recorded"
    assert timing.hours == D(12)


@pytest.mark.parametrize(
    "valid_h, borderline_h, elapsed, code",
    [
        ("0.5", "1", 12.5 * H, "valid"),
        ("0.5", "1", 12.75 * H, "borderline"),
        ("0.5", "1", 13.25 * H, "mistimed"),
        ("2", "3", 14 * H, "valid"),
        ("2", "3", 15 * H, "borderline"),
    ],
)
def test_timing_thresholds_configurable(valid_h, borderline_h, elapsed, code):
    timing = rules.timing_verdict(
        DRAW, DRAW - elapsed, D(12), valid_hours=D(valid_h), borderline_hours=D(borderline_h)
    )
    assert timing.code == code


@pytest.mark.parametrize(
    "frequency, hours",
    [("BID", 12), ("bid", 12), ("QD", 24), ("qd", 24), ("Qd", 24)],
)
def test_default_sampling_hours(frequency, hours):
    assert rules.default_sampling_hours(frequency) == D(hours)


def test_naive_datetimes_refused():
    naive = datetime(2025, 6, 2, 8, 0)
    with pytest.raises(ValueError):
        rules.elapsed_hours(naive - 12 * H, naive)
    with pytest.raises(ValueError):
        rules.timing_verdict(naive, naive - 12 * H, D(12))


# --- explanation: which way an off-time sample misleads ---------------------------------


@pytest.mark.parametrize(
    "elapsed, nominal, must_contain",
    [
        (9 * H, "12", ["early", "falsely high", "9.0 h"]),  # §10.2
        (10 * H, "12", ["early", "falsely high"]),  # borderline early
        (26.5 * H, "24", ["late", "falsely low", "26.5 h"]),  # §10.4
        (14 * H, "12", ["late", "falsely low"]),
        (12.5 * H, "12", ["C12h", "12.5 h"]),
        (24 * H, "24", ["C24h", "24.0 h"]),
    ],
)
def test_timing_explanation(elapsed, nominal, must_contain):
    text = rules.timing_explanation(_timing(elapsed, nominal))
    for fragment in must_contain:
        assert fragment in text


def test_timing_explanation_valid_does_not_warn():
    text = rules.timing_explanation(_timing(12.5 * H))
    assert "falsely" not in text


@pytest.mark.parametrize(
    "last_dose, nominal, reason",
    [(None, D(12), rules.NO_LAST_DOSE), (DRAW - 12 * H, None, rules.NO_REGIMEN)],
)
def test_timing_explanation_unknown_gives_reason(last_dose, nominal, reason):
    text = rules.timing_explanation(rules.timing_verdict(DRAW, last_dose, nominal))
    assert "unknown" in text.lower()
    assert reason in text


# --- daylight saving: real (UTC) hours count, not wall-clock hours -----------------------
#
# Each row: local dose time, local draw time in one zone. `wall` is the naive wall-clock
# difference, `real` the elapsed real time. Rows marked differ=True are chosen so that
# wall-clock arithmetic would give a different verdict from real-time arithmetic.

DST_CASES = [
    # Europe/Berlin spring forward 2025-03-30 02:00 -> 03:00 (real = wall - 1 h)
    (BERLIN, (2025, 3, 29, 20, 0), (2025, 3, 30, 8, 0), 12, 11, "valid", False),
    (BERLIN, (2025, 3, 29, 20, 0), (2025, 3, 30, 9, 0), 13, 12, "valid", False),
    (BERLIN, (2025, 3, 29, 20, 0), (2025, 3, 30, 9, 30), 13.5, 12.5, "valid", True),
    (BERLIN, (2025, 3, 29, 20, 0), (2025, 3, 30, 10, 0), 14, 13, "valid", True),
    (BERLIN, (2025, 3, 29, 20, 0), (2025, 3, 30, 7, 0), 11, 10, "borderline", True),
    (BERLIN, (2025, 3, 29, 20, 0), (2025, 3, 30, 10, 30), 14.5, 13.5, "borderline", True),
    (BERLIN, (2025, 3, 29, 20, 0), (2025, 3, 30, 6, 30), 10.5, 9.5, "mistimed", True),
    # Europe/Berlin fall back 2025-10-26 03:00 -> 02:00 (real = wall + 1 h)
    (BERLIN, (2025, 10, 25, 20, 0), (2025, 10, 26, 8, 0), 12, 13, "valid", False),
    (BERLIN, (2025, 10, 25, 20, 0), (2025, 10, 26, 7, 0), 11, 12, "valid", False),
    (BERLIN, (2025, 10, 25, 20, 0), (2025, 10, 26, 6, 0), 10, 11, "valid", True),
    (BERLIN, (2025, 10, 25, 20, 0), (2025, 10, 26, 6, 30), 10.5, 11.5, "valid", True),
    (BERLIN, (2025, 10, 25, 20, 0), (2025, 10, 26, 8, 30), 12.5, 13.5, "borderline", True),
    (BERLIN, (2025, 10, 25, 20, 0), (2025, 10, 26, 9, 0), 13, 14, "borderline", True),
    (BERLIN, (2025, 10, 25, 20, 0), (2025, 10, 26, 9, 30), 13.5, 14.5, "mistimed", True),
    # America/New_York spring forward 2025-03-09 02:00 -> 03:00
    (NEW_YORK, (2025, 3, 8, 20, 0), (2025, 3, 9, 8, 0), 12, 11, "valid", False),
    (NEW_YORK, (2025, 3, 8, 20, 0), (2025, 3, 9, 10, 0), 14, 13, "valid", True),
    (NEW_YORK, (2025, 3, 8, 20, 0), (2025, 3, 9, 7, 0), 11, 10, "borderline", True),
    (NEW_YORK, (2025, 3, 8, 21, 0), (2025, 3, 9, 7, 30), 10.5, 9.5, "mistimed", True),
    # America/New_York fall back 2025-11-02 02:00 -> 01:00
    (NEW_YORK, (2025, 11, 1, 20, 0), (2025, 11, 2, 8, 0), 12, 13, "valid", False),
    (NEW_YORK, (2025, 11, 1, 20, 0), (2025, 11, 2, 6, 0), 10, 11, "valid", True),
    (NEW_YORK, (2025, 11, 1, 20, 0), (2025, 11, 2, 9, 0), 13, 14, "borderline", True),
    (NEW_YORK, (2025, 11, 1, 20, 0), (2025, 11, 2, 9, 30), 13.5, 14.5, "mistimed", True),
    # No change in between: wall == real
    (BERLIN, (2025, 6, 1, 20, 0), (2025, 6, 2, 8, 0), 12, 12, "valid", False),
    (NEW_YORK, (2025, 7, 1, 20, 0), (2025, 7, 2, 9, 30), 13.5, 13.5, "borderline", False),
]


@pytest.mark.parametrize("zone, dose, draw, wall, real, code, differ", DST_CASES)
def test_c12h_across_dst_uses_real_hours(zone, dose, draw, wall, real, code, differ):
    dose_at = datetime(*dose, tzinfo=zone)
    drawn_at = datetime(*draw, tzinfo=zone)
    # Self-check of the table: wall and real differences are what the row claims.
    assert (drawn_at.replace(tzinfo=None) - dose_at.replace(tzinfo=None)) == timedelta(hours=wall)
    assert rules.elapsed_hours(dose_at, drawn_at) == D(str(real))

    timing = rules.timing_verdict(drawn_at, dose_at, D(12))
    assert timing.hours == D(str(real))
    assert timing.code == code

    # Wall-clock arithmetic (same instants read as if in a fixed-offset zone) gives a
    # different verdict exactly on the rows marked differ=True.
    wall_timing = rules.timing_verdict(
        drawn_at.replace(tzinfo=UTC), dose_at.replace(tzinfo=UTC), D(12)
    )
    assert (wall_timing.code != code) == differ


@pytest.mark.parametrize(
    "fold, real, code",
    [
        (0, 12, "valid"),  # 02:30 CEST (first pass) = 00:30 UTC
        (1, 13, "valid"),  # 02:30 CET (second pass) = 01:30 UTC
    ],
)
def test_ambiguous_autumn_hour_uses_fold(fold, real, code):
    dose_at = datetime(2025, 10, 25, 14, 30, tzinfo=BERLIN)
    drawn_at = datetime(2025, 10, 26, 2, 30, fold=fold, tzinfo=BERLIN)
    assert rules.elapsed_hours(dose_at, drawn_at) == D(real)
    assert rules.timing_verdict(drawn_at, dose_at, D(12)).code == code


def test_elapsed_hours_across_zones():
    dose_at = datetime(2025, 6, 1, 20, 0, tzinfo=NEW_YORK)  # 00:00 UTC on 2 June
    drawn_at = datetime(2025, 6, 2, 14, 0, tzinfo=BERLIN)  # 12:00 UTC
    assert rules.elapsed_hours(dose_at, drawn_at) == D(12)


# --- last-dose validation (data error at entry) -----------------------------------------


@pytest.mark.parametrize(
    "before_draw",
    [
        timedelta(0),  # same instant: not after the draw
        12 * H,
        47 * H + 59 * M,
        48 * H,  # exactly 48 h: accepted
    ],
)
def test_last_dose_accepted(before_draw):
    assert rules.validate_last_dose(DRAW, DRAW - before_draw) is None


def test_missing_last_dose_is_not_a_data_error():
    assert rules.validate_last_dose(DRAW, None) is None


@pytest.mark.parametrize(
    "before_draw, fragment",
    [
        (-M, "after the collection time"),
        (-12 * H, "after the collection time"),
        (-timedelta(seconds=1), "after the collection time"),
        (48 * H + timedelta(seconds=1), "48"),
        (48 * H + M, "48"),
        (72 * H, "48"),
    ],
)
def test_last_dose_rejected(before_draw, fragment):
    last_dose = DRAW - before_draw
    with pytest.raises(RuleError) as err:
        rules.validate_last_dose(DRAW, last_dose)
    assert err.value.field == "last_dose_at"
    assert err.value.value == last_dose.isoformat()
    assert fragment in err.value.message


@pytest.mark.parametrize(
    "dose, draw, ok",
    [
        # Spring forward: 48 wall hours are 47 real hours -> accepted;
        # 49 wall hours are 48 real hours -> accepted (boundary).
        ((2025, 3, 28, 20, 0), (2025, 3, 30, 20, 0), True),
        ((2025, 3, 28, 19, 0), (2025, 3, 30, 20, 0), True),
        # Autumn: 48 wall hours are 49 real hours -> rejected.
        ((2025, 10, 24, 20, 0), (2025, 10, 26, 20, 0), False),
        ((2025, 10, 24, 21, 0), (2025, 10, 26, 20, 0), True),  # 47 wall = 48 real
    ],
)
def test_last_dose_window_uses_real_hours(dose, draw, ok):
    dose_at = datetime(*dose, tzinfo=BERLIN)
    drawn_at = datetime(*draw, tzinfo=BERLIN)
    if ok:
        rules.validate_last_dose(drawn_at, dose_at)
    else:
        with pytest.raises(RuleError):
            rules.validate_last_dose(drawn_at, dose_at)


def test_last_dose_window_configurable():
    rules.validate_last_dose(DRAW, DRAW - 30 * H, max_hours=D(36))
    with pytest.raises(RuleError):
        rules.validate_last_dose(DRAW, DRAW - 30 * H, max_hours=D(24))


# --- elapsed_hours against the plain conversion ------------------------------------------

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), ZoneInfo("UTC"), BERLIN, NEW_YORK]
)
MOMENTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=ZONES
)


def _hours_via_utc(start: datetime, end: datetime) -> D:
    """The reference: both instants in UTC, the seconds between them as hours."""
    seconds = (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()
    return D(str(seconds)) / D(3600)


@settings(max_examples=500, deadline=None)
@given(start=MOMENTS, end=MOMENTS)
@example(  # the same zone over the spring change: wall 12 h, real 11 h
    start=datetime(2025, 3, 29, 20, 0, tzinfo=BERLIN),
    end=datetime(2025, 3, 30, 8, 0, tzinfo=BERLIN),
)
@example(  # the same zone, the second pass of the autumn hour
    start=datetime(2025, 10, 25, 14, 30, tzinfo=BERLIN),
    end=datetime(2025, 10, 26, 2, 30, fold=1, tzinfo=BERLIN),
)
def test_elapsed_hours_is_the_plain_conversion_to_the_digit(start, end):
    """The offsets taken off (rather than both converted) and the remembered hours of each
    interval give exactly the reference's Decimal, its exponent included, in every zone,
    fold and microsecond."""
    got, expected = rules.elapsed_hours(start, end), _hours_via_utc(start, end)
    assert (got, str(got)) == (expected, str(expected))
    assert (rules.elapsed_hours(start, end), str(got)) == (expected, str(expected))  # remembered


def test_the_remembered_intervals_are_bounded():
    remembered = rules._hours.cache_info
    for minutes in range(2 * remembered().maxsize):
        rules.elapsed_hours(DRAW - minutes * M, DRAW)
    assert 0 < remembered().currsize <= remembered().maxsize
    assert rules.elapsed_hours(DRAW - 90 * M, DRAW) == D("1.5")
