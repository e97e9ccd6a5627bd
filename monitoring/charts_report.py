"""The trough chart of the printed report: a fixed size, readable in black and white.

It shares the on-screen figure's (``charts``) helpers and encodings, from
``charts_encoding``: the same marker shapes per range verdict, the same hollow markers for
timing or steady-state problems, the same dose steps, so a chart on paper reads like the
one on screen.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import plotly.graph_objects as go

from .assessment import PatientAssessment
from .charts_encoding import (
    HOLLOW_LEGEND,
    RANGE_ORDER,
    RANGE_SHAPE,
    Overlays,
    _check_unit,
    _dose,
    _in_unit,
    _marker_label,
    _num,
    _round_display,
    _solid,
    _symbol,
    _x,
    dose_changes,
    plotted_levels,
    target_periods,
)
from .charts_forecast import forecast_model_name, forecast_traces
from .models import LevelStatus, RecordStatus

# --- the printed report's figure -----------------------------------------------------------

REPORT_WIDTH = 680  # px: fits A4 portrait between 14 mm margins (182 mm ≈ 688 px)
REPORT_HEIGHT = 300
REPORT_INK = "#000000"
REPORT_GREY = "#6b6b6b"
REPORT_BAND_FILL = "#e3e3e3"
REPORT_BAND_HATCH = "#9a9a9a"


def _go_scatter(**spec) -> go.Scatter:
    """A trace object built without plotly's per-property validation (``report_figure``);
    tests validate every finished figure against plotly's schema."""
    return go.Scatter(_validate=False, **spec)


