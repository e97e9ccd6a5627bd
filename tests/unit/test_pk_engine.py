"""The exact linear-model solution against textbook formulas and a brute-force expm.

scipy.linalg.expm (a Padé approximation of the matrix exponential, dose by dose) is the
slow, obviously right reference here; the engine must match it to 1e-9 relative.
"""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.linalg import expm

from monitoring.pk import parse_model, predict, subject_from_arrays
from monitoring.pk.linear import coupling

ONE_COMPARTMENT = """
[model]
id = "onecpt"
name = "test"
drug = "x"
reference = "test"
population = "test"
formulations = ["IR"]
scale = 1

[structure]
disposition = "one_compartment"
absorption = "first_order"

[covariates]
WT = {{ description = "weight", unit = "kg", default = 70 }}

[parameters]
CL = "{cl} * (WT / 70) * exp(ETA_CL)"
V = "{v} * exp(ETA_V)"
KA = "{ka}"
{extra}

[omega]
etas = ["ETA_CL", "ETA_V"]
variances = [0.1, 0.1]

[error]
proportional_sd = 0.1
"""

TRANSIT = """
[model]
id = "transit"
name = "test"
drug = "x"
reference = "test"
population = "test"
formulations = ["IR"]
scale = 1000

[structure]
disposition = "two_compartment"
absorption = "transit"
transit_compartments = {n}

[covariates]
HCT = {{ description = "haematocrit", unit = "%", default = 35 }}

[parameters]
KTR = "{ktr} * exp(ETA_KTR)"
CL = "21.2 * (HCT / 35) ** -1.14 * exp(ETA_CL)"
V1 = "141 * exp(ETA_V1)"
Q = "79"
V2 = "271"

[omega]
etas = ["ETA_KTR", "ETA_CL", "ETA_V1"]
variances = [0.05, 0.07, 0.09]

[error]
proportional_sd = 0.1
additive_sd = 0.5
"""


def bateman(dose, ka, cl, v, t):
    ke = cl / v
    return dose * ka / (v * (ka - ke)) * (np.exp(-ke * t) - np.exp(-ka * t))


def transit_matrix(n, ktr, cl, v1, q, v2):
    size = n + 2
    a = np.zeros((size, size))
    for i in range(n):
        a[i, i] = -ktr
        if i:
            a[i, i - 1] = ktr
    a[n, n - 1] = ktr
    a[n, n] = -(cl + q) / v1
    a[n, n + 1] = q / v2
    a[n + 1, n] = q / v1
    a[n + 1, n + 1] = -q / v2
    return a


def brute_force(a, central, volume, scale, doses, times):
    """Every dose propagated with scipy's expm, summed (superposition)."""
    out = []
    for t in times:
        x = np.zeros(len(a))
        for time, amount in doses:
            if time <= t:
                dose = np.zeros(len(a))
                dose[0] = amount
                x += expm(a * (t - time)) @ dose
        out.append(x[central] / volume * scale)
    return np.array(out)


def test_single_dose_matches_the_bateman_function():
    model = parse_model(ONE_COMPARTMENT.format(cl=5, v=50, ka=1.2, extra=""))
    times = np.array([0.5, 1, 2, 6, 12, 24, 48])
    subject = subject_from_arrays(
        model, time=np.r_[0, times], evid=[1] + [0] * 7, amt=[100] + [0] * 7, dv=[0] * 8
    )
    np.testing.assert_allclose(
        predict(model, subject, [0, 0]), bateman(100, 1.2, 5, 50, times), rtol=1e-12
    )


def test_absorption_rate_equal_to_elimination_rate_is_finite_and_exact():
    # ka = CL/V = 0.1: the textbook Bateman formula divides by zero here.
    model = parse_model(ONE_COMPARTMENT.format(cl=5, v=50, ka=0.1, extra=""))
    times = np.array([1.0, 10.0, 30.0])
    subject = subject_from_arrays(
        model, time=np.r_[0, times], evid=[1, 0, 0, 0], amt=[100, 0, 0, 0], dv=[0] * 4
    )
    expected = 100 / 50 * 0.1 * times * np.exp(-0.1 * times)  # the limit k·t·e^{-kt}
    np.testing.assert_allclose(predict(model, subject, [0, 0]), expected, rtol=1e-12)


