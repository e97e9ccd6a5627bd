"""The model-informed forecast of a patient: records → data set → MAP fit → stored.

`pk` never sees a model instance: ``pk_data`` turns the records into a data set, the pure
engine fits and forecasts, and the numbers are stored in ``PatientForecast`` with the
patient's summary, so pages only read them. A fit happens when a trough, a dose, a
covariate or the model changes (``patients_reassess`` calls ``patients_refit``); large
writes (imports) mark the forecasts stale instead, and the next look at such a patient, or
``refresh_summaries``, refits them once. Writes from an interface or an import (HL7,
import files) mark them stale too and leave the fit to a background task
(``tasks.refit_forecasts``): a fit takes about a second, the write a few milliseconds.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from . import bulk, pk, pk_data, rules
from .models import (
    ForecastMethod,
    Formulation,
    Patient,
    PatientForecast,
    RecordStatus,
)
from .pk.forecast import forecast, trough_curve

SYNCHRONOUS_LIMIT = 25  # patients refitted inside the request that changed them


@cache
def model_by_id(model_id: str) -> pk.Model:
    return pk.load_model(model_id)


def shipped_models() -> list[pk.Model]:
    return [model_by_id(model_id) for model_id in pk.shipped_models()]


def models_for(formulation: str) -> list[pk.Model]:
    """The shipped models that cover a formulation (IR, ER, LCP …)."""
    return [m for m in shipped_models() if formulation in m.formulations]


def model_for(patient: Patient, formulation: str) -> pk.Model | None:
    """The patient's chosen model if it covers the formulation, else the site default,
    else any shipped model that does; None where none covers it (e.g. LCP)."""
    covering = {m.id: m for m in models_for(formulation)}
    for choice in (patient.pk_model, settings.PK_DEFAULT_MODEL):
        if choice and choice in covering:
            return covering[choice]
    return next(iter(covering.values()), None)


def population_note(model: pk.Model, age_years: float) -> list[str]:
    """Plain words where the patient is outside the model's population."""
    notes = []
    if model.indication and model.indication != "lupus nephritis":
        notes.append(f"developed in {model.indication} recipients, not in lupus nephritis")
    if model.age_range:
        low, high = model.age_range
        if age_years > high:
            who = "children and adolescents" if high <= 18 else f"patients up to {high:g} years"
            notes.append(f"developed in {who}: this patient is older")
        elif age_years < low:
            who = "adults" if low >= 18 else f"patients from {low:g} years"
            notes.append(f"developed in {who}: this patient is younger")
    return notes


def current_regimen(patient: Patient, now: datetime):
    """The active regimen in force at ``now`` (the one a forecast is for), or None."""
    regimens = [
        r
        for r in patient.regimens.all()
        if r.status == RecordStatus.ACTIVE and r.effective_at <= now
    ]
    return max(regimens, key=lambda r: r.effective_at, default=None)


def _subject(dataset: pk_data.PkDataSet, model: pk.Model):
    buffer = io.StringIO()
    pk_data.write_csv(dataset, buffer)
    (subject,) = pk.parse_dataset(buffer.getvalue(), model)
    return subject


def _origin(dataset: pk_data.PkDataSet) -> datetime:
    first = dataset.rows[0]
    return datetime.fromisoformat(first["DATETIME"].replace("Z", "+00:00")) - timedelta(
        hours=float(first["TIME"])
    )


