"""The trough chart of the patient page: the figure itself, built as plotly JSON.

Figures are built from an already computed ``PatientAssessment`` (no queries, no judgement
here: every verdict shown comes from ``assessment``/``rules``). The page passes
``figure_json(fig)`` through ``json_script`` and ``static/js/trough-chart.js`` draws it with
the local plotly.js, so no inline script is needed (CSP) and nothing comes from a CDN.

How a trough is encoded (shape per range verdict, hollow markers, colours), which records
the chart shows and the annotation collector live in ``charts_encoding``, shared with the
printed report's chart (``charts_report``); the forecast's traces in ``charts_forecast``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from plotly.subplots import make_subplots

from . import rules
from .assessment import LevelAssessment, PatientAssessment, drug_events
from .charts_encoding import (
    HOLLOW_LEGEND,
    RANGE_COLOUR,
    RANGE_ORDER,
    RANGE_SHAPE,
    RANGE_WORDS,
    UNITS,
    Overlays,
    _assay_label,
    _check_unit,
    _dose,
    _in_unit,
    _marker_label,
    _num,
    _plain,
    _regimen_text,
    _round_display,
    _solid,
    _symbol,
    _x,
    assay_changes,
    dose_changes,
    plotted_levels,
    target_periods,
)
from .charts_encoding import assay_change_notes as assay_change_notes  # the pages' tables
from .charts_forecast import forecast_model_name, forecast_traces
from .models import (
    InteractionDirection,
    LabResult,
    LabTest,
    LevelStatus,
    RecordStatus,
    Regimen,
)

# Creatinine 113.12 g/mol: 1 g/g creatinine = 113.12 mg/mmol (unit conversion, not a threshold).
UPCR_MG_MMOL_PER_G_G = Decimal("113.12")

BAND_COLOUR = "rgba(0, 158, 115, 0.13)"
BAND_KEY_COLOUR = "rgba(0, 158, 115, 0.3)"  # the legend's small square needs more colour
DOSE_COLOUR = "#444444"
DRUG_COLOUR = "#CC79A7"
ASSAY_COLOUR = "#A66D00"  # Okabe-Ito orange darkened to 4.4:1 on white (a thin line)
PRELIMINARY_OPACITY = 0.45
NO_LABS_HEIGHT = 480  # px: the trough panel alone, at about the height it has above the labs

RANGE_BUTTONS = (
    {"count": 6, "label": "6m", "step": "month", "stepmode": "backward"},
    {"count": 1, "label": "1y", "step": "year", "stepmode": "backward"},
    {"count": 3, "label": "3y", "step": "year", "stepmode": "backward"},
    {"label": "all", "step": "all"},
)


# Hover text: the fixed words live once in the template, each point carries only its
# values (customdata), and only ASCII plus "<br>" tags that json_script escapes 3-fold
# stay out of the per-point data: ~500 troughs must fit in 150 KB of page.
TROUGH_HOVER = (
    "%{x|%Y-%m-%d %H:%M}%{customdata[6]}<br><b>%{customdata[0]}</b><br>"
    "%{customdata[1]}, %{customdata[2]}<br>"
    "range: %{customdata[3]}; timing: %{customdata[4]}; steady state: %{customdata[5]}"
    "<extra></extra>"
)


def hover_fields(a: LevelAssessment) -> list[str]:
    """The values ``TROUGH_HOVER`` shows for one trough (its ``customdata``)."""
    level = a.level
    comp = _plain(level.comparator)
    ng = rules.round_to(level.value_ng_ml, 2)
    nmol = rules.round_to(rules.ng_ml_to_nmol_l(level.value_ng_ml), 2)
    value = f"{comp}{ng} ng/mL = {comp}{nmol} nmol/L"
    hours = a.timing.hours
    timing = (
        f"{rules.round_to(hours, 1)} h after dose"
        if hours is not None
        else "time after dose unknown"
    )
    if a.timing.nominal_hours is not None:
        timing += f" (C{int(a.timing.nominal_hours)}h)"
    assay = _assay_label(level.assay) if level.assay else "assay not recorded"
    if level.accession:
        assay += f", acc. {_plain(level.accession)}"
    timing_flag = a.timing.code
    if a.timing.code in (rules.BORDERLINE, rules.MISTIMED) and a.timing.direction:
        timing_flag += f" ({a.timing.direction})"
    elif a.timing.code == rules.UNKNOWN and a.timing.reason:
        timing_flag += f" ({a.timing.reason})"
    status = {LevelStatus.PRELIMINARY: " PRELIMINARY", LevelStatus.CORRECTED: " (corrected)"}
    return [
        value,
        timing,
        assay,
        RANGE_WORDS[a.range],
        timing_flag,
        "yes" if a.steady_state else "NO",
        status.get(level.status, ""),
    ]


def _axis_bounds(
    assessment: PatientAssessment,
    levels: Sequence[LevelAssessment],
    regimens: Sequence[Regimen],
    labs: Sequence[LabResult],
) -> tuple[datetime, datetime]:
    moments = [a.level.collected_at for a in levels]
    moments += [r.effective_at for r in regimens]
    moments += [lab.collected_at for lab in labs]
    end = assessment.now
    start = min(moments) if moments else end
    return start, end


# Margins around the records' span on the time axis: enough for a marker drawn at either end,
# never a visible stretch of future (the "6m" button counts back from the axis' end).
AXIS_PAD_SHARE = 0.02
AXIS_PAD_MIN = timedelta(days=1)
AXIS_PAD_MAX = timedelta(days=7)


def _time_range(start: datetime, end: datetime) -> tuple[str, str]:
    pad = min(max((end - start) * AXIS_PAD_SHARE, AXIS_PAD_MIN), AXIS_PAD_MAX)
    return _x(start - pad), _x(end + pad)


# --- the figure -----------------------------------------------------------------------------


def _scatter(**spec) -> dict:
    """A scatter trace as plotly JSON (see ``TroughFigure``)."""
    return {"type": "scatter", **spec}


class TroughFigure:
    """The trough figure as plotly JSON, ``{"data": [...], "layout": {...}}``, built directly.

    ``go.Figure`` wraps every trace and layout property in objects even with validation
    off: ~60 ms of a 10-year patient page. The traces here are plain dicts, and the layout
    (two panels on one time axis, dose and UPCR axes on the right) is the same for every
    patient but for the unit and one title, so plotly builds it once per unit
    (``_base_layout``) and each figure starts from a copy. Tests validate finished figures
    with plotly's validating constructor."""

    def __init__(self, unit: str) -> None:
        self.data: list[dict] = []
        self.layout: dict = json.loads(_base_layout(unit))

    def add_trace(self, trace: dict, *, row: int, col: int = 1, secondary_y: bool = False) -> None:
        xaxis, yaxis = Overlays.AXES[(row, secondary_y)]
        self.data.append({**trace, "xaxis": xaxis, "yaxis": yaxis})

    def set_axis_title(self, *, row: int, secondary_y: bool, text: str) -> None:
        yaxis = Overlays.AXES[(row, secondary_y)][1]
        self.layout[yaxis.replace("y", "yaxis")]["title"] = {"text": text}

    def apply(self, overlays: Overlays) -> None:
        self.layout["annotations"] = overlays.annotations
        self.layout["shapes"] = overlays.shapes

    def set_time_range(self, start: str, end: str) -> None:
        """The shared time axis from the records' span. Left to itself plotly.js ranges the
        axis over anything placed on it, and an empty lab panel threw it to 1965–2030;
        ``autorangeoptions`` keeps the "all" button (an autorange) inside the same span."""
        for axis in ("xaxis", "xaxis2"):
            self.layout[axis]["range"] = [start, end]
            self.layout[axis]["autorangeoptions"] = {"minallowed": start, "maxallowed": end}

    def without_lab_panel(self, note: str) -> None:
        """One panel when there is nothing for the lower one to show: the trough panel takes
        the height and carries the dates itself, and ``note`` sits above it, right-aligned
        (the range buttons are on the left), outside the plotting area."""
        layout = self.layout
        layout["height"] = NO_LABS_HEIGHT
        layout["yaxis"]["domain"] = [0, 1]
        layout["xaxis"]["showticklabels"] = True
        for axis in ("xaxis2", "yaxis3", "yaxis4"):
            layout[axis]["visible"] = False
        layout["legend"] = {**layout["legend"], "y": -0.1}
        layout["annotations"].append(
            {
                "text": note,
                "name": "no_labs",
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 1,
                "y": 1.02,
                "xanchor": "right",
                "yanchor": "bottom",
                "font": {"size": 11, "color": "#595959"},
            }
        )

    def to_plotly_json(self) -> dict:
        return {"data": self.data, "layout": self.layout}

    to_dict = to_plotly_json


