"""What the trough charts share, on screen (``charts``) and on paper (``charts_report``),
so that a trough reads the same in both.

The charts must read in black and white (printed letters, colour-blind readers), and the
screen's and the paper's the same way: the range verdict is the marker's shape (circle in
range, triangle down below, triangle up above, diamond indeterminate), a hollow marker is a
trough not at a valid timing or not at steady state, and a censored result carries its
"<x"/">x" as text. On screen the range has a colour as well.

Here: that encoding, which records a chart shows (``plotted_levels``, ``dose_changes``,
``target_periods``, ``assay_changes``), the small formatting helpers (local time, rounded
floats, units, entered text as plain text) and ``Overlays``, which gathers a figure's
annotations and shapes. No figure is built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import plotly.graph_objects as go
from django.utils import timezone

from . import rules
from .assessment import LevelAssessment, PatientAssessment, Target, target_from_assignment
from .models import Assay, LevelStatus, Regimen

UNITS = (rules.CANONICAL_UNIT, rules.NMOL_UNIT)

# One marker encoding on screen and on paper, so that a trough reads the same in both:
# the range verdict is the marker's shape, and a hollow marker is a trough that cannot be
# read as a true steady-state trough (timing not valid, or drawn before steady state). On
# screen the range has an Okabe-Ito colour as well (distinguishable with the common
# colour-vision deficiencies); the timing's detail is in the hover text and the table.
RANGE_SHAPE = {
    # code: (symbol, legend name)
    rules.IN_RANGE: ("circle", "In range (circle)"),
    rules.BELOW: ("triangle-down", "Below range (triangle down)"),
    rules.ABOVE: ("triangle-up", "Above range (triangle up)"),
    rules.INDETERMINATE: ("diamond", "Indeterminate, censored (diamond)"),
}
RANGE_COLOUR = {
    rules.IN_RANGE: "#009E73",
    rules.BELOW: "#0072B2",
    rules.ABOVE: "#D55E00",
    rules.INDETERMINATE: "#6E6E6E",
}
HOLLOW_LEGEND = "Hollow: timing not valid or not at steady state"
RANGE_ORDER = (rules.IN_RANGE, rules.BELOW, rules.ABOVE, rules.INDETERMINATE)
RANGE_WORDS = {
    rules.IN_RANGE: "in range",
    rules.BELOW: "below range",
    rules.ABOVE: "above range",
    rules.INDETERMINATE: "indeterminate",
}


# --- small formatting helpers ------------------------------------------------------------


def _x(moment: datetime | date) -> str:
    """Local wall-clock time as plotly reads it (plotly.js has no time zones)."""
    if isinstance(moment, datetime):
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")
    return moment.isoformat()


def _num(value: Decimal, places: int = 4) -> float:
    """Rounded floats keep the figure JSON small (Decimals would also serialise as text)."""
    return float(rules.round_to(Decimal(value), places))


def _dose(mg: Decimal) -> str:
    """3.00 → "3", 4.50 → "4.5", 10 → "10"."""
    return f"{Decimal(mg).normalize():f}"


def _plain(text: str) -> str:
    """Entered text shown as text: plotly.js reads hover and annotation text as a small
    HTML subset, so "<1.0" or a "<b>" in an accession must not become markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _in_unit(value_ng_ml: Decimal, unit: str) -> Decimal:
    return rules.ng_ml_to_nmol_l(value_ng_ml) if unit == rules.NMOL_UNIT else value_ng_ml


def _check_unit(unit: str) -> str:
    for known in UNITS:
        if unit.strip().lower() == known.lower():
            return known
    raise rules.RuleError("unit", unit, f"is not a chart unit (accepted: {', '.join(UNITS)})")


_ASSAY_LABELS = dict(Assay.choices)  # built once: per trough it cost ~7 ms a 10-year page


def _assay_label(code: str) -> str:
    return _plain(str(_ASSAY_LABELS.get(code, code)))


def _regimen_text(regimen: Regimen) -> str:
    return f"{_dose(regimen.daily_dose_mg)} mg/day {regimen.formulation} {regimen.frequency}"


def _round_display(value_ng_ml: Decimal, unit: str) -> Decimal:
    return rules.round_to(_in_unit(value_ng_ml, unit), 2)


# --- what the chart shows -------------------------------------------------------------------


def plotted_levels(assessment: PatientAssessment) -> list[LevelAssessment]:
    """Every assessed trough except those entered in error (which never appear)."""
    return [a for a in assessment.levels if a.level.status != LevelStatus.ENTERED_IN_ERROR]


def dose_changes(regimens: Sequence[Regimen]) -> list[tuple[Regimen, str]]:
    """One (regimen, label) per real change: start, dose change, formulation or frequency
    switch, stop. A repeated identical record is not a change (as in assessment)."""
    changes = []
    previous = None
    for regimen in regimens:
        if previous is None:
            if regimen.daily_dose_mg == 0:
                label = "stopped"
            else:
                label = f"start {_regimen_text(regimen)}"
            changes.append((regimen, label))
            previous = regimen
            continue
        same_dose = regimen.daily_dose_mg == previous.daily_dose_mg
        same_form = regimen.formulation == previous.formulation
        same_freq = regimen.frequency == previous.frequency
        if same_dose and same_form and same_freq:
            continue
        if regimen.daily_dose_mg == 0:
            label = "stopped" if previous.daily_dose_mg != 0 else None
        elif previous.daily_dose_mg == 0:
            label = f"restart {_regimen_text(regimen)}"
        else:
            parts = []
            if not same_dose:
                parts.append(
                    f"{_dose(previous.daily_dose_mg)} → {_dose(regimen.daily_dose_mg)} mg/day"
                )
            if not same_form:
                parts.append(f"{previous.formulation} → {regimen.formulation}")
            if not same_freq:
                parts.append(f"{previous.frequency} → {regimen.frequency}")
            label = ", ".join(parts)
        if label:
            changes.append((regimen, label))
        previous = regimen
    return changes


