"""The model's predicted trough on the trough chart: a line and its 80 % band.

Drawn behind the measured troughs (added before them), with a legend entry that switches
it off and on, and a hover that says what it is. The band is a light grey fill with a
diagonal pattern, so it stays readable when the chart is printed in black and white.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from . import rules

BAND_FILL = "rgba(90, 90, 90, 0.16)"
LINE_COLOUR = "#4d4d4d"
LEGEND_NAME = "Model-predicted trough, 80 % band"
HOVER = "%{customdata}<extra></extra>"


def _local(iso: str) -> str:
    return timezone.localtime(datetime.fromisoformat(iso)).strftime("%Y-%m-%d %H:%M")


def _value(value: float, unit: str) -> float:
    if unit == rules.NMOL_UNIT:
        return float(rules.round_to(rules.ng_ml_to_nmol_l(Decimal(str(value))), 3))
    return round(value, 3)


def forecast_traces(
    curve: dict, unit: str, model_name: str, since: str | None = None
) -> list[dict]:
    """Plotly traces (plain dicts) for a stored forecast curve (points after ``since``, a
    local "YYYY-MM-DD HH:MM", when given); none without one."""
    if not curve or not curve.get("t"):
        return []
    keep = [i for i, t in enumerate(curve["t"]) if since is None or _local(t) > since]
    if not keep:
        return []
    curve = {key: [curve[key][i] for i in keep] for key in ("t", "p10", "median", "p90")}
    x = [_local(t) for t in curve["t"]]
    low = [_value(v, unit) for v in curve["p10"]]
    mid = [_value(v, unit) for v in curve["median"]]
    high = [_value(v, unit) for v in curve["p90"]]
    shown = unit if unit != rules.NMOL_UNIT else "nmol/L"
    hover = [
        f"Predicted trough {m:.2f} {shown} (80 %: {lo:.2f}–{hi:.2f})<br>{model_name}"
        for lo, m, hi in zip(low, mid, high, strict=True)
    ]
    common = {"legendgroup": "forecast", "meta": "forecast", "hoverinfo": "skip"}
    return [
        {
            "type": "scatter",
            "x": x,
            "y": low,
            "mode": "lines",
            "line": {"width": 0, "color": LINE_COLOUR},
            "showlegend": False,
            "name": "80 % band, lower",
            **common,
        },
        {
            "type": "scatter",
            "x": x,
            "y": high,
            "mode": "lines",
            "line": {"width": 0, "color": LINE_COLOUR},
            "fill": "tonexty",
            "fillcolor": BAND_FILL,
            # Dots: the target band is hatched with lines on paper, so the two stay apart.
            "fillpattern": {"shape": ".", "fgcolor": "#6b6b6b", "size": 6, "solidity": 0.2},
            "showlegend": False,
            "name": "80 % band, upper",
            **common,
        },
        {
            "type": "scatter",
            "x": x,
            "y": mid,
            "mode": "lines",
            "line": {"width": 1.5, "color": LINE_COLOUR, "dash": "dash"},
            "name": LEGEND_NAME,
            "showlegend": True,
            "customdata": hover,
            "hovertemplate": HOVER,
            "legendgroup": "forecast",
            "meta": "forecast",
        },
    ]


def forecast_model_name(forecast) -> str:
    """The model's short name for a hover: "Woillard 2011" from its id."""
    model_id = forecast.model_id or ""
    letters = model_id.rstrip("0123456789")
    return f"{letters.capitalize()} {model_id[len(letters) :]}".strip() + " model"
