"""The forecast check over the clinic's own patients (model-informed dosing spec, §5).

For every patient with at least 3 usable troughs, each trough is predicted from the
earlier ones only, by MAP, by the population model and by the proportional rule, and the
errors are summarised per method, overall and per model. This is how a clinic learns
whether a model serves its patients before trusting its suggestions.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np
from django.utils import timezone

from . import pk, pk_data
from .forecasting import current_regimen, model_for
from .models import ForecastCheckRun, Patient
from .pk.check import CheckPrediction, MethodSummary, predict_each_from_earlier, summarize

MINIMUM_TROUGHS = 3


def patient_check(patient: Patient, model: pk.Model) -> list[CheckPrediction]:
    """The predictions for one patient (empty with fewer than 3 usable troughs)."""
    dataset = pk_data.patient_pk_dataset(patient)
    observed = [row for row in dataset.rows if row["EVID"] == 0]
    if len(observed) < MINIMUM_TROUGHS:
        return []
    buffer = io.StringIO()
    pk_data.write_csv(dataset, buffer)
    (subject,) = pk.parse_dataset(buffer.getvalue(), model)
    daily = [float(row["TDD"]) if row["TDD"] is not None else 0.0 for row in dataset.rows]
    # The data set's rows are the subject's records in the same order (times ascending,
    # doses first): the daily dose in force travels with each record.
    return predict_each_from_earlier(model, subject, daily_dose=np.asarray(daily, float))


def run_check(patients: Iterable[Patient], progress: Callable[[int], None] | None = None) -> dict:
    """Summaries overall and per model; ``progress`` is called with each patient done."""
    now = timezone.now()
    per_model: dict[str, list[CheckPrediction]] = defaultdict(list)
    checked = 0
    for done, patient in enumerate(patients, start=1):
        regimen = current_regimen(patient, now)
        model = model_for(patient, regimen.formulation) if regimen else None
        if model is not None:
            predictions = patient_check(patient, model)
            if predictions:
                checked += 1
                per_model[model.id] += predictions
        if progress:
            progress(done)
    everything = [p for predictions in per_model.values() for p in predictions]
    return {
        "patients": checked,
        "rows": [_row("all", s) for s in summarize(everything)]
        + [
            _row(model_id, s)
            for model_id in sorted(per_model)
            for s in summarize(per_model[model_id])
        ],
    }


def _row(scope: str, summary: MethodSummary) -> dict:
    return {
        "scope": scope,
        "method": summary.method,
        "n": summary.n,
        "median_error": summary.median_error,
        "median_absolute_error": summary.median_absolute_error,
        "within_20": summary.within_20,
    }


def store_check(result: dict, seconds: float) -> ForecastCheckRun:
    return ForecastCheckRun.objects.create(
        patients=result["patients"], rows=result["rows"], seconds=seconds
    )