def report_figure(
    assessment: PatientAssessment,
    *,
    unit: str = "ng/mL",
    start: datetime | None = None,
    width: int = REPORT_WIDTH,
    height: int = REPORT_HEIGHT,
    forecast=None,
) -> go.Figure:
    """The trough chart for the printed report: a fixed size, readable in black and white.
    With a stored ``forecast``, the model's predicted trough (dashed) and its dotted band.

    The target band is grey and hatched, each range verdict has its own marker shape (circle
    in range, triangle down below, triangle up above, diamond indeterminate), a hollow marker
    is a trough not at a valid timing or not at steady state, censored results carry their
    "<x"/">x" as text, and the daily dose is a grey step line on the right axis. Only troughs
    collected after ``start`` (the report period) are drawn; no labs panel, no range buttons.
    """
    unit = _check_unit(unit)
    records = assessment.records
    now = assessment.now
    levels = [
        a for a in plotted_levels(assessment) if start is None or a.level.collected_at > start
    ]
    regimens = sorted(
        (r for r in records.regimens if r.status == RecordStatus.ACTIVE and r.effective_at <= now),
        key=lambda r: r.effective_at,
    )
    if start is None:
        moments = [a.level.collected_at for a in levels] + [r.effective_at for r in regimens]
        axis_start = min(moments) if moments else now
    else:
        axis_start = start
    axis_end = now

    fig = go.Figure(_validate=False)
    fig.update_layout(template="none")
    overlays = Overlays()
    if forecast is not None and forecast.curve:
        since = _x(axis_start)
        for trace in forecast_traces(forecast.curve, unit, forecast_model_name(forecast), since):
            fig.add_trace(_go_scatter(**trace))
    top = 0.0
    for period_start, period_end, target in target_periods(assessment, axis_start, axis_end):
        low = float(_in_unit(target.low, unit))
        high = float(_in_unit(target.high, unit))
        top = max(top, high)
        x0, x1 = _x(max(period_start, axis_start)), _x(period_end)
        # A filled polygon (not a layout shape): only traces take a fill pattern.
        fig.add_trace(
            _go_scatter(
                x=[x0, x1, x1, x0, x0],
                y=[low, low, high, high, low],
                mode="lines",
                fill="toself",
                fillcolor=REPORT_BAND_FILL,
                fillpattern={
                    "shape": "/",
                    "fgcolor": REPORT_BAND_HATCH,
                    "bgcolor": REPORT_BAND_FILL,
                    "size": 7,
                    "solidity": 0.12,
                },
                line={"color": REPORT_GREY, "width": 0.75},
                name="Target band (hatched)",
                legendgroup="band",
                showlegend=not any(t.legendgroup == "band" for t in fig.data),
                hoverinfo="skip",
                meta="band",
            )
        )
        overlays.annotation(
            x=x0,
            y=high,
            xanchor="left",
            yanchor="top",  # inside the band, below its upper edge
            showarrow=False,
            bgcolor="rgba(255, 255, 255, 0.85)",
            font={"size": 9, "color": REPORT_INK},
            text=(
                f"target {_dose(_round_display(target.low, unit))}–"
                f"{_dose(_round_display(target.high, unit))} {unit}"
            ),
            name="target_band",
        )

    for code in RANGE_ORDER:
        group = [a for a in levels if a.range == code]
        if not group:
            continue
        shape, name = RANGE_SHAPE[code]
        values = [float(_in_unit(a.level.value_ng_ml, unit)) for a in group]
        top = max(top, *values)
        fig.add_trace(
            _go_scatter(
                x=[_x(a.level.collected_at) for a in group],
                y=[_num(_in_unit(a.level.value_ng_ml, unit)) for a in group],
                mode="markers+text",
                text=[_marker_label(a, unit, preliminary=False) for a in group],
                textposition="middle right",
                textfont={"size": 8, "color": REPORT_INK},
                name=name,
                meta="troughs",
                marker={
                    "symbol": [_symbol(a) for a in group],
                    "size": 8,
                    "color": [
                        REPORT_GREY if a.level.status == LevelStatus.PRELIMINARY else REPORT_INK
                        for a in group
                    ],
                    "line": {"color": REPORT_INK, "width": 1},
                },
                hoverinfo="skip",
            )
        )
    if any(not _solid(a) for a in levels):
        fig.add_trace(
            _go_scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=HOLLOW_LEGEND,
                marker={"symbol": "circle-open", "size": 8, "color": REPORT_INK},
                hoverinfo="skip",
            )
        )

    top_dose = 0.0
    changes = dose_changes(regimens)
    if changes:
        shown = [c for c in changes if c[0].effective_at >= axis_start]
        before = [c for c in changes if c[0].effective_at < axis_start]
        xs = ([_x(axis_start)] if before else []) + [_x(r.effective_at) for r, _ in shown]
        ys = ([_num(before[-1][0].daily_dose_mg, 2)] if before else []) + [
            _num(r.daily_dose_mg, 2) for r, _ in shown
        ]
        if ys:
            top_dose = max(ys)
            xs.append(_x(axis_end))
            ys.append(ys[-1])
            fig.add_trace(
                _go_scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line_shape="hv",
                    name="Daily dose (mg/day, right axis)",
                    line={"color": REPORT_GREY, "width": 1.5, "dash": "dash"},
                    yaxis="y2",
                    hoverinfo="skip",
                    meta="dose",
                )
            )

    margin = max((axis_end - axis_start) * 0.02, timedelta(hours=12))
    fig.update_layout(
        width=width,
        height=height,
        autosize=False,
        margin={"l": 48, "r": 48, "t": 12, "b": 40},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        font={"family": "Helvetica, Arial, sans-serif", "size": 10, "color": REPORT_INK},
        showlegend=True,
        legend={
            "orientation": "h",
            "yanchor": "top",
            "y": -0.12,
            "x": 0,
            "font": {"size": 9},
            "itemclick": False,
            "itemdoubleclick": False,
        },
        hovermode=False,
        dragmode=False,
        meta={"unit": unit, "print": True},
        xaxis={
            "type": "date",
            # A little room at both ends so that a trough on the edge is drawn whole.
            "range": [_x(axis_start - margin), _x(axis_end + margin)],
            "showgrid": True,
            "gridcolor": "#d0d0d0",
            "showline": True,
            "linecolor": REPORT_INK,
            "ticks": "outside",
            "fixedrange": True,
        },
        yaxis={
            "title": {"text": f"Trough ({unit})"},
            "range": [0, (top or 1.0) * 1.15],
            "showgrid": True,
            "gridcolor": "#d0d0d0",
            "zeroline": False,
            "showline": True,
            "linecolor": REPORT_INK,
            "ticks": "outside",
            "fixedrange": True,
        },
        yaxis2={
            "title": {"text": "Daily dose (mg/day)"},
            "overlaying": "y",
            "side": "right",
            # Its own ticks (plotly.js would sync them to the trough axis: 0.99, 1.98, ...).
            "tickmode": "auto",
            "range": [0, (top_dose or 1.0) * 1.25],
            "showgrid": False,
            "zeroline": False,
            "showline": True,
            "linecolor": REPORT_GREY,
            "ticks": "outside",
            "fixedrange": True,
        },
    )
    overlays.apply(fig)
    return fig