def trough_figure(
    assessment: PatientAssessment, *, unit: str = "ng/mL", forecast=None
) -> TroughFigure:
    """Troughs over time against the target band(s), with the daily dose, interacting-drug
    and assay-change markers, and kidney labs in a panel below on the same time axis;
    with a stored ``forecast`` (``PatientForecast``), the model's predicted trough and its
    80 % band behind the troughs."""
    unit = _check_unit(unit)
    records = assessment.records
    now = assessment.now
    levels = plotted_levels(assessment)
    regimens = sorted(
        (r for r in records.regimens if r.status == RecordStatus.ACTIVE and r.effective_at <= now),
        key=lambda r: r.effective_at,
    )
    labs = sorted(
        (
            lab
            for lab in records.labs
            if lab.status == RecordStatus.ACTIVE and lab.collected_at <= now
        ),
        key=lambda lab: lab.collected_at,
    )
    axis_start, axis_end = _axis_bounds(assessment, levels, regimens, labs)

    fig = TroughFigure(unit)
    overlays = Overlays()
    _add_bands(fig, overlays, assessment, axis_start, axis_end, unit)
    if forecast is not None and forecast.curve:
        for trace in forecast_traces(forecast.curve, unit, forecast_model_name(forecast)):
            fig.add_trace(trace, row=1, col=1, secondary_y=False)
    _add_troughs(fig, levels, unit)
    _add_legend_keys(fig, levels)
    _add_dose(fig, overlays, regimens, axis_end)
    _add_drug_events(overlays, assessment)
    _add_assay_changes(overlays, levels)
    shown_labs = _add_labs(fig, labs)
    fig.apply(overlays)
    fig.set_time_range(*_time_range(axis_start, axis_end))
    if not shown_labs:
        fig.without_lab_panel("No kidney labs recorded")
    return fig