def patient_forecast_fields(patient: Patient, target: tuple[float, float]) -> dict:
    """Everything ``PatientForecast`` stores for a patient, computed now."""
    now = timezone.now()
    fields: dict = {
        "stale": False,
        "fitted_at": now,
        "target_low": target[0],
        "target_high": target[1],
    }
    regimen = current_regimen(patient, now)
    ended = patient.therapy_end is not None and patient.therapy_end <= timezone.localdate()
    if regimen is None or regimen.daily_dose_mg <= 0 or ended:
        return fields | {"method": ForecastMethod.NONE, "message": "not on tacrolimus"}
    fields |= {
        "formulation": regimen.formulation,
        "daily_dose_mg": float(regimen.daily_dose_mg),
        "doses_per_day": rules.doses_per_day(regimen.frequency),
    }
    model = model_for(patient, regimen.formulation)
    if model is None:
        label = Formulation(regimen.formulation).label
        return fields | {
            "method": ForecastMethod.PROPORTIONAL,
            "message": f"no shipped model covers {label}: the proportional rule is shown",
        }
    fields["model_id"] = model.id
    dataset = pk_data.patient_pk_dataset(patient)
    observed = [row for row in dataset.rows if row["EVID"] == 0]
    if observed:
        subject = _subject(dataset, model)
    else:
        subject = pk.subject_from_arrays(model, time=[0.0], evid=[0], dv=[math.nan])
    result = pk.fit(model, subject)
    if not result.converged:
        return fields | {
            "method": ForecastMethod.PROPORTIONAL,
            "message": f"the model fit did not converge ({result.message}): "
            "the proportional rule is shown",
            "notes": dataset.notes,
        }

    # The covariates now (latest labs, the regimen in force), not those of the last trough.
    latest, defaulted = {}, []
    for name, covariate in model.covariates.items():
        value = dataset.current.get(name)
        if value is None:
            defaulted.append(name)
            latest[name] = covariate.default
        else:
            latest[name] = float(value)
    outlook = forecast(
        model,
        result,
        latest,
        daily_dose_mg=float(regimen.daily_dose_mg),
        doses_per_day=fields["doses_per_day"],
        target=target,
    )
    levels = dataset.levels
    residuals = {
        str(level): [float(ipred), float(iwres)]
        for level, ipred, iwres in zip(levels, result.ipred, result.iwres, strict=True)
        if level is not None
    }
    curve = {}
    if observed:
        origin = _origin(dataset)
        band = trough_curve(model, subject, result)
        curve = {
            "t": [(origin + timedelta(hours=float(h))).isoformat() for h in band.time],
            "median": [round(float(v), 4) for v in band.median],
            "p10": [round(float(v), 4) for v in band.p10],
            "p90": [round(float(v), 4) for v in band.p90],
        }
    return fields | {
        "method": ForecastMethod.MAP if observed else ForecastMethod.POPULATION,
        "message": (
            f"{len(observed)} troughs used" if observed else "no usable trough: population model"
        ),
        "n_troughs_used": len(observed),
        "eta": [float(v) for v in result.eta],
        "covariance": [[float(v) for v in row] for row in result.cov],
        "ofv": float(result.ofv),
        "cl_individual": outlook.cl_individual,
        "cl_typical": outlook.cl_typical,
        "predicted_trough": outlook.current.trough,
        "predicted_p10": outlook.current.p10,
        "predicted_p90": outlook.current.p90,
        "p_in_range": outlook.current.p_in_range,
        "suggested_daily_dose_mg": outlook.suggested.daily_dose_mg,
        "options": [
            {
                "daily_dose_mg": o.daily_dose_mg,
                "trough": o.trough,
                "p10": o.p10,
                "p90": o.p90,
                "p_in_range": o.p_in_range,
            }
            for o in outlook.options
        ],
        "covariates_defaulted": defaulted,
        "notes": dataset.notes,
        "residuals": residuals,
        "curve": curve,
    }


def patients_refit(patients: Iterable[Patient], targets: dict[int, tuple[float, float]]) -> None:
    """Fit and store the forecast of each patient (``targets``: patient id → band)."""
    for patient in patients:
        fields = patient_forecast_fields(patient, targets[patient.pk])
        PatientForecast.objects.update_or_create(patient=patient, defaults=fields)


def patients_mark_forecast_stale(patient_ids: Iterable[int]) -> None:
    ids = list(patient_ids)
    existing = set(
        PatientForecast.objects.filter(patient_id__in=ids).values_list("patient_id", flat=True)
    )
    PatientForecast.objects.filter(patient_id__in=ids).update(
        stale=True, change_count=F("change_count") + 1
    )
    # Rows of defaults, as bulk_create would store them, without 5,000 model instances.
    bulk.insert_defaults(
        PatientForecast,
        "patient_id",
        [i for i in ids if i not in existing],
        stale=True,
        change_count=1,
    )


def patient_refit_if_unchanged(
    patient: Patient, target: tuple[float, float], mark: int
) -> tuple[dict, bool]:
    """Fit the forecast of a patient marked stale ``mark`` times and store it unless another
    change was marked while fitting: that fit may miss it, so the row stays stale for the
    newer mark's own refit. Returns the fitted fields and whether they were stored."""
    fields = patient_forecast_fields(patient, target)
    stored = PatientForecast.objects.filter(patient=patient, change_count=mark).update(**fields)
    return fields, bool(stored)


FORECAST_COLUMNS = [
    "mrn",
    "model",
    "formulation",
    "daily_dose_mg",
    "n_troughs_used",
    "cl_individual",
    "cl_typical",
    "predicted_trough",
    "predicted_p10",
    "predicted_p90",
    "p_in_range",
    "suggested_daily_dose_mg",
    "covariates_defaulted",
]


def _fixed(value: float | None, places: int) -> str:
    return "" if value is None else f"{value:.{places}f}"


def forecast_row(patient: Patient, stored: PatientForecast | None) -> list[str]:
    """One export row; only the patient's MRN where no model forecast applies."""
    if stored is None or stored.method not in (ForecastMethod.MAP, ForecastMethod.POPULATION):
        return [patient.mrn, "", stored.formulation if stored else ""] + [""] * 10
    return [
        patient.mrn,
        stored.model_id,
        stored.formulation,
        _fixed(stored.daily_dose_mg, 1),
        str(stored.n_troughs_used),
        _fixed(stored.cl_individual, 2),
        _fixed(stored.cl_typical, 2),
        _fixed(stored.predicted_trough, 2),
        _fixed(stored.predicted_p10, 2),
        _fixed(stored.predicted_p90, 2),
        _fixed(stored.p_in_range, 3),
        _fixed(stored.suggested_daily_dose_mg, 1),
        ";".join(stored.covariates_defaulted),
    ]