def target_periods(
    assessment: PatientAssessment, axis_start: datetime, axis_end: datetime
) -> list[tuple[datetime, datetime, Target]]:
    """(start, end, target) per assignment, clipped to the axis. Before the first assignment
    the earliest one applies (as in ``assess_patient``), so the first band starts at the axis
    start; without any assignment the default target covers the whole axis."""
    assignments = sorted(assessment.records.targets, key=lambda a: a.effective_from)
    assignments = [a for a in assignments if a.effective_from <= axis_end]
    if not assignments:
        return [(axis_start, axis_end, assessment.current_target)]
    periods = []
    for i, assignment in enumerate(assignments):
        last = i + 1 == len(assignments)
        end = axis_end if last else assignments[i + 1].effective_from
        if end <= axis_start and not last:
            continue  # superseded before the first record on the chart
        start = assignment.effective_from if periods else axis_start
        periods.append((start, end, target_from_assignment(assignment)))
    return periods


def assay_changes(levels: Sequence[LevelAssessment]) -> list[tuple[LevelAssessment, str]]:
    """Troughs whose recorded assay differs from the previous recorded one (a blank assay
    is unknown, not a change)."""
    changes = []
    last = ""
    for a in levels:
        assay = a.level.assay
        if not assay:
            continue
        if last and assay != last:
            changes.append((a, f"assay {_assay_label(last)} → {_assay_label(assay)}"))
        last = assay
    return changes


def assay_change_notes(assessment: PatientAssessment) -> dict[int, str]:
    """The assay change of each plotted trough that has one, by ``id()`` of its
    LevelAssessment, worded for a table cell ("LC-MS/MS → CMIA")."""
    return {
        id(a): label.removeprefix("assay ")
        for a, label in assay_changes(plotted_levels(assessment))
    }


# --- how a trough is drawn -----------------------------------------------------------------


def _solid(a: LevelAssessment) -> bool:
    """A trough read as a true steady-state trough: drawn solid, on screen and on paper."""
    return a.timing.code == rules.VALID and a.steady_state


def _symbol(a: LevelAssessment) -> str:
    shape = RANGE_SHAPE[a.range][0]
    return shape if _solid(a) else f"{shape}-open"


def _marker_label(a: LevelAssessment, unit: str, preliminary: bool) -> str:
    """Text beside a marker: a censored result's "<x"/">x", and "prelim." when preliminary."""
    parts = []
    if a.level.comparator:
        parts.append(_plain(f"{a.level.comparator}{_round_display(a.level.value_ng_ml, unit)}"))
    if preliminary:
        parts.append("prelim.")
    return " ".join(parts)


# --- annotations and shapes ---------------------------------------------------------------


class Overlays:
    """Annotations and shapes gathered while a figure is built, then set on it at once.

    ``fig.add_annotation`` and ``fig.add_shape`` re-validate the figure's whole list on every
    call, so a chart with many dose changes cost O(n²): over a second for ten years of
    therapy. ``annotation``/``shape`` take the same arguments, ``row``/``col``/
    ``secondary_y`` included, for the two-row layout of ``trough_figure``.
    """

    # (row, secondary_y) -> axis names of make_subplots(rows=2, secondary_y on both rows)
    AXES = {
        (1, False): ("x", "y"),
        (1, True): ("x", "y2"),
        (2, False): ("x2", "y3"),
        (2, True): ("x2", "y4"),
    }

    def __init__(self) -> None:
        self.annotations: list[dict] = []
        self.shapes: list[dict] = []

    @classmethod
    def _refs(cls, spec: dict) -> dict:
        row = spec.pop("row", None)
        spec.pop("col", None)
        secondary = spec.pop("secondary_y", False)
        if row is None:
            return spec
        x, y = cls.AXES[(row, bool(secondary))]
        # Like plotly: an explicit "... domain" reference keeps its kind on the subplot's axes.
        spec["xref"] = x + " domain" if spec.get("xref", "").endswith("domain") else x
        spec["yref"] = y + " domain" if spec.get("yref", "").endswith("domain") else y
        return spec

    def annotation(self, **spec) -> None:
        self.annotations.append(self._refs(spec))

    def shape(self, **spec) -> None:
        self.shapes.append(self._refs(spec))

    def vline(self, x: str, *, yref: str, name: str, color: str, width: float, dash: str) -> None:
        """A vertical line at ``x`` across the trough panel (``"y domain"``) or both
        (``"paper"``)."""
        line = {"color": color, "width": width, "dash": dash}
        # Below the traces: a trough drawn on the day of a change stays visible on the line.
        self.shape(
            type="line",
            xref="x",
            yref=yref,
            x0=x,
            x1=x,
            y0=0,
            y1=1,
            line=line,
            name=name,
            layer="below",
        )

    def apply(self, fig: go.Figure) -> None:
        fig.update_layout(
            annotations=[*fig.layout.annotations, *self.annotations],
            shapes=[*fig.layout.shapes, *self.shapes],
        )
