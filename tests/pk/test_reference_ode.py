"""The test-only ODE reference implementation checked on its own, before it is used to
judge the production engine: closed-form solutions of textbook cases, and NONMEM's own
estimates for the mapbayr validation subjects."""

import csv
import math

import numpy as np
import pytest

from tests.pk import reference_ode as ref
from tests.pk.modeltext import DATA_DIR, dataset_csv, model_toml

CL, V, KA = 4.0, 70.0, 1.2
K = CL / V


def one_compartment(**extra) -> ref.RefModel:
    parameters = {"CL": f"{CL} * exp(ETA_CL)", "V": f"{V}", "KA": f"{KA}", **extra}
    return ref.RefModel.from_toml(
        model_toml(parameters=parameters, etas=["ETA_CL"], variances=[0.1])
    )


def subject(tmp_path, rows, model, columns=None):
    path = tmp_path / "data.csv"
    path.write_text(dataset_csv(rows, columns), encoding="utf-8")
    return ref.read_subjects(path, model)[0]


def bateman(dose, t, lag=0.0):
    t = np.asarray(t, dtype=float) - lag
    return np.where(t > 0, dose * KA / (V * (KA - K)) * (np.exp(-K * t) - np.exp(-KA * t)), 0.0)


TIMES = [0.5, 1.0, 2.0, 5.0, 11.9, 24.0]


def observations(times, start=0.0):
    return [{"ID": 1, "TIME": start + t, "EVID": 0, "DV": 1.0} for t in times]


def test_single_dose_matches_the_bateman_function(tmp_path):
    model = one_compartment()
    s = subject(
        tmp_path, [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100}, *observations(TIMES)], model
    )
    np.testing.assert_allclose(ref.predict(model, s, [0.0]), bateman(100, TIMES), rtol=1e-8)


def test_lag_time_shifts_the_curve(tmp_path):
    model = one_compartment(ALAG="0.75")
    s = subject(
        tmp_path, [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100}, *observations(TIMES)], model
    )
    np.testing.assert_allclose(
        ref.predict(model, s, [0.0]), bateman(100, TIMES, lag=0.75), rtol=1e-8, atol=1e-12
    )


def test_bioavailability_scales_the_dose(tmp_path):
    model = one_compartment(F="0.4")
    s = subject(
        tmp_path, [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100}, *observations(TIMES)], model
    )
    np.testing.assert_allclose(ref.predict(model, s, [0.0]), bateman(40, TIMES), rtol=1e-8)


def test_addl_doses_superpose(tmp_path):
    model = one_compartment()
    rows = [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100, "II": 12, "ADDL": 4}]
    times = [3.0, 13.0, 30.5, 47.9, 50.0]
    s = subject(tmp_path, rows + observations(times), model)
    expected = sum(bateman(100, np.array(times) - 12 * k) for k in range(5))
    np.testing.assert_allclose(ref.predict(model, s, [0.0]), expected, rtol=1e-8)


def test_steady_state_matches_the_closed_form(tmp_path):
    model = one_compartment()
    tau = 12.0
    rows = [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100, "II": tau, "SS": 1}]
    times = [0.0, 1.0, 4.0, 11.99]
    s = subject(tmp_path, rows + observations(times), model)
    t = np.array(times)
    expected = (100 * KA / (V * (KA - K))) * (
        np.exp(-K * t) / (1 - np.exp(-K * tau)) - np.exp(-KA * t) / (1 - np.exp(-KA * tau))
    )
    np.testing.assert_allclose(ref.predict(model, s, [0.0]), expected, rtol=1e-8)


def test_covariate_change_applies_from_its_record(tmp_path):
    """CL doubles at t = 6 h (last observation carried forward): solved by hand."""
    model = ref.RefModel.from_toml(
        model_toml(
            parameters={"CL": f"{CL} * WT / 70 * exp(ETA_CL)", "V": f"{V}", "KA": f"{KA}"},
            etas=["ETA_CL"],
            variances=[0.1],
            covariates={"WT": 70},
        )
    )
    columns = ["ID", "TIME", "EVID", "AMT", "DV", "WT"]
    rows = [
        {"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100, "WT": 70},
        {"ID": 1, "TIME": 5, "EVID": 0, "DV": 1.0, "WT": 70},
        {"ID": 1, "TIME": 6, "EVID": 0, "DV": 1.0, "WT": 140},
        {"ID": 1, "TIME": 10, "EVID": 0, "DV": 1.0, "WT": 140},
    ]
    s = subject(tmp_path, rows, model, columns)
    depot6 = 100 * math.exp(-KA * 6)
    central6 = bateman(100, [6.0])[0] * V
    k2, tau = 2 * K, 4.0
    central10 = central6 * math.exp(-k2 * tau) + KA * depot6 / (KA - k2) * (
        math.exp(-k2 * tau) - math.exp(-KA * tau)
    )
    expected = [bateman(100, [5.0])[0], central6 / V, central10 / V]
    np.testing.assert_allclose(ref.predict(model, s, [0.0]), expected, rtol=1e-8)


def test_two_compartments_match_the_closed_form(tmp_path):
    v1, v2, q = 30.0, 80.0, 6.0
    model = ref.RefModel.from_toml(
        model_toml(
            disposition="two_compartment",
            parameters={
                "CL": f"{CL} * exp(ETA_CL)",
                "V1": f"{v1}",
                "Q": f"{q}",
                "V2": f"{v2}",
                "KA": f"{KA}",
            },
            etas=["ETA_CL"],
            variances=[0.1],
        )
    )
    times = np.array([0.5, 2.0, 6.0, 24.0, 72.0])
    s = subject(
        tmp_path, [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100}, *observations(times)], model
    )
    k10, k12, k21 = CL / v1, q / v1, q / v2
    total = k10 + k12 + k21
    alpha = (total + math.sqrt(total**2 - 4 * k10 * k21)) / 2
    beta = (total - math.sqrt(total**2 - 4 * k10 * k21)) / 2
    expected = (KA * 100 / v1) * (
        (k21 - alpha) * np.exp(-alpha * times) / ((KA - alpha) * (beta - alpha))
        + (k21 - beta) * np.exp(-beta * times) / ((KA - beta) * (alpha - beta))
        + (k21 - KA) * np.exp(-KA * times) / ((alpha - KA) * (beta - KA))
    )
    np.testing.assert_allclose(ref.predict(model, s, [0.0]), expected, rtol=1e-8)