@functools.lru_cache(maxsize=len(UNITS))
def _base_layout(unit: str) -> str:
    """The trough figure's layout without data, as JSON text (copied per figure)."""
    fig = make_subplots(
        figure=go.Figure(_validate=False),
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.72, 0.28],
        vertical_spacing=0.06,
        specs=[[{"secondary_y": True}], [{"secondary_y": True}]],
    )
    # An empty template: the default one would add ~10 KB to every page.
    fig.update_layout(template="none")
    fig.update_layout(
        height=620,
        margin={"l": 60, "r": 60, "t": 40, "b": 80},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        font={"family": "system-ui, sans-serif", "size": 12},
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.08, "x": 0},
        meta={"unit": unit},
    )
    grid = {
        "showgrid": True,
        "gridcolor": "#e6e6e6",
        "zeroline": False,
        "showline": True,
        "linecolor": "#888888",
    }
    fig.update_xaxes(type="date", **grid)
    fig.update_xaxes(
        row=1,
        col=1,
        rangeselector={"buttons": list(RANGE_BUTTONS), "x": 0, "y": 1.02, "yanchor": "bottom"},
    )
    fig.update_yaxes(
        row=1, col=1, secondary_y=False, title_text=f"Trough ({unit})", rangemode="tozero", **grid
    )
    fig.update_yaxes(
        row=1,
        col=1,
        secondary_y=True,
        title_text="Daily dose (mg/day)",
        tickmode="auto",  # plotly.js would otherwise sync ticks to the trough axis
        rangemode="tozero",
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(row=2, col=1, secondary_y=False, rangemode="tozero", **grid)
    fig.update_yaxes(
        row=2,
        col=1,
        secondary_y=True,
        title_text="UPCR (g/g)",
        tickmode="auto",
        rangemode="tozero",
        showgrid=False,
        zeroline=False,
    )
    return json.dumps(fig.to_plotly_json()["layout"])


def _add_bands(
    fig: TroughFigure,
    overlays: Overlays,
    assessment: PatientAssessment,
    start: datetime,
    end: datetime,
    unit: str,
) -> None:
    labels: dict[tuple[str, float, float], str] = {}
    for period_start, period_end, target in target_periods(assessment, start, end):
        # Exact converted bounds (4–6 ng/mL is 4.9752–7.4628 nmol/L); never rounded text.
        low = float(_in_unit(target.low, unit))
        high = float(_in_unit(target.high, unit))
        overlays.shape(
            type="rect",
            xref="x",
            yref="y",
            x0=_x(period_start),
            x1=_x(period_end),
            y0=low,
            y1=high,
            fillcolor=BAND_COLOUR,
            line={"width": 0},
            layer="below",
            name=f"target {target.name}",
        )
        labels.setdefault(
            (target.name, low, high),
            f"{_dose(_round_display(target.low, unit))}–{_dose(_round_display(target.high, unit))}"
            f" {unit}",
        )
    # The band's label is a legend entry, not text in the plot: in the plot it sat where the
    # dose annotations of the first regimen land.
    named = len(labels) > 1
    for (name, _, _), band in labels.items():
        fig.add_trace(
            _scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"Target {_plain(name) + ' ' if named else ''}{band} (shaded band)",
                legendgroup="target_band",
                marker={
                    "symbol": "square",
                    "size": 12,
                    "color": BAND_KEY_COLOUR,
                    "line": {"color": "#2f6f5a", "width": 1},
                },
                hoverinfo="skip",
                meta="target_band",
            ),
            row=1,
            col=1,
            secondary_y=False,
        )


