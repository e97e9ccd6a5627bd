"""The metrics of §7 of docs/clinical-rules.md: percent in range, time in range (Rosendaal),
intra-patient variability (CV), the concentration/dose ratio and the proportional dose
suggestion.

They summarise a patient's series of already-judged troughs rather than judge one record,
and need nothing of the other rules but a verdict code and the thresholds (rules_base.py),
so they live in a module of their own; rules.py re-exports them, so ``rules.X`` keeps
working everywhere. Pure like rules.py: no Django import.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from .rules_base import DEFAULT_THRESHOLDS, IN_RANGE

# --- §7 metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TroughPoint:
    """One qualifying trough for the metrics."""

    collected_on: date
    value_ng_ml: Decimal
    comparator: str
    verdict: str


def percent_in_range(points: Sequence[TroughPoint]) -> Decimal | None:
    if not points:
        return None
    hits = sum(1 for p in points if p.verdict == IN_RANGE)
    return Decimal(hits) * 100 / Decimal(len(points))


def time_in_range(
    points: Sequence[TroughPoint],
    low: Decimal,
    high: Decimal,
    *,
    max_gap_days: int = DEFAULT_THRESHOLDS.ttr_max_gap_days,
) -> Decimal | None:
    """Rosendaal: interpolate linearly day by day between consecutive troughs and count the
    days inside [low, high]; intervals longer than ``max_gap_days`` are left out. A censored
    ``<x`` enters as x. Days 0..n-1 of each n-day interval are counted, so no day is
    counted twice.

    Counted per interval in closed form (``_days_inside``), in integers, exactly: a
    5,000-patient re-judge met 400,000 interpolated days, a fifth to a third of its metrics'
    time."""
    ordered = sorted(points, key=lambda p: p.collected_on)
    scale = _decimal_places([low, high, *(p.value_ng_ml for p in ordered)])
    low_i, high_i = _scaled(low, scale), _scaled(high, scale)
    values = [_scaled(p.value_ng_ml, scale) for p in ordered]
    days_total = 0
    days_in = 0
    for i in range(len(ordered) - 1):
        span = (ordered[i + 1].collected_on - ordered[i].collected_on).days
        if span <= 0 or span > max_gap_days:
            continue
        days_total += span
        days_in += _days_inside(values[i], values[i + 1], span, low_i, high_i)
    if days_total == 0:
        return None
    return Decimal(days_in) * 100 / Decimal(days_total)


def _decimal_places(values: Sequence[Decimal]) -> int:
    return max(0, *(-v.as_tuple().exponent for v in values))


def _scaled(value: Decimal, places: int) -> int:
    """``value`` times 10**places, exactly (``places`` is at least its own)."""
    return int(value.scaleb(places))


def _days_inside(first: int, second: int, span: int, low: int, high: int) -> int:
    """How many of the days d = 0..span-1 have first + (second - first) * d / span within
    [low, high] (all four scaled alike): the days between the interpolated line's
    crossings of the band. Multiplied out by ``span``, the bounds are whole numbers, so
    the floor and ceiling divisions are exact, as counting day by day is."""
    rise = second - first
    if rise == 0:
        return span if low <= first <= high else 0
    if rise < 0:  # falling: the line enters at the high edge and leaves at the low one
        low, high = high, low
    # low <= first + rise * d / span  <=>  d >= (low - first) * span / rise (rise > 0),
    # and with the edges swapped the same holds for rise < 0.
    earliest = -((first - low) * span // rise)  # ceiling
    latest = (high - first) * span // rise  # floor
    inside = min(latest, span - 1) - max(earliest, 0) + 1
    return max(inside, 0)


def cv_percent(
    points: Sequence[TroughPoint], *, min_n: int = DEFAULT_THRESHOLDS.cv_min_n
) -> tuple[Decimal | None, int]:
    """Intra-patient variability: sample SD / mean over uncensored troughs, with n."""
    values = [p.value_ng_ml for p in points if not p.comparator]
    n = len(values)
    if n < min_n:
        return None, n
    mean = statistics.fmean(float(v) for v in values)
    sd = statistics.stdev(float(v) for v in values)
    return Decimal(str(sd / mean * 100)), n


def cd_ratio(value_ng_ml: Decimal, daily_dose_mg: Decimal | None) -> Decimal | None:
    if not daily_dose_mg or daily_dose_mg <= 0:
        return None
    return value_ng_ml / daily_dose_mg


def dose_suggestion(
    daily_dose_mg: Decimal,
    low: Decimal,
    high: Decimal,
    measured_ng_ml: Decimal,
    *,
    step_mg: Decimal = DEFAULT_THRESHOLDS.dose_step_mg,
) -> Decimal | None:
    """Proportional dose to reach the target midpoint, rounded to the nearest step.
    The caller allows it only for a qualifying, uncensored, out-of-range trough."""
    if daily_dose_mg <= 0 or measured_ng_ml <= 0:
        return None
    midpoint = (low + high) / 2
    raw = daily_dose_mg * midpoint / measured_ng_ml
    steps = (raw / step_mg).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return steps * step_mg
