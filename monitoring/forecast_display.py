"""What the forecast card shows: the stored forecast turned into words and rows.

Thin by design: the numbers were computed when the records changed (``forecasting``); here
they are only formatted, with the model's population said plainly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from . import forecasting, rules
from .models import ForecastMethod, Formulation, Patient, PatientForecast


@dataclass
class DoseRow:
    daily_dose: str
    trough: str
    interval: str
    in_range: str
    current: bool
    suggested: bool


@dataclass
class ForecastCard:
    method: str  # map, population, proportional, none, off
    heading: str
    model_name: str = ""
    model_reference: str = ""
    population: str = ""
    evidence: str = ""
    outside: list[str] = field(default_factory=list)  # why the model is extrapolated here
    defaulted: list[str] = field(default_factory=list)
    clearance: str = ""
    current: str = ""
    suggestion: str = ""
    rows: list[DoseRow] = field(default_factory=list)
    message: str = ""
    notes: list[str] = field(default_factory=list)
    troughs_used: int = 0
    fitted_at: object = None
    model_choices: list[tuple[str, str, bool]] = field(default_factory=list)


def _mg(value: float) -> str:
    return f"{value:g}"


def _conc(value: float) -> str:
    return f"{value:.1f}"


def forecast_card(patient: Patient, stored: PatientForecast | None, today: date) -> ForecastCard:
    if stored is None:
        return ForecastCard(
            method="off",
            heading="Dose forecast: proportional rule",
            message="Model-informed forecasts are switched off on this site (PK_FORECASTS).",
        )
    if stored.method in (ForecastMethod.NONE, ForecastMethod.PROPORTIONAL):
        return ForecastCard(
            method=stored.method,
            heading="Dose forecast: proportional rule",
            message=stored.message,
            notes=list(stored.notes),
            model_choices=_choices(patient, stored.formulation),
        )
    model = forecasting.model_by_id(stored.model_id)
    age = rules.age_in_years(patient.birth_date, today)
    interval = f"{_conc(stored.predicted_p10)}–{_conc(stored.predicted_p90)}"
    frequency = {1: "once daily", 2: "twice daily"}.get(stored.doses_per_day, "")
    band = f"{stored.target_low:g}–{stored.target_high:g} ng/mL"
    rows = [
        DoseRow(
            daily_dose=_mg(o["daily_dose_mg"]),
            trough=_conc(o["trough"]),
            interval=f"{_conc(o['p10'])}–{_conc(o['p90'])}",
            in_range=f"{o['p_in_range'] * 100:.0f} %",
            current=o["daily_dose_mg"] == stored.daily_dose_mg,
            suggested=o["daily_dose_mg"] == stored.suggested_daily_dose_mg,
        )
        for o in stored.options
    ]
    if stored.suggested_daily_dose_mg == stored.daily_dose_mg:
        suggestion = (
            f"Consider keeping {_mg(stored.daily_dose_mg)} mg/day: its predicted trough is "
            f"the nearest to the middle of {band}."
        )
    else:
        suggestion = (
            f"Consider {_mg(stored.suggested_daily_dose_mg)} mg/day {frequency}: the predicted "
            f"steady-state trough nearest to the middle of {band}."
        )
    defaults = {name: c for name, c in model.covariates.items()}
    return ForecastCard(
        method=stored.method,
        heading="Dose forecast: model-informed (MAP-Bayesian)",
        model_name=model.name,
        model_reference=model.reference,
        population=model.population,
        evidence=model.evidence,
        outside=forecasting.population_note(model, age),
        defaulted=[
            _default_text(defaults[name])
            for name in stored.covariates_defaulted
            if name in defaults
        ],
        clearance=(
            f"{stored.cl_individual:.1f} L/h (the model's typical value for these covariates: "
            f"{stored.cl_typical:.1f} L/h)"
        ),
        current=(
            f"On the current {_mg(stored.daily_dose_mg)} mg/day "
            f"({Formulation(stored.formulation).label}, {frequency}): predicted steady-state "
            f"trough {_conc(stored.predicted_trough)} ng/mL "
            f"(80 % interval {interval}); probability in {band}: {stored.p_in_range * 100:.0f} %."
        ),
        suggestion=suggestion,
        rows=rows,
        message=stored.message,
        notes=list(stored.notes),
        troughs_used=stored.n_troughs_used,
        fitted_at=stored.fitted_at,
        model_choices=_choices(patient, stored.formulation),
    )


def _default_text(covariate) -> str:
    """ "Haematocrit (default 35 %)": the description's first clause and the default."""
    unit = covariate.unit
    spaced = unit if unit in ("", "%") else " " + unit
    value = f"{covariate.default:g}{' ' if unit == '%' else ''}{spaced}"
    return f"{covariate.description.split(',')[0].split(' (')[0]} (default {value.strip()})"


def _choices(patient: Patient, formulation: str) -> list[tuple[str, str, bool]]:
    """(id, name, chosen) of the shipped models that cover the formulation."""
    if not formulation:
        return []
    models = forecasting.models_for(formulation)
    chosen = forecasting.model_for(patient, formulation)
    return [(m.id, m.name, chosen is not None and m.id == chosen.id) for m in models]