def test_one_transit_compartment_is_first_order_absorption(tmp_path):
    transit = ref.RefModel.from_toml(
        model_toml(
            absorption="transit",
            transit=1,
            parameters={"CL": f"{CL} * exp(ETA_CL)", "V": f"{V}", "KTR": f"{KA}"},
            etas=["ETA_CL"],
            variances=[0.1],
        )
    )
    s = subject(
        tmp_path, [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100}, *observations(TIMES)], transit
    )
    np.testing.assert_allclose(ref.predict(transit, s, [0.0]), bateman(100, TIMES), rtol=1e-8)


def test_transit_chain_delivers_an_erlang_input(tmp_path):
    """With N transit compartments the input rate into the central compartment is
    D KTR (KTR t)^(N-1) e^(-KTR t) / (N-1)!; with a tiny clearance the central amount is
    its integral, the regularised incomplete gamma function."""
    n, ktr = 3, 2.0
    model = ref.RefModel.from_toml(
        model_toml(
            absorption="transit",
            transit=n,
            parameters={"CL": "1e-9 * exp(ETA_CL)", "V": "1", "KTR": f"{ktr}"},
            etas=["ETA_CL"],
            variances=[0.1],
        )
    )
    s = subject(
        tmp_path, [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100}, *observations(TIMES)], model
    )
    x = ktr * np.array(TIMES)
    absorbed = 1 - np.exp(-x) * (1 + x + x**2 / 2)
    np.testing.assert_allclose(ref.predict(model, s, [0.0]), 100 * absorbed, rtol=1e-7)


def test_objective_terms(tmp_path):
    model = ref.RefModel.from_toml(
        model_toml(
            parameters={"CL": f"{CL} * exp(ETA_CL)", "V": f"{V}", "KA": f"{KA}"},
            etas=["ETA_CL"],
            variances=[0.1],
            proportional_sd=0.2,
            additive_sd=0.05,
        )
    )
    rows = [
        {"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100},
        {"ID": 1, "TIME": 2, "EVID": 0, "DV": 1.1},
        {"ID": 1, "TIME": 30, "EVID": 0, "DV": 0.2, "CENS": 1},
    ]
    s = subject(tmp_path, rows, model)
    eta = 0.3
    f = ref.predict(model, s, [eta])
    var = 0.05**2 + (0.2 * f) ** 2
    from scipy.stats import norm

    expected = (
        math.log(var[0])
        + (1.1 - f[0]) ** 2 / var[0]
        - 2 * norm.logcdf((0.2 - f[1]) / math.sqrt(var[1]))
        + eta**2 / 0.1
    )
    assert ref.objective(model, s, [eta]) == pytest.approx(expected, rel=1e-12)


def test_no_observation_gives_the_population_value(tmp_path):
    model = one_compartment()
    s = subject(tmp_path, [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100}], model)
    result = ref.fit(model, s, starts=1)
    assert abs(result.eta[0]) < 1e-6


def _nm001():
    case = DATA_DIR / "mapbayr_nm001"
    model = ref.RefModel.load(case / "model.toml")
    subjects = {s.id: s for s in ref.read_subjects(case / "data.csv", model)}
    expected = list(csv.DictReader(open(case / "expected.csv", encoding="utf-8")))
    return model, subjects, expected


def test_objective_is_minimal_at_nonmem_estimates():
    """Fast check of the whole chain against NONMEM: at NONMEM's ETAs every small step
    raises the reference objective (NONMEM's point is the reference's minimum)."""
    model, subjects, expected = _nm001()
    for row in expected[:3]:
        eta = np.array([float(row[name]) for name in model.eta_names])
        at = ref.objective(model, subjects[row["ID"]], eta)
        for i in range(len(eta)):
            for step in (-2e-3, 2e-3):
                moved = eta.copy()
                moved[i] += step
                assert ref.objective(model, subjects[row["ID"]], moved) > at


@pytest.mark.slow
def test_reference_fit_reproduces_nonmem_on_mapbayr_nm001():
    model, subjects, expected = _nm001()
    for row in expected:
        result = ref.fit(model, subjects[row["ID"]], starts=1)
        nonmem = np.array([float(row[name]) for name in model.eta_names])
        np.testing.assert_allclose(result.eta, nonmem, atol=1e-5, err_msg=f"ID {row['ID']}")


def test_posterior_covariance_reproduces_nonmem_etc():
    model, subjects, expected = _nm001()
    for row in expected:
        eta = np.array([float(row[name]) for name in model.eta_names])
        cov = ref.posterior_covariance(model, subjects[row["ID"]], eta)
        nonmem = [float(row[f"SD_{name}"]) for name in model.eta_names]
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), nonmem, rtol=1e-3, err_msg=row["ID"])