def _add_troughs(fig: TroughFigure, levels: Sequence[LevelAssessment], unit: str) -> None:
    for code in RANGE_ORDER:
        group = [a for a in levels if a.range == code]
        if not group:
            continue
        shape, name = RANGE_SHAPE[code]
        colour = RANGE_COLOUR[code]
        preliminary = [a.level.status == LevelStatus.PRELIMINARY for a in group]
        marker: dict[str, Any] = {
            "symbol": [_symbol(a) for a in group],
            "color": colour,
            "size": 10,
            "line": {"color": colour, "width": 2},
        }
        trace: dict[str, Any] = {"mode": "markers"}
        labels = [_marker_label(a, unit, p) for a, p in zip(group, preliminary, strict=True)]
        if any(preliminary):
            marker["opacity"] = [PRELIMINARY_OPACITY if p else 1 for p in preliminary]
        if any(labels):
            trace = {
                "mode": "markers+text",
                "text": labels,
                "textposition": "middle right",
                "textfont": {"size": 9, "color": "#444444"},
            }
        fig.add_trace(
            _scatter(
                x=[_x(a.level.collected_at) for a in group],
                y=[_num(_in_unit(a.level.value_ng_ml, unit)) for a in group],
                name=name,
                legendgroup=f"range:{code}",
                showlegend=False,  # the key below shows the shape solid, whatever the fill
                meta="troughs",
                marker=marker,
                customdata=[hover_fields(a) for a in group],
                hovertemplate=TROUGH_HOVER,
                **trace,
            ),
            row=1,
            col=1,
            secondary_y=False,
        )


def _add_legend_keys(fig: TroughFigure, levels: Sequence[LevelAssessment]) -> None:
    """Legend-only entries: each range's shape and colour (clicking one toggles its troughs),
    then what a hollow marker means."""
    ranges = {a.range for a in levels}
    keys = [
        (RANGE_SHAPE[c][1], RANGE_SHAPE[c][0], RANGE_COLOUR[c], f"range:{c}")
        for c in RANGE_ORDER
        if c in ranges
    ]
    if any(not _solid(a) for a in levels):
        keys.append((HOLLOW_LEGEND, "circle-open", "#333333", "hollow"))
    for name, symbol, colour, group in keys:
        fig.add_trace(
            _scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=name,
                legendgroup=group,
                marker={"symbol": symbol, "color": colour, "size": 10},
                hoverinfo="skip",
            ),
            row=1,
            col=1,
            secondary_y=False,
        )


