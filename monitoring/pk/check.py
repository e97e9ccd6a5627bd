"""Does a model serve our patients? Predict each trough from the earlier ones only.

Three methods side by side, on the same troughs: MAP (the model fitted to the earlier
troughs), the population model (η = 0: the model without the patient's levels) and the
proportional rule (the previous trough scaled by the dose ratio). Prediction error is
``(predicted − observed) / observed``, in %.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .dataset import Subject
from .estimate import fit
from .modelfile import Model
from .predict import Simulation

METHODS = ("map", "population", "proportional")


@dataclass(frozen=True)
class CheckPrediction:
    time: float
    observed: float
    map: float | None
    population: float
    proportional: float | None


def predict_each_from_earlier(
    model: Model, subject: Subject, daily_dose: np.ndarray | None = None
) -> list[CheckPrediction]:
    """One prediction per uncensored trough after the first, from the troughs before it.

    ``daily_dose`` (per record) gives the proportional rule its dose ratio; without it the
    rule assumes the dose did not change.
    """
    observed = subject.observed
    population = Simulation(model, subject, np.zeros((1, len(model.eta_names))))
    population_values = population.concentrations()[0]
    results = []
    previous_eta = None
    for position in range(1, len(observed)):
        record = observed[position]
        if subject.cens[record] or subject.dv[record] <= 0:
            continue  # a result below the limit has no error to measure
        history = _until(subject, record)  # nothing after the trough to predict matters
        history.dv[record] = np.nan  # ... and it is not known yet
        fitted = fit(model, history, start=previous_eta, posterior=False)
        map_value = None
        if fitted.converged:
            previous_eta = fitted.eta
            map_value = float(
                Simulation(model, history, fitted.eta[None, :]).concentrations([record])[0, 0]
            )
        previous = observed[position - 1]
        proportional = None
        if not subject.cens[previous]:
            ratio = 1.0
            if daily_dose is not None and daily_dose[previous] > 0:
                ratio = daily_dose[record] / daily_dose[previous]
            proportional = float(subject.dv[previous] * ratio)
        results.append(
            CheckPrediction(
                time=float(subject.time[record]),
                observed=float(subject.dv[record]),
                map=map_value,
                population=float(population_values[position]),
                proportional=proportional,
            )
        )
    return results


@dataclass(frozen=True)
class MethodSummary:
    method: str
    n: int
    median_error: float | None  # %, bias
    median_absolute_error: float | None  # %, precision
    within_20: float | None  # share of predictions within ±20 %


def summarize(predictions: list[CheckPrediction]) -> list[MethodSummary]:
    summaries = []
    for method in METHODS:
        errors = np.array(
            [
                (getattr(p, method) - p.observed) / p.observed * 100
                for p in predictions
                if getattr(p, method) is not None and p.observed > 0
            ]
        )
        if len(errors) == 0:
            summaries.append(MethodSummary(method, 0, None, None, None))
            continue
        summaries.append(
            MethodSummary(
                method=method,
                n=len(errors),
                median_error=float(np.median(errors)),
                median_absolute_error=float(np.median(np.abs(errors))),
                within_20=float(np.mean(np.abs(errors) <= 20)),
            )
        )
    return summaries


def _until(subject: Subject, record: int) -> Subject:
    """The subject's records up to and including ``record`` (a fresh copy)."""
    end = record + 1
    return replace(
        subject,
        time=subject.time[:end].copy(),
        evid=subject.evid[:end].copy(),
        amt=subject.amt[:end].copy(),
        dv=subject.dv[:end].copy(),
        ii=subject.ii[:end].copy(),
        addl=subject.addl[:end].copy(),
        ss=subject.ss[:end].copy(),
        cens=subject.cens[:end].copy(),
        covariates={name: column[:end].copy() for name, column in subject.covariates.items()},
        rows=None if subject.rows is None else subject.rows[:end].copy(),
        cache={},
    )
