"""MAP-Bayesian estimation of one subject's ETAs, and their posterior uncertainty.

The objective is the one NONMEM minimises for a single subject at fixed population values
(Kang 2012; what mapbayr minimises): ``Σ_j [ln var_j + (y_j − f_j)²/var_j] + ηᵀΩ⁻¹η``, with
Beal's M3 likelihood for results below the limit of quantification. Gradients come from
finite differences computed as one batch, so an iteration costs one simulation call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_ndtr, ndtr

from .dataset import Subject
from .modelfile import Model
from .predict import Simulation

BOUND_SD = 5.0  # each η is searched within ±5 SD of its population distribution
STEP = 1e-5  # central-difference step on η (η is on the log scale of the parameters)
FORWARD_STEP = 1e-7  # scoring's forward differences: half the batch of central ones
GRADIENT_TOLERANCE = 1e-3  # projected gradient (OFV units) accepted as a minimum
IMPLAUSIBLE_IWRES = 10.0  # a residual this large where nothing is predicted: other starts
NOTHING_PREDICTED = 1e-6  # of the largest prediction: "nothing" (before absorption began)
# Scoring steps until the predicted decrease is below what the OFV resolves (relative to the
# OFV), or this many; L-BFGS-B then confirms (or finishes a slowly converging fit).
SCORING_ITERATIONS = 25
SCORING_RESOLUTION = 1e-11
FISHER_STEPS = 5  # fresh Fisher information for these steps, then BFGS corrections of it


@dataclass
class FitResult:
    subject_id: str
    eta: np.ndarray
    cov: np.ndarray
    ofv: float
    converged: bool
    message: str
    time: np.ndarray  # observation times
    dv: np.ndarray
    censored: np.ndarray  # bool per observation
    pred: np.ndarray  # η = 0
    ipred: np.ndarray  # η = η̂
    iwres: np.ndarray
    starts: int = 1
    defaulted: list[str] = field(default_factory=list)

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def residual_variance(model: Model, prediction: np.ndarray) -> np.ndarray:
    """additive² + (proportional × f)²; where that is 0, f = 1 is used (spec §1)."""
    variance = model.additive_sd**2 + (model.proportional_sd * prediction) ** 2
    return np.where(variance > 0, variance, model.additive_sd**2 + model.proportional_sd**2)


class Objective:
    """The MAP objective of one subject, evaluated for batches of ETA vectors."""

    def __init__(self, model: Model, subject: Subject):
        self.model = model
        self.subject = subject
        observed = subject.observed
        self.dv = subject.dv[observed]
        self.censored = subject.cens[observed] == 1
        self.omega_inverse = model.omega_inverse
        self.evaluations = 0

    def predictions(self, etas: np.ndarray) -> np.ndarray:
        self.evaluations += len(etas)
        return Simulation(self.model, self.subject, etas).concentrations()

    def values(self, etas: np.ndarray, predictions: np.ndarray | None = None) -> np.ndarray:
        etas = np.atleast_2d(etas)
        f = self.predictions(etas) if predictions is None else predictions
        variance = residual_variance(self.model, f)
        residual = (self.dv - f) ** 2 / variance
        terms = np.log(variance) + residual
        if self.censored.any():
            z = (self.dv - f) / np.sqrt(variance)
            terms = np.where(self.censored, -2.0 * log_ndtr(z), terms)
        prior = np.einsum("bi,ij,bj->b", etas, self.omega_inverse, etas)
        return terms.sum(axis=1) + prior

    def central_gradient(self, eta: np.ndarray) -> tuple[float, np.ndarray]:
        """OFV and its gradient by central differences: to judge a minimum. A forward
        difference's error grows with the curvature (h·H/2), which hundreds of troughs make
        large enough to look like a slope."""
        n = len(eta)
        steps = np.eye(n) * STEP
        values = self.values(np.vstack([eta, eta + steps, eta - steps]))
        if not np.all(np.isfinite(values)):
            return float("inf"), np.zeros(n)
        return float(values[0]), (values[1 : n + 1] - values[n + 1 :]) / (2 * STEP)


def objective(model: Model, subject: Subject, eta) -> float:
    """The MAP objective (OFV) of a subject at one ETA vector."""
    return float(Objective(model, subject).values(np.asarray(eta, float)[None, :])[0])


def _starts(model: Model) -> list[np.ndarray]:
    """η = 0 first, then ±1 and ±2 SD along each ETA: a fixed, deterministic list (the
    2 SD ones reach basins a flat region hides, e.g. a lag time past an early sample)."""
    sd = np.sqrt(np.diag(model.omega))
    starts = [np.zeros(len(sd))]
    for distance in (1.0, 2.0):
        for i in range(len(sd)):
            for sign in (1.0, -1.0):
                start = np.zeros(len(sd))
                start[i] = sign * distance * sd[i]
                starts.append(start)
    return starts


@dataclass
class _Minimum:
    eta: np.ndarray
    value: float
    converged: bool
    on_bound: bool
    message: str


def _minimise(target: Objective, start: np.ndarray, bounds: list[tuple[float, float]]):
    """Fisher scoring, then L-BFGS-B; a Nelder–Mead polish where the gradient stays large.

    The polish is for kinks: a lag time that moves a dose across a sampling time makes the
    objective's derivative jump, where a quasi-Newton method stalls beside the minimum.
    """
    lower, upper = np.array(bounds).T
    result = minimize(
        target.central_gradient,
        scoring(target, start, lower, upper),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        # gtol in OFV units: scoring has usually brought the gradient below it already, so
        # L-BFGS-B confirms the minimum in one evaluation; from a poor start it does the work.
        options={"maxiter": 1000, "ftol": 1e-13, "gtol": 3e-4, "maxls": 20},
    )
    eta, message = result.x, str(result.message)
    value, gradient = target.central_gradient(eta)
    if not _stationary(eta, gradient, lower, upper):
        polished = minimize(
            lambda x: float(target.values(x[None, :])[0]),
            eta,
            method="Nelder-Mead",
            bounds=bounds,
            options={
                "xatol": 1e-8,
                "fatol": 1e-12,
                "maxfev": 4000,
                "initial_simplex": np.vstack([eta, eta + np.eye(len(eta)) * 1e-3]),
            },
        )
        if polished.fun <= value:
            eta, value = polished.x, float(polished.fun)
            gradient = target.central_gradient(eta)[1]
            message = str(polished.message)
            converged = bool(polished.success) or _stationary(eta, gradient, lower, upper)
        else:
            converged = False
    else:
        converged = True
    on_bound = bool(np.any((eta <= lower + 1e-6 * abs(lower)) | (eta >= upper - 1e-6 * upper)))
    return _Minimum(eta, value, converged and np.isfinite(value), on_bound, message)


def _implausible(target: Objective, eta: np.ndarray) -> bool:
    """A minimum that predicts nothing where something was measured is suspect: a basin
    where a lag time puts the sample before absorption began, so the objective is flat in
    the lag and every nearby start stays there. The other starts are then tried as well.
    (Large residuals alone are not enough: a peak drawn after the morning dose has them,
    and the minimum is right.)"""
    f = target.predictions(eta[None, :])[0]
    measured = (~target.censored) & (target.dv > 0)
    nothing = f <= NOTHING_PREDICTED * max(float(np.max(f, initial=0.0)), 1e-300)
    iwres = (target.dv - f) / np.sqrt(residual_variance(target.model, f))
    return bool(np.any(measured & nothing & (np.abs(iwres) > IMPLAUSIBLE_IWRES)))


def _stationary(eta, gradient, lower, upper) -> bool:
    """The projected gradient is small: zero where an η sits on a bound and is pushed out."""
    at_lower = (eta <= lower + 1e-9) & (gradient > 0)
    at_upper = (eta >= upper - 1e-9) & (gradient < 0)
    projected = np.where(at_lower | at_upper, 0.0, gradient)
    return bool(np.all(np.isfinite(gradient)) and np.max(np.abs(projected)) < GRADIENT_TOLERANCE)


def fit(
    model: Model, subject: Subject, start: np.ndarray | None = None, *, posterior: bool = True
) -> FitResult:
    """MAP estimate of η for one subject, with the posterior covariance (FOCE-I's ETC).

    ``start``: where to begin instead of η = 0 (e.g. the estimate from one trough fewer);
    η = 0 and the other starts follow if it does not converge. ``posterior=False`` skips
    the covariance (NaN) where only the estimate is wanted (the forecast check)."""
    target = Objective(model, subject)
    n = len(model.eta_names)
    sd = np.sqrt(np.diag(model.omega))
    bounds = list(zip(-BOUND_SD * sd, BOUND_SD * sd, strict=True))

    if len(target.dv) == 0:
        eta, converged, message, ofv, tried = np.zeros(n), True, "no observations", 0.0, 0
    else:
        best: _Minimum | None = None
        tried = 0
        starts = _starts(model)
        if start is not None:
            starts.insert(0, np.clip(np.asarray(start, float), -BOUND_SD * sd, BOUND_SD * sd))
        for begin in starts:
            tried += 1
            found = _minimise(target, begin, bounds)
            if best is None or found.value < best.value:
                best = found
            if best.converged and not best.on_bound and not _implausible(target, best.eta):
                break
        eta, ofv, converged = best.eta, best.value, best.converged
        if converged and best.on_bound:
            message = (
                "an ETA sits on its ±5 SD bound: the data pull the estimate far from the population"
            )
        elif converged:
            message = "converged"
        else:
            message = f"did not converge after {tried} starts: {best.message}"

    if not len(target.dv):
        cov = model.omega.copy()
    elif posterior:
        cov = posterior_covariance(target, eta)
    else:
        cov = np.full((n, n), np.nan)
    ipred = target.predictions(eta[None, :])[0]
    pred = target.predictions(np.zeros((1, n)))[0]
    iwres = (target.dv - ipred) / np.sqrt(residual_variance(model, ipred))
    observed = subject.observed
    return FitResult(
        subject_id=subject.id,
        eta=eta,
        cov=cov,
        ofv=float(ofv) if len(target.dv) else float(target.values(eta[None, :])[0]),
        converged=bool(converged),
        message=message,
        time=subject.time[observed],
        dv=target.dv,
        censored=target.censored,
        pred=pred,
        ipred=ipred,
        iwres=iwres,
        starts=tried,
        defaulted=list(subject.defaulted),
    )


def prediction_gradients(target: Objective, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(η̂) and ∂f/∂η (n_obs × n_eta) by central differences, in one batch."""
    n = len(eta)
    steps = np.eye(n) * STEP
    f = target.predictions(np.vstack([eta, eta + steps, eta - steps]))
    return f[0], ((f[1 : n + 1] - f[n + 1 :]) / (2 * STEP)).T


def information(target: Objective, f: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """Ω⁻¹ + Σ_j [g gᵀ/var + ½ h hᵀ]: the expected information about η (half the Hessian
    of the OFV, as FOCE-I approximates it).

    A censored result contributes the curvature of −ln Φ(z) along ∇z instead (the
    Gauss-Newton part of the M3 term's Hessian).
    """
    model = target.model
    variance = residual_variance(model, f)
    uses_f = model.additive_sd**2 + (model.proportional_sd * f) ** 2 > 0
    h = np.where(uses_f, 2 * model.proportional_sd**2 * f / variance, 0.0)[:, None] * jacobian
    weight = np.where(target.censored, 0.0, 1.0 / variance)
    half = np.where(target.censored, 0.0, 0.5)
    result = target.omega_inverse + (jacobian * weight[:, None]).T @ jacobian
    result += (h * half[:, None]).T @ h
    if target.censored.any():
        sd = np.sqrt(variance)
        z = (target.dv - f) / sd
        ratio = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) / np.maximum(ndtr(z), 1e-300)
        grad_z = -jacobian / sd[:, None] - z[:, None] * h / 2
        curvature = np.where(target.censored, ratio * (z + ratio), 0.0)
        result += (grad_z * curvature[:, None]).T @ grad_z
    return result


def posterior_covariance(target: Objective, eta: np.ndarray) -> np.ndarray:
    """C = (Ω⁻¹ + Σ_j [g gᵀ/var + ½ h hᵀ])⁻¹ at η̂, as NONMEM's FOCE-I reports (ETC)."""
    f, jacobian = prediction_gradients(target, eta)
    return np.linalg.inv(information(target, f, jacobian))


def scoring(
    target: Objective, start: np.ndarray, lower, upper, iterations: int | None = None
) -> np.ndarray:
    """Fisher-scoring steps from ``start``: Newton steps whose curvature is the expected
    information, fresh at every point for the first FISHER_STEPS (the big steps, where a
    secant update would be misled), then corrected by BFGS updates (where the Fisher matrix
    alone converges only linearly: large residuals, a misspecified model). L-BFGS-B, which
    has the last word, then confirms the minimum.

    Each batch holds a candidate and its forward-difference neighbours: an accepted step
    costs one simulation call, its gradient and information included."""
    n = len(start)
    eta = np.asarray(start, float).copy()

    def evaluate(point):
        batch = np.vstack([point, point + np.eye(n) * FORWARD_STEP])
        predictions = target.predictions(batch)
        values = target.values(batch, predictions)
        return values, predictions

    values, predictions = evaluate(eta)
    gradient = (values[1:] - values[0]) / FORWARD_STEP
    hessian = None
    for iteration in range(SCORING_ITERATIONS if iterations is None else iterations):
        if not np.all(np.isfinite(values)):
            break
        if iteration < FISHER_STEPS or hessian is None:
            jacobian = ((predictions[1:] - predictions[0]) / FORWARD_STEP).T
            hessian = 2 * information(target, predictions[0], jacobian)
        step = -np.linalg.solve(hessian, gradient)
        if abs(gradient @ step) < SCORING_RESOLUTION * max(1.0, abs(values[0])):
            break  # the predicted decrease is below what the OFV can resolve
        length = 1.0
        while length > 0.03:
            candidate = np.clip(eta + length * step, lower, upper)
            new_values, new_predictions = evaluate(candidate)
            if np.isfinite(new_values[0]) and new_values[0] < values[0]:
                break
            length /= 2
        else:
            break
        new_gradient = (new_values[1:] - new_values[0]) / FORWARD_STEP
        moved, change = candidate - eta, new_gradient - gradient
        curvature = moved @ change
        if iteration + 1 >= FISHER_STEPS and curvature > 1e-12:
            # Past the Fisher steps: BFGS corrections keep the curvature true along the
            # steps taken, which restores fast convergence where the Fisher matrix alone
            # converges linearly (large residuals, a misspecified model).
            pushed = hessian @ moved
            hessian = (
                hessian
                - np.outer(pushed, pushed) / (moved @ pushed)
                + np.outer(change, change) / curvature
            )
        eta, values, predictions, gradient = candidate, new_values, new_predictions, new_gradient
    return eta