def test_lag_time_delays_the_dose():
    model = parse_model(ONE_COMPARTMENT.format(cl=5, v=50, ka=1.2, extra='ALAG = "0.75"'))
    times = np.array([0.5, 0.75, 2.0, 12.0])
    subject = subject_from_arrays(
        model, time=np.r_[0, times], evid=[1] + [0] * 4, amt=[100] + [0] * 4, dv=[0] * 5
    )
    expected = np.where(times > 0.75, bateman(100, 1.2, 5, 50, np.maximum(times - 0.75, 0)), 0)
    np.testing.assert_allclose(predict(model, subject, [0, 0]), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n,ktr", [(1, 2.0), (3, 5.1), (3, 0.9), (4, 0.1), (6, 0.92)])
def test_transit_chain_with_addl_and_eta_matches_brute_force(n, ktr):
    # ktr 0.9 and 0.92 sit on the fast disposition rate (~0.9/h): the near-coincident case;
    # 0.1 is a flip-flop chain slower than disposition's fast phase.
    model = parse_model(TRANSIT.format(n=n, ktr=ktr))
    eta = np.array([0.2, -0.1, 0.15])
    obs = np.array([5.5, 11.9, 100.25, 239.0, 250.0, 400.0])
    subject = subject_from_arrays(
        model,
        time=np.r_[0, obs],
        evid=[1] + [0] * 6,
        amt=[2.5] + [0] * 6,
        ii=[12] + [0] * 6,
        addl=[20] + [0] * 6,
        dv=[1] * 7,
    )
    a = transit_matrix(n, ktr * math.exp(0.2), 21.2 * math.exp(-0.1), 141 * math.exp(0.15), 79, 271)
    doses = [(12.0 * i, 2.5) for i in range(21)]
    expected = brute_force(a, n, 141 * math.exp(0.15), 1000, doses, obs)
    np.testing.assert_allclose(predict(model, subject, eta), expected, rtol=1e-9)


def test_steady_state_dose_is_the_infinite_past():
    model = parse_model(TRANSIT.format(n=3, ktr=3.3))
    obs = np.array([0.0, 11.5, 30.0])
    subject = subject_from_arrays(
        model,
        time=[0, *obs],
        evid=[1, 0, 0, 0],
        amt=[2, 0, 0, 0],
        ii=[12, 0, 0, 0],
        ss=[1, 0, 0, 0],
        dv=[1] * 4,
    )
    a = transit_matrix(3, 3.3, 21.2, 141, 79, 271)
    doses = [(-12.0 * i, 2.0) for i in range(400)]  # 200 days: far past steady state
    np.testing.assert_allclose(
        predict(model, subject, [0, 0, 0]), brute_force(a, 3, 141, 1000, doses, obs), rtol=1e-9
    )


def test_covariate_applies_from_its_record_onwards():
    model = parse_model(TRANSIT.format(n=2, ktr=2.0))
    # Haematocrit falls from 35 to 25 % at 24 h: clearance rises from then on, not before.
    subject = subject_from_arrays(
        model,
        time=[0, 24, 30],
        evid=[1, 0, 0],
        amt=[5, 0, 0],
        dv=[np.nan, np.nan, 1],
        covariates={"HCT": [35, 25, 25]},
    )
    before = transit_matrix(2, 2.0, 21.2, 141, 79, 271)
    after = transit_matrix(2, 2.0, 21.2 * (25 / 35) ** -1.14, 141, 79, 271)
    dose = np.zeros(4)
    dose[0] = 5
    state = expm(after * 6) @ expm(before * 24) @ dose
    assert predict(model, subject, [0, 0, 0])[0] == pytest.approx(state[2] / 141 * 1000, rel=1e-9)


@pytest.mark.parametrize("m", [0, 1, 2, 5])
@pytest.mark.parametrize(
    "k,mu,t",
    [
        (2.0, -0.1, 3.0),
        (0.5, -0.49999, 40.0),
        (0.2, -3.0, 7.0),
        (0.2, -3.0, 200.0),
        (5.0, -0.04, 0.01),
        (1.0, -1.2, 2.0),
    ],
)
def test_coupling_integral_matches_quadrature(m, k, mu, t):
    def integrand(s):
        return math.exp(mu * (t - s)) * k * (k * s) ** m / math.factorial(m) * math.exp(-k * s)

    expected, _ = quad(integrand, 0, t, epsabs=0, epsrel=1e-13, limit=200)
    got = coupling(m, np.array([k]), np.array([mu]), np.array([t]))[0]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)
