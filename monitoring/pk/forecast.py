"""What the fitted model predicts for a regimen: steady-state troughs and doses to consider.

Uncertainty comes from the posterior of η (a multivariate normal around η̂ with the
covariance of the fit), simulated with a fixed seed so that the same fit always gives the
same forecast. The interval describes the patient's true trough, not a single measurement
(assay noise would widen it by the residual error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri
from scipy.stats import qmc

from .dataset import subject_from_arrays
from .estimate import FitResult
from .modelfile import Model
from .predict import Simulation, predict_batch

DRAWS = 512  # a power of two: Sobol points are balanced in blocks of 2^k
SEED = 20110391  # fixed: a forecast must not change between two looks at the same fit
DOSE_STEP_MG = 0.5


@dataclass(frozen=True)
class DoseOption:
    daily_dose_mg: float
    trough: float  # median of the posterior
    p10: float
    p90: float
    p_in_range: float


@dataclass(frozen=True)
class Forecast:
    current: DoseOption
    options: list[DoseOption]  # the current dose and its neighbouring 0.5 mg steps
    suggested: DoseOption  # the option whose median trough is nearest the target midpoint
    cl_individual: float
    cl_typical: float


def posterior_draws(fit: FitResult, draws: int = DRAWS) -> np.ndarray:
    """η samples (draws × n_eta) from N(η̂, C): scrambled Sobol points turned normal, with
    a fixed seed, so that quantiles settle with few draws and never change between looks."""
    n = len(fit.eta)
    sobol = qmc.Sobol(d=n, scramble=True, seed=SEED)
    uniform = sobol.random(1 << max(int(np.ceil(np.log2(draws))), 1))[:draws]
    normal = ndtri(np.clip(uniform, 1e-12, 1 - 1e-12))
    chol = np.linalg.cholesky(fit.cov + 1e-12 * np.eye(n))
    return fit.eta + normal @ chol.T


def steady_state_troughs(
    model: Model,
    covariates: dict[str, float],
    etas: np.ndarray,
    daily_dose_mg: float,
    doses_per_day: int,
) -> np.ndarray:
    """Trough at steady state (end of the dosing interval) for each η row."""
    interval = 24.0 / doses_per_day
    subject = subject_from_arrays(
        model,
        time=[0.0, interval],
        evid=[1, 0],
        amt=[daily_dose_mg / doses_per_day, 0.0],
        ii=[interval, 0.0],
        ss=[1, 0],
        dv=[np.nan, 1.0],
        covariates={name: [value, value] for name, value in covariates.items()},
    )
    return predict_batch(model, subject, np.atleast_2d(etas))[:, 0]


def _option(dose: float, troughs: np.ndarray, low: float, high: float) -> DoseOption:
    return DoseOption(
        daily_dose_mg=dose,
        trough=float(np.median(troughs)),
        p10=float(np.quantile(troughs, 0.1)),
        p90=float(np.quantile(troughs, 0.9)),
        p_in_range=float(np.mean((troughs >= low) & (troughs <= high))),
    )


def forecast(
    model: Model,
    fit: FitResult,
    covariates: dict[str, float],
    *,
    daily_dose_mg: float,
    doses_per_day: int,
    target: tuple[float, float],
    steps: int = 2,
) -> Forecast:
    """Steady-state trough on the current dose, and on neighbouring 0.5 mg/day steps.

    Linear kinetics make the trough proportional to the dose, so every candidate is the
    current simulation scaled; the suggested dose is rounded to 0.5 mg/day.
    """
    low, high = target
    draws = posterior_draws(fit)
    unit = steady_state_troughs(model, covariates, draws, 1.0, doses_per_day)  # per mg/day
    midpoint = (low + high) / 2
    median_unit = float(np.median(unit))
    ideal = midpoint / median_unit if median_unit > 0 else daily_dose_mg
    nearest = max(DOSE_STEP_MG, round(ideal / DOSE_STEP_MG) * DOSE_STEP_MG)
    doses = {daily_dose_mg, nearest}
    for k in range(1, steps + 1):
        for sign in (-1, 1):
            dose = round((daily_dose_mg + sign * k * DOSE_STEP_MG) / DOSE_STEP_MG) * DOSE_STEP_MG
            if dose > 0:
                doses.add(dose)
    options = [_option(d, unit * d, low, high) for d in sorted(doses)]
    current = next(o for o in options if o.daily_dose_mg == daily_dose_mg)
    suggested = min(options, key=lambda o: (abs(o.trough - midpoint), o.daily_dose_mg))

    def clearance(etas: np.ndarray) -> float:
        values = {name: np.asarray([c.default]) for name, c in model.covariates.items()}
        values.update({name: np.asarray([value]) for name, value in covariates.items()})
        return float(model.individual_parameters(values, etas, records=1)["CL"][0, 0])

    return Forecast(
        current=current,
        options=options,
        suggested=suggested,
        cl_individual=clearance(fit.eta[None, :]),
        cl_typical=clearance(np.zeros((1, len(fit.eta)))),
    )


@dataclass(frozen=True)
class TroughCurve:
    """Predicted troughs (just before each sampled dose) with the posterior's 80 % band."""

    time: np.ndarray  # hours, the data set's clock
    median: np.ndarray
    p10: np.ndarray
    p90: np.ndarray