def _add_dose(
    fig: TroughFigure, overlays: Overlays, regimens: Sequence[Regimen], axis_end: datetime
) -> None:
    changes = dose_changes(regimens)
    if not changes:
        return
    xs = [_x(r.effective_at) for r, _ in changes]
    ys = [_num(r.daily_dose_mg, 2) for r, _ in changes]
    # Carry the last dose to the end of the axis so the step shows what is in force now.
    xs.append(_x(axis_end))
    ys.append(ys[-1])
    fig.add_trace(
        _scatter(
            x=xs,
            y=ys,
            mode="lines",
            name="Daily dose (mg/day)",
            line={"color": DOSE_COLOUR, "width": 1.5, "dash": "dash", "shape": "hv"},
            hovertext=[_regimen_text(r) for r, _ in changes] + [_regimen_text(changes[-1][0])],
            hovertemplate="%{x|%Y-%m-%d}<br>%{hovertext}<extra>dose</extra>",
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    for i, (regimen, label) in enumerate(changes):
        overlays.annotation(
            x=_x(regimen.effective_at),
            y=_num(regimen.daily_dose_mg, 2),
            text=label,
            showarrow=True,
            arrowhead=2,
            arrowsize=0.8,
            arrowcolor=DOSE_COLOUR,
            ax=0,
            ay=-28 if i % 2 == 0 else -46,  # alternate heights so close changes stay legible
            font={"size": 10, "color": DOSE_COLOUR},
            bgcolor="rgba(255,255,255,0.8)",
            name="dose_change",
            row=1,
            col=1,
            secondary_y=True,
        )


def _add_drug_events(overlays: Overlays, assessment: PatientAssessment) -> None:
    drugs = [d for d in assessment.records.drugs if d.status == RecordStatus.ACTIVE]
    as_of = timezone.localdate(assessment.now)
    for event in sorted(drug_events(drugs, as_of), key=lambda e: (e.on, e.drug)):
        if event.direction not in (InteractionDirection.RAISES, InteractionDirection.LOWERS):
            continue
        change = rules.expected_level_change(event)
        arrow = "↑" if change == "rise" else "↓"
        x = _x(event.on)
        # Spans both panels: a drug event matters to the kidney labs as well.
        overlays.vline(
            x, yref="paper", name="interaction_event", color=DRUG_COLOUR, width=1, dash="dot"
        )
        overlays.annotation(
            x=x,
            xref="x",
            yref="paper",
            y=1,
            yanchor="top",
            xanchor="left",
            textangle=-90,
            showarrow=False,
            font={"size": 9, "color": "#8a3f6a"},
            text=(
                f"{_plain(event.drug)} {event.kind} ({event.direction}: level may {change}) {arrow}"
            ),
            name="interaction_event",
        )


def _add_assay_changes(overlays: Overlays, levels: Sequence[LevelAssessment]) -> None:
    for a, label in assay_changes(levels):
        x = _x(a.level.collected_at)
        overlays.vline(
            x, yref="y domain", name="assay_change", color=ASSAY_COLOUR, width=1.5, dash="dashdot"
        )
        overlays.annotation(
            x=x,
            xref="x",
            yref="y domain",
            y=0,
            yanchor="bottom",
            xanchor="left",
            showarrow=False,
            text=label,
            textangle=-90,  # along the line: close changes would overlap side by side
            font={"size": 9, "color": "#8a5a00"},
            bgcolor="rgba(255,255,255,0.8)",
            name="assay_change",
        )


def _upcr_g_g(lab: LabResult) -> Decimal:
    if lab.unit.strip().lower() == "mg/mmol":
        return lab.value / UPCR_MG_MMOL_PER_G_G
    return lab.value  # g/g and mg/mg are the same ratio


def _add_labs(fig: TroughFigure, labs: Sequence[LabResult]) -> bool:
    """Kidney labs in the lower panel; False when there is none to draw."""
    creatinine = [lab for lab in labs if lab.test == LabTest.CREATININE]
    egfr = [lab for lab in labs if lab.test == LabTest.EGFR]
    upcr = [lab for lab in labs if lab.test == LabTest.UPCR]
    # Creatinine and eGFR differ by two orders of magnitude: one shares the axis, and
    # creatinine (the nephrotoxicity watch) wins when both are recorded.
    if creatinine:
        values = [rules.creatinine_mg_dl(lab.value, lab.unit) for lab in creatinine]
        fig.add_trace(
            _scatter(
                x=[_x(lab.collected_at) for lab in creatinine],
                y=[_num(v, 2) for v in values],
                mode="lines+markers",
                name="Creatinine (mg/dL)",
                marker={"symbol": "circle", "size": 6, "color": "#444444"},
                line={"color": "#444444", "width": 1},
                hovertemplate="%{x|%Y-%m-%d}<br>creatinine %{y:.2f} mg/dL<extra></extra>",
            ),
            row=2,
            col=1,
            secondary_y=False,
        )
        fig.set_axis_title(row=2, secondary_y=False, text="Creatinine (mg/dL)")
    elif egfr:
        fig.add_trace(
            _scatter(
                x=[_x(lab.collected_at) for lab in egfr],
                y=[_num(lab.value, 1) for lab in egfr],
                mode="lines+markers",
                name="eGFR (mL/min/1.73m²)",
                marker={"symbol": "circle", "size": 6, "color": "#444444"},
                line={"color": "#444444", "width": 1},
                hovertemplate="%{x|%Y-%m-%d}<br>eGFR %{y:.0f} mL/min/1.73m²<extra></extra>",
            ),
            row=2,
            col=1,
            secondary_y=False,
        )
        fig.set_axis_title(row=2, secondary_y=False, text="eGFR")
    if upcr:
        fig.add_trace(
            _scatter(
                x=[_x(lab.collected_at) for lab in upcr],
                y=[_num(_upcr_g_g(lab), 2) for lab in upcr],
                mode="lines+markers",
                name="UPCR (g/g)",
                marker={"symbol": "square-open", "size": 6, "color": "#7a5195"},
                line={"color": "#7a5195", "width": 1, "dash": "dot"},
                hovertemplate="%{x|%Y-%m-%d}<br>UPCR %{y:.2f} g/g<extra></extra>",
            ),
            row=2,
            col=1,
            secondary_y=True,
        )
    return bool(creatinine or egfr or upcr)


# --- output -------------------------------------------------------------------------------


def figure_json(fig: go.Figure | TroughFigure) -> dict:
    """Plain data for ``{{ figure|json_script:"trough-chart-data" }}``: {"data", "layout"}."""
    return fig.to_plotly_json()


# Django's json_script escapes, applied with str.replace: str.translate over the 125 KB figure
# of a 10-year patient took ~6 ms, the replacements well under one.
_SCRIPT_ESCAPES = (("&", "\\u0026"), ("<", "\\u003C"), (">", "\\u003E"))


def figure_script(figure: dict, element_id: str) -> SafeString:
    """``{{ figure|json_script:element_id }}``, the same characters, faster."""
    text = json.dumps(figure, cls=DjangoJSONEncoder)
    for char, escaped in _SCRIPT_ESCAPES:
        text = text.replace(char, escaped)
    return format_html(
        '<script id="{}" type="application/json">{}</script>',
        element_id,
        mark_safe(text),  # noqa: S308 (escaped above, as json_script does)
    )


def chart_summary(assessment: PatientAssessment, *, unit: str = "ng/mL") -> str:
    """The chart as one sentence: the text alternative for screen readers and print."""
    unit = _check_unit(unit)
    levels = plotted_levels(assessment)
    if not levels:
        return "No troughs recorded."
    first = timezone.localdate(levels[0].level.collected_at)
    last_day = timezone.localdate(levels[-1].level.collected_at)
    latest = levels[-1]
    value = _round_display(latest.level.value_ng_ml, unit)
    # With the table's two decimals ("5.00", not "5"): the caption and the table must read alike.
    shown = f"{value:f}"
    state = RANGE_WORDS[latest.range]
    if latest.level.status == LevelStatus.PRELIMINARY:
        state += ", preliminary"
    n = len(levels)
    in_range = sum(1 for a in levels if a.range == rules.IN_RANGE)
    noun = "trough" if n == 1 else "troughs"
    span = f"on {first}" if first == last_day else f"from {first} to {last_day}"
    return (
        f"{n} {noun} {span}; latest {latest.level.comparator}{shown} {unit} ({state}); "
        f"{in_range} of {n} in range."
    )
