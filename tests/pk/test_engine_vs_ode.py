"""The production engine (closed form) against the test-only ODE reference, on the shipped
tacrolimus models and made-up patients (tests/pk/data/simulated/patients.csv):

1. twice-daily immediate release from a steady-state dose, troughs drawn early and late,
   a dose change;
2. once-daily extended release over three weeks (IR = 0 for Woillard);
3. haematocrit and weight changing over time (and the Wuzhi capsule stopped);
4. a new start without steady state, the first trough censored (below 2 ng/mL, M3);
5. four weeks of twice-daily dosing written as one dose record with ADDL.

Predictions must agree to 0.1 % and MAP ETAs to 1e-4.
"""

import numpy as np
import pytest

from monitoring import pk
from tests.pk import reference_ode as ref
from tests.pk.modeltext import DATA_DIR, MODELS_DIR, SHIPPED_MODELS

PATIENTS = DATA_DIR / "simulated" / "patients.csv"
PATIENT_IDS = ["1", "2", "3", "4", "5"]


def _load(model_id):
    model = pk.load_model(model_id)
    reference = ref.RefModel.load(MODELS_DIR / f"{model_id}.toml")
    subjects = {s.id: s for s in pk.read_dataset(PATIENTS, model)}
    reference_subjects = {s.id: s for s in ref.read_subjects(PATIENTS, reference)}
    return model, reference, subjects, reference_subjects


def _etas(model, seed):
    """η = 0, and ETAs drawn from Ω (one to two SDs away)."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(model.omega)
    return [np.zeros(len(model.eta_names))] + [
        chol @ rng.normal(size=len(model.eta_names)) * 1.5 for _ in range(2)
    ]


def test_the_shipped_models_are_the_ones_compared():
    assert set(SHIPPED_MODELS) <= set(pk.shipped_models())


@pytest.mark.parametrize("model_id", SHIPPED_MODELS)
@pytest.mark.parametrize("patient", PATIENT_IDS)
def test_predictions_agree_within_0_1_percent(model_id, patient):
    model, reference, subjects, reference_subjects = _load(model_id)
    for eta in _etas(model, seed=int(patient)):
        ours = pk.predict(model, subjects[patient], eta)
        theirs = ref.predict(reference, reference_subjects[patient], eta)
        assert len(ours) == len(theirs) >= 3
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, err_msg=f"{model_id} {patient} {eta}")


@pytest.mark.parametrize("model_id", SHIPPED_MODELS)
@pytest.mark.parametrize("patient", PATIENT_IDS)
def test_objective_agrees(model_id, patient):
    model, reference, subjects, reference_subjects = _load(model_id)
    for eta in _etas(model, seed=10 + int(patient)):
        assert pk.objective(model, subjects[patient], eta) == pytest.approx(
            ref.objective(reference, reference_subjects[patient], eta), rel=1e-7, abs=1e-6
        )


def test_a_censored_trough_uses_m3():
    """Patient 4's first trough is censored: the objective term is -2 ln Phi, not the
    Gaussian one (checked against the reference with the CENS flag removed)."""
    model, reference, subjects, reference_subjects = _load("woillard2011")
    subject = reference_subjects["4"]
    assert subject.fitted[0].cens == 1
    eta = np.zeros(len(model.eta_names))
    uncensored = ref.RefSubject(
        subject.id,
        [ref.RefRecord(**{**r.__dict__, "cens": 0}) for r in subject.records],
    )
    with_m3 = pk.objective(model, subjects["4"], eta)
    assert with_m3 == pytest.approx(ref.objective(reference, subject, eta), rel=1e-8)
    assert with_m3 != pytest.approx(ref.objective(reference, uncensored, eta), rel=1e-3)


# Fitting by Nelder-Mead on numerically integrated ODEs takes seconds per patient for the
# one-ETA Chen model and minutes for the five-ETA Woillard model, so Woillard is fitted on
# two patients (steady state, dose change, mistimed troughs; censored new start).
FIT_CASES = [("chen2020", p) for p in PATIENT_IDS] + [("woillard2011", p) for p in ("1", "4")]


@pytest.mark.slow
@pytest.mark.parametrize(("model_id", "patient"), FIT_CASES)
def test_map_etas_agree_within_1e_4(model_id, patient):
    model, reference, subjects, reference_subjects = _load(model_id)
    ours = pk.fit(model, subjects[patient])
    theirs = ref.fit(reference, reference_subjects[patient], starts=1)
    assert ours.converged, ours.message
    np.testing.assert_allclose(ours.eta, theirs.eta, atol=1e-4, err_msg=f"{model_id} {patient}")
    assert ours.ofv == pytest.approx(theirs.ofv, abs=1e-6)


@pytest.mark.parametrize("model_id", SHIPPED_MODELS)
@pytest.mark.parametrize("patient", ["1", "2", "3", "5"])  # 4 has a censored result
def test_posterior_sd_agrees_within_1_percent(model_id, patient):
    """The engine's posterior covariance against the spec's formula evaluated on the ODE
    reference's predictions, at the same ETAs (the engine's estimate)."""
    model, reference, subjects, reference_subjects = _load(model_id)
    ours = pk.fit(model, subjects[patient])
    theirs = ref.posterior_covariance(reference, reference_subjects[patient], ours.eta)
    np.testing.assert_allclose(ours.sd, np.sqrt(np.diag(theirs)), rtol=0.01)