def trough_curve(
    model: Model, subject, fit: FitResult, *, points: int = 80, draws: int = 64
) -> TroughCurve:
    """The individual predicted trough over the subject's history: the concentration just
    before scheduled doses (at most ``points`` of them, evenly spread), for posterior draws.

    Troughs rather than the full concentration curve: over months of twice-daily dosing
    the curve is a saw blade the eye cannot read; its lower edge is what is compared with
    the measured troughs.
    """
    doses = subject.doses
    times = []
    for record in doses:
        interval, extra = subject.ii[record], subject.addl[record]
        start = subject.time[record]
        count = extra + 1 if interval > 0 else 1
        times.append(start + np.arange(count) * (interval if interval > 0 else 0.0))
    if not times:
        return TroughCurve(*(np.array([]),) * 4)
    grid = np.unique(np.concatenate(times))[1:]  # the first dose has no trough before it
    if len(grid) > points:
        grid = grid[np.linspace(0, len(grid) - 1, points).round().astype(int)]
    grid = np.unique(grid) - 1e-4  # just before the dose (0.36 s)
    n_records = len(subject.time)
    combined = subject_from_arrays(
        model,
        subject_id=subject.id,
        time=np.concatenate([subject.time, grid]),
        evid=np.concatenate([subject.evid, np.zeros(len(grid), int)]),
        amt=np.concatenate([subject.amt, np.zeros(len(grid))]),
        dv=np.concatenate([np.full(n_records, np.nan), np.full(len(grid), np.nan)]),
        ii=np.concatenate([subject.ii, np.zeros(len(grid))]),
        addl=np.concatenate([subject.addl, np.zeros(len(grid), int)]),
        ss=np.concatenate([subject.ss, np.zeros(len(grid), int)]),
        cens=np.zeros(n_records + len(grid), int),
        covariates=_carried(subject, grid),
    )
    records = np.flatnonzero(np.isin(combined.time, grid) & (combined.evid == 0))
    values = Simulation(model, combined, posterior_draws(fit, draws)).concentrations(records)
    return TroughCurve(
        time=combined.time[records],
        median=np.median(values, axis=0),
        p10=np.quantile(values, 0.1, axis=0),
        p90=np.quantile(values, 0.9, axis=0),
    )


def _carried(subject, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Covariates at the grid times: the value of the latest record at or before each."""
    at = np.maximum(np.searchsorted(subject.time, grid, side="right") - 1, 0)
    return {
        name: np.concatenate([column, column[at]]) for name, column in subject.covariates.items()
    }
