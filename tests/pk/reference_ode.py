"""A second, independent implementation of the MAP estimation, used only in tests.

It shares no code with `monitoring.pk`: it reads the model file with tomllib and evaluates
the parameter expressions with its own small AST walker, reads the data set with the csv
module, predicts by numerical integration of the compartment ODEs (scipy's solve_ivp,
dose to dose, tight tolerances) and minimises the MAP objective with a derivative-free
optimiser (Nelder-Mead, several starts). It is slow on purpose: it is the yardstick the
closed-form production engine is measured against, not something to run in a page.

Steady state (SS=1) is reached by repeating the dose every II until the state stops
changing; one II interval is integrated numerically once (as the propagator of the linear
ODE, integrated column by column) and then applied repeatedly.
"""

from __future__ import annotations

import ast
import csv
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import minimize
from scipy.stats import norm

RTOL = 1e-11
ATOL = 1e-16  # the flow matrices start from the identity

_FUNCTIONS = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "min": min, "max": max}
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


def _evaluate(node: ast.AST, env: dict[str, float]) -> float:
    """Evaluate the whitelisted subset of Python expressions the model files use."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(env[node.id])
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return float(_FUNCTIONS[node.func.id](*(_evaluate(a, env) for a in node.args)))
    raise ValueError(f"reference: unsupported expression element {ast.dump(node)}")


@dataclass
class RefModel:
    disposition: str
    absorption: str
    n_transit: int
    expressions: dict[str, ast.Expression]
    covariate_defaults: dict[str, float]
    eta_names: list[str]
    omega: np.ndarray
    proportional_sd: float
    additive_sd: float
    scale: float

    @classmethod
    def from_toml(cls, text: str) -> RefModel:
        data = tomllib.loads(text)
        structure = data["structure"]
        omega_section = data["omega"]
        etas = list(omega_section["etas"])
        if "block" in omega_section:
            n = len(etas)
            omega = np.zeros((n, n))
            for i, row in enumerate(omega_section["block"]):
                for j, value in enumerate(row):
                    omega[i, j] = omega[j, i] = float(value)
        else:
            omega = np.diag([float(v) for v in omega_section["variances"]])
        error = data.get("error", {})
        return cls(
            disposition=structure["disposition"],
            absorption=structure["absorption"],
            n_transit=int(structure.get("transit_compartments", 0)),
            expressions={
                name: ast.parse(text, mode="eval") for name, text in data["parameters"].items()
            },
            covariate_defaults={
                name: float(spec.get("default", 0.0))
                for name, spec in data.get("covariates", {}).items()
            },
            eta_names=etas,
            omega=omega,
            proportional_sd=float(error.get("proportional_sd", 0.0)),
            additive_sd=float(error.get("additive_sd", 0.0)),
            scale=float(data["model"].get("scale", 1.0)),
        )

    @classmethod
    def load(cls, path: str | Path) -> RefModel:
        return cls.from_toml(Path(path).read_text(encoding="utf-8"))

    # --- individual parameters -------------------------------------------------------
    def parameters(self, covariates: dict[str, float], eta: np.ndarray) -> dict[str, float]:
        env = dict(self.covariate_defaults)
        env.update(covariates)
        env.update(zip(self.eta_names, (float(e) for e in eta), strict=True))
        return {name: _evaluate(expr, env) for name, expr in self.expressions.items()}

    # --- structure ---------------------------------------------------------------------
    @property
    def n_absorption(self) -> int:
        return self.n_transit if self.absorption == "transit" else 1

    @property
    def central(self) -> int:
        return self.n_absorption

    @property
    def n_states(self) -> int:
        return self.n_absorption + (2 if self.disposition == "two_compartment" else 1)

    def rate_matrix(self, p: dict[str, float]) -> np.ndarray:
        n = self.n_states
        a = np.zeros((n, n))
        c = self.central
        k_in = p["KTR"] if self.absorption == "transit" else p["KA"]
        for i in range(self.n_absorption):
            a[i, i] -= k_in
            a[i + 1, i] += k_in  # the last absorption compartment feeds the central one
        if self.disposition == "two_compartment":
            v1 = p["V1"]
            a[c, c] -= (p["CL"] + p["Q"]) / v1
            a[c, c + 1] += p["Q"] / p["V2"]
            a[c + 1, c] += p["Q"] / v1
            a[c + 1, c + 1] -= p["Q"] / p["V2"]
        else:
            a[c, c] -= p["CL"] / p["V"]
        return a

    def central_volume(self, p: dict[str, float]) -> float:
        return p["V1"] if self.disposition == "two_compartment" else p["V"]


@dataclass
class RefRecord:
    time: float
    evid: int
    amt: float
    dv: float | None
    ii: float
    addl: int
    ss: int
    cens: int
    covariates: dict[str, float] = field(default_factory=dict)


@dataclass
class RefSubject:
    id: str
    records: list[RefRecord]

    @property
    def observations(self) -> list[RefRecord]:
        return [r for r in self.records if r.evid == 0]

    @property
    def fitted(self) -> list[RefRecord]:
        return [r for r in self.records if r.evid == 0 and r.dv is not None]


def read_subjects(path: str | Path, model: RefModel) -> list[RefSubject]:
    """Read an NM-TRAN style CSV (only what the tests' files contain, no validation)."""
    subjects: dict[str, RefSubject] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = {name.strip().upper(): name for name in reader.fieldnames or []}

        def get(row, name, default=""):
            key = header.get(name)
            return row[key].strip() if key is not None and row[key] is not None else default

        for row in reader:
            evid = int(float(get(row, "EVID", "0") or 0))
            mdv = int(float(get(row, "MDV", "0") or 0))
            dv_text = get(row, "DV")
            dv = None
            if evid == 0 and mdv == 0 and dv_text not in ("", "."):
                dv = float(dv_text)
            covariates = {}
            for name in model.covariate_defaults:
                text = get(row, name.upper())
                if text not in ("", "."):
                    covariates[name] = float(text)
            record = RefRecord(
                time=float(get(row, "TIME")),
                evid=evid,
                amt=float(get(row, "AMT", "0") or 0) if evid == 1 else 0.0,
                dv=dv,
                ii=float(get(row, "II", "0") or 0),
                addl=int(float(get(row, "ADDL", "0") or 0)),
                ss=int(float(get(row, "SS", "0") or 0)),
                cens=int(float(get(row, "CENS", "0") or 0)),
                covariates=covariates,
            )
            subject_id = get(row, "ID")
            subjects.setdefault(subject_id, RefSubject(subject_id, [])).records.append(record)
    return list(subjects.values())


def _covariates_at(subject: RefSubject, time: float) -> dict[str, float]:
    """Last observation carried forward: the latest record at or before `time`."""
    current: dict[str, float] = {}
    for record in subject.records:
        if record.time > time:
            break
        current.update(record.covariates)
    return current


def _flows(a: np.ndarray, spans: list[float]) -> dict[float, np.ndarray]:
    """The matrices that move any state over each of `spans` hours under y' = A y: the
    ODE integrated numerically for all columns at once (Y' = A Y, Y(0) = I), in one pass
    from 0 to the longest span, read off at every span."""
    n = a.shape[0]
    times = sorted({s for s in spans if s > 0})
    found = {0.0: np.eye(n)}
    if not times:
        return found
    solution = solve_ivp(
        lambda _t, y: (a @ y.reshape(n, n)).ravel(),
        (0.0, times[-1]),
        np.eye(n).ravel(),
        method="DOP853",
        rtol=RTOL,
        atol=ATOL,
        t_eval=times,
    )
    if not solution.success:
        raise RuntimeError(f"reference ODE failed: {solution.message}")
    for i, t in enumerate(times):
        found[t] = solution.y[:, i].reshape(n, n)
    return found


def _steady_state(model: RefModel, p: dict[str, float], amount: float, ii: float, flows):
    """State just before a dose that has been given every `ii` forever, found by giving
    the dose again and again (one interval integrated numerically, then repeated)."""
    lag = p.get("ALAG", 0.0)
    if not 0 <= lag < ii:
        raise ValueError("reference: steady state needs 0 <= ALAG < II")
    dose = np.zeros(model.n_states)
    dose[0] = amount * p.get("F", 1.0)
    arriving = flows[ii - lag] @ dose
    state = np.zeros(model.n_states)
    for _ in range(100000):
        new = flows[ii] @ state + arriving
        if np.max(np.abs(new - state)) <= 1e-15 * max(1.0, np.max(np.abs(new))):
            return new
        state = new
    raise RuntimeError("reference: steady state did not converge")


def predict(model: RefModel, subject: RefSubject, eta) -> np.ndarray:
    """Concentrations at every observation record (EVID 0), in file order."""
    eta = np.asarray(eta, dtype=float)
    records = subject.records

    def params_at(time: float) -> dict[str, float]:
        return model.parameters(_covariates_at(subject, time), eta)

    # Events: (time, order, index, kind, payload). At equal times: steady-state resets,
    # then doses arriving, then observations (doses first, as the data set format says).
    events: list[tuple[float, int, int, str, object]] = []
    for index, record in enumerate(records):
        if record.evid == 1:
            for k in range(record.addl + 1):
                dose_time = record.time + k * record.ii
                p = params_at(dose_time)
                if record.ss == 1 and k == 0:
                    events.append((dose_time, 0, index, "reset", (record.amt, record.ii, p)))
                arrival = dose_time + p.get("ALAG", 0.0)
                events.append((arrival, 1, index, "dose", record.amt * p.get("F", 1.0)))
        else:
            events.append((record.time, 2, index, "obs", index))
    # Covariate changes are breakpoints too: parameters are constant between events.
    for record in records:
        if record.covariates:
            events.append((record.time, -1, -1, "covariates", None))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    # Nothing after the last observation can change a prediction.
    last_obs = max((e[0] for e in events if e[3] == "obs"), default=-math.inf)
    events = [e for e in events if e[0] <= last_obs]

    # First pass: which rate matrices act over which spans (and the steady-state
    # intervals), so each rate matrix is integrated once.
    steps: list[tuple[str, object]] = []
    needed: dict[bytes, tuple[np.ndarray, set[float]]] = {}

    def need(a: np.ndarray, span: float) -> bytes:
        key = a.tobytes()
        needed.setdefault(key, (a, set()))[1].add(span)
        return key

    t_now = events[0][0] if events else 0.0
    for time, _order, _index, kind, payload in events:
        if time > t_now:
            steps.append(
                ("move", (need(model.rate_matrix(params_at(t_now)), time - t_now), time - t_now))
            )
            t_now = time
        if kind == "reset":
            amount, ii, p = payload
            key = need(model.rate_matrix(p), ii)
            need(model.rate_matrix(p), ii - p.get("ALAG", 0.0))
            steps.append(("reset", (key, amount, ii, p)))
        elif kind == "dose":
            steps.append(("dose", payload))
        elif kind == "obs":
            steps.append(("obs", (payload, model.central_volume(params_at(time)))))
    flows = {key: _flows(a, list(spans)) for key, (a, spans) in needed.items()}

    state = np.zeros(model.n_states)
    concentrations: dict[int, float] = {}
    for kind, payload in steps:
        if kind == "move":
            key, span = payload
            state = flows[key][span] @ state
        elif kind == "reset":
            key, amount, ii, p = payload
            state = _steady_state(model, p, amount, ii, flows[key])
        elif kind == "dose":
            state[0] += payload
        else:
            index, volume = payload
            concentrations[index] = max(state[model.central], 0.0) / volume * model.scale
    return np.array([concentrations[i] for i, r in enumerate(records) if r.evid == 0])


def objective(model: RefModel, subject: RefSubject, eta) -> float:
    """The MAP objective: sum of ln var + residual² / var (or -2 ln Phi for censored
    results), plus eta' Omega^-1 eta."""
    eta = np.asarray(eta, dtype=float)
    prior = float(eta @ np.linalg.solve(model.omega, eta))
    fitted = [r for r in subject.records if r.evid == 0]
    if not any(r.dv is not None for r in fitted):
        return prior
    f_all = predict(model, subject, eta)
    total = prior
    for record, f in zip(fitted, f_all, strict=True):
        if record.dv is None:
            continue
        var = model.additive_sd**2 + (model.proportional_sd * f) ** 2
        if var == 0:
            var = model.additive_sd**2 + model.proportional_sd**2
        if record.cens == 1:
            total += -2.0 * float(norm.logcdf((record.dv - f) / math.sqrt(var)))
        else:
            total += math.log(var) + (record.dv - f) ** 2 / var
    return total


@dataclass
class RefFit:
    eta: np.ndarray
    ofv: float
    evaluations: int


def fit(model: RefModel, subject: RefSubject, starts: int = 3) -> RefFit:
    """Nelder-Mead from eta = 0, then restarts from the best point found (a standard
    guard against the simplex collapsing early), and from points one SD away."""
    n = len(model.eta_names)
    sd = np.sqrt(np.diag(model.omega))

    def f(x):
        try:
            value = objective(model, subject, x)
        except (OverflowError, ValueError, RuntimeError):
            return 1e30
        return value if math.isfinite(value) else 1e30

    options = {"xatol": 1e-7, "fatol": 1e-10, "maxiter": 20000 * n, "maxfev": 20000 * n}
    candidates = [np.zeros(n)] + [
        sign * sd * np.eye(n)[i % n]
        for i, sign in zip(range(starts - 1), (1, -1) * n, strict=False)
    ]
    best = None
    evaluations = 0
    for start in candidates:
        result = minimize(f, start, method="Nelder-Mead", options=options)
        evaluations += result.nfev
        # Restart at the optimum with a fresh simplex until the point stops moving.
        for _ in range(5):
            again = minimize(f, result.x, method="Nelder-Mead", options=options)
            evaluations += again.nfev
            moved = np.max(np.abs(again.x - result.x))
            result = again if again.fun <= result.fun else result
            if moved < 1e-7:
                break
        if best is None or result.fun < best.fun:
            best = result
    return RefFit(eta=np.asarray(best.x), ofv=float(best.fun), evaluations=evaluations)


def posterior_covariance(model: RefModel, subject: RefSubject, eta, step: float = 1e-4):
    """C = (Omega^-1 + sum_j [g_j g_j' / var_j + 1/2 h_j h_j'])^-1 at eta, with g = df/deta
    and h = d ln var / deta by central differences of the ODE predictions."""
    eta = np.asarray(eta, dtype=float)
    fitted = [
        i for i, r in enumerate(r for r in subject.records if r.evid == 0) if r.dv is not None
    ]

    def variance(f):
        var = model.additive_sd**2 + (model.proportional_sd * f) ** 2
        return np.where(var > 0, var, model.additive_sd**2 + model.proportional_sd**2)

    f0 = predict(model, subject, eta)[fitted]
    g, h = [], []
    for i in range(len(eta)):
        up, down = eta.copy(), eta.copy()
        up[i] += step
        down[i] -= step
        f_up = predict(model, subject, up)[fitted]
        f_down = predict(model, subject, down)[fitted]
        g.append((f_up - f_down) / (2 * step))
        h.append((np.log(variance(f_up)) - np.log(variance(f_down))) / (2 * step))
    g, h = np.array(g), np.array(h)  # (n_eta, n_obs)
    information = np.linalg.inv(model.omega) + (g / variance(f0)) @ g.T + 0.5 * h @ h.T
    return np.linalg.inv(information)
