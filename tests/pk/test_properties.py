"""Properties of the engine's Python API that must hold for every model and data set
(hypothesis draws the model structure, its numbers, the doses and the sampling times)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring import pk
from tests.pk import reference_ode as ref
from tests.pk.modeltext import dataset_csv, model_toml

FAST = settings(max_examples=30, deadline=None)


@st.composite
def models(draw):
    """A valid model file: one or two compartments, first-order (optionally with lag and
    bioavailability) or transit absorption, 2 to 4 ETAs, diagonal or block Omega."""
    disposition = draw(st.sampled_from(["one_compartment", "two_compartment"]))
    absorption = draw(st.sampled_from(["first_order", "transit"]))
    rate = lambda lo, hi: draw(st.floats(lo, hi))  # noqa: E731
    parameters = {"CL": f"{rate(2, 20)!r} * exp(ETA_CL)"}
    etas = ["ETA_CL", "ETA_V"]
    volume = "V1" if disposition == "two_compartment" else "V"
    parameters[volume] = f"{rate(10, 80)!r} * exp(ETA_V)"
    if disposition == "two_compartment":
        parameters["Q"] = f"{rate(1, 15)!r}"
        parameters["V2"] = f"{rate(10, 100)!r}"
    transit = None
    if absorption == "transit":
        transit = draw(st.integers(1, 5))
        parameters["KTR"] = f"{rate(0.5, 6)!r} * exp(ETA_ABS)"
    else:
        parameters["KA"] = f"{rate(0.3, 4)!r} * exp(ETA_ABS)"
        if draw(st.booleans()):
            parameters["ALAG"] = f"{rate(0.1, 1.5)!r}"
        if draw(st.booleans()):
            parameters["F"] = f"{rate(0.2, 1)!r}"
    etas.append("ETA_ABS")
    if draw(st.booleans()):
        parameters["CL"] += " * (WT / 70) ** 0.75"
    variances = [draw(st.floats(0.01, 0.5)) for _ in etas]
    block = None
    if draw(st.booleans()):
        correlation = draw(st.floats(-0.6, 0.6))
        covariance = correlation * (variances[0] * variances[1]) ** 0.5
        block = [[variances[0]], [covariance, variances[1]], [0.0, 0.0, variances[2]]]
    text = model_toml(
        disposition=disposition,
        absorption=absorption,
        transit=transit,
        parameters=parameters,
        etas=etas,
        variances=variances,
        block=block,
        covariates={"WT": 70},
        proportional_sd=draw(st.floats(0.05, 0.4)),
        additive_sd=draw(st.sampled_from([0.0, 0.05])),
    )
    return text


@st.composite
def dosing(draw):
    """Dose records (some with II/ADDL), then observations after the first dose."""
    rows = []
    time = 0.0
    for _ in range(draw(st.integers(1, 4))):
        ii = draw(st.sampled_from([12.0, 24.0]))
        addl = draw(st.integers(0, 6))
        rows.append(
            {
                "ID": 1,
                "TIME": time,
                "EVID": 1,
                "AMT": draw(st.floats(0.5, 200)),
                "II": ii if addl else 0,
                "ADDL": addl,
                "WT": draw(st.floats(30, 110)),
            }
        )
        time += (addl + 1) * ii + draw(st.floats(0, 24))
    observations = sorted(draw(st.lists(st.floats(0.05, time + 200), min_size=1, max_size=6)))
    for t in observations:
        rows.append({"ID": 1, "TIME": t, "EVID": 0, "DV": 1.0, "WT": 70})
    rows.sort(key=lambda r: (r["TIME"], r["EVID"] == 0))
    return rows


COLUMNS = ["ID", "TIME", "EVID", "AMT", "DV", "II", "ADDL", "SS", "CENS", "WT"]


def subject(rows, model):
    return pk.parse_dataset(dataset_csv(rows, COLUMNS), model)[0]


def random_eta(model, seed):
    rng = np.random.default_rng(seed)
    return np.linalg.cholesky(model.omega) @ rng.normal(size=len(model.eta_names))


@FAST
@given(models(), dosing())
def test_no_observations_give_eta_zero_and_covariance_omega(text, rows):
    model = pk.parse_model(text, source="drawn.toml")
    doses_only = [r for r in rows if r["EVID"] == 1]
    result = pk.fit(model, subject(doses_only, model))
    np.testing.assert_array_equal(result.eta, np.zeros(len(model.eta_names)))
    np.testing.assert_allclose(result.cov, model.omega, rtol=1e-12)


@FAST
@given(models(), dosing(), st.integers(0, 2**32 - 1))
def test_doubling_every_dose_doubles_every_prediction(text, rows, seed):
    model = pk.parse_model(text, source="drawn.toml")
    doubled = [{**r, "AMT": 2 * r["AMT"]} if r["EVID"] == 1 else r for r in rows]
    eta = random_eta(model, seed)
    single = pk.predict(model, subject(rows, model), eta)
    double = pk.predict(model, subject(doubled, model), eta)
    np.testing.assert_allclose(double, 2 * single, rtol=1e-9, atol=1e-300)


@FAST
@given(models(), dosing(), st.integers(0, 2**32 - 1))
def test_predictions_are_never_negative(text, rows, seed):
    model = pk.parse_model(text, source="drawn.toml")
    far = rows + [{"ID": 1, "TIME": 5000.0, "EVID": 0, "DV": 1.0, "WT": 70}]
    prediction = pk.predict(model, subject(far, model), 3 * random_eta(model, seed))
    assert np.all(np.isfinite(prediction))
    assert np.all(prediction >= 0)


@FAST
@given(
    models(),
    st.floats(0.5, 200),
    st.sampled_from([8.0, 12.0, 24.0]),
    # At the dose itself, or clearly after it: within TOLERANCE_H (1e-7 h, 0.36 ms) of a dose
    # the engine counts a sample as at the dose, taken before it, while a steady-state record
    # keeps its reset at its own time (predict.build_schedule); drawn there (2.3e-8 h after
    # the dose) the two paths differed by that instant's absorption, 2e-7 of the value.
    # Recorded times are whole minutes.
    st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1)), min_size=1, max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_steady_state_dose_equals_60_repeated_doses(text, amount, ii, fractions, seed):
    model = pk.parse_model(text, source="drawn.toml")
    eta = random_eta(model, seed)
    # 60 doses reach steady state only if the slowest rate constant has decayed by then:
    # stretch the interval so that 60 intervals are 40 time constants (e^-40 ~ 4e-18).
    reference = ref.RefModel.from_toml(text)
    rates = np.abs(np.linalg.eigvals(reference.rate_matrix(reference.parameters({"WT": 70}, eta))))
    ii = max(ii, 40 / (60 * rates.min()))
    times = [59 * ii + f * ii for f in fractions]
    observed = [{"ID": 1, "TIME": t, "EVID": 0, "DV": 1.0, "WT": 70} for t in sorted(times)]
    repeated = [{"ID": 1, "TIME": 0.0, "EVID": 1, "AMT": amount, "II": ii, "ADDL": 59, "WT": 70}]
    steady = [{"ID": 1, "TIME": 59 * ii, "EVID": 1, "AMT": amount, "II": ii, "SS": 1, "WT": 70}]
    by_repeating = pk.predict(model, subject(repeated + observed, model), eta)
    by_steady_state = pk.predict(model, subject(steady + observed, model), eta)
    # rtol 1e-7: just after a dose (fraction ~1e-11) a transit model's value is a difference of
    # nearly equal exponentials, and sixty summed doses round differently from the closed form
    # there (seen: 1.2e-8); a wrong steady state is off by far more than that.
    np.testing.assert_allclose(by_steady_state, by_repeating, rtol=1e-7, atol=1e-12)


@FAST
@given(models(), dosing(), st.integers(0, 2**32 - 1))
def test_model_written_back_and_read_again_predicts_the_same(text, rows, seed):
    model = pk.parse_model(text, source="drawn.toml")
    again = pk.parse_model(model.to_toml(), source="written.toml")
    assert again.eta_names == model.eta_names
    np.testing.assert_array_equal(again.omega, model.omega)
    assert (again.proportional_sd, again.additive_sd) == (model.proportional_sd, model.additive_sd)
    eta = random_eta(model, seed)
    np.testing.assert_array_equal(
        pk.predict(again, subject(rows, again), eta), pk.predict(model, subject(rows, model), eta)
    )


def test_shipped_models_survive_the_round_trip():
    for model_id in pk.shipped_models():
        model = pk.load_model(model_id)
        again = pk.parse_model(model.to_toml(), source=f"{model_id} written back")
        assert again.to_toml() == model.to_toml()
