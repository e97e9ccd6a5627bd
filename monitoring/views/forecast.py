"""The model-informed forecast's own writes and page: leaving a trough out of the fit, the
patient's model, and the forecast check. Reads live on the patient page (views/patient.py)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from .. import forecasting, rules, services
from ..audit import logs_access
from ..forms import FitExclusionForm
from ..models import ForecastCheckRun, Patient
from .patient import (
    LevelAction,
    PageState,
    _action_form,
    _after_write,
    _describe,
    _level_of,
    _patient_url,
    _render,
    _row_form_id,
)

DECISION = "monitoring.record_clinical_decision"


@require_http_methods(["GET", "POST"])
@permission_required(["monitoring.view_patient", DECISION], raise_exception=True)
@logs_access("patient")  # its answers show the patient's troughs
def level_fit(request: HttpRequest, pk: int, level_pk: int) -> HttpResponse:
    """Leave a trough out of the PK fit (or take it back in), with a reason."""
    patient = get_object_or_404(Patient, pk=pk)
    level = _level_of(patient, level_pk)
    state = PageState.from_request(request)
    excluding = not level.fit_excluded_reason
    if request.method == "GET":
        form = FitExclusionForm(auto_id=_row_form_id(level))
        return _action_form(request, patient, state, LevelAction("fit", level, form))
    form = FitExclusionForm(request.POST, auto_id=_row_form_id(level))
    if form.is_valid():
        try:
            services.level_set_fit_exclusion(
                level=level,
                reason=form.cleaned_data["reason"],
                exclude=excluding,
                user=request.user,
            )
        except rules.RuleError as exc:
            form.add_error("reason", exc.message)
    if not form.is_valid():
        return _action_form(request, patient, state, LevelAction("fit", level, form), status=422)
    done = "left out of the model fit" if excluding else "taken back into the model fit"
    return _after_write(request, patient, state, f"Trough {_describe(level)} {done}.", "forecast")


@require_POST
@permission_required(["monitoring.view_patient", DECISION], raise_exception=True)
@logs_access("patient")
def patient_model(request: HttpRequest, pk: int) -> HttpResponse:
    """Choose the patient's PK model among the shipped ones covering the regimen."""
    patient = get_object_or_404(Patient, pk=pk)
    state = PageState.from_request(request)
    model_id = request.POST.get("pk_model", "").strip()
    reason = request.POST.get("reason", "")
    try:
        services.patient_set_pk_model(
            patient=patient, model_id=model_id, reason=reason, user=request.user
        )
    except rules.RuleError as exc:
        text = f"{exc.field}: value '{exc.value}': {exc.message}"
        if request.htmx:
            return _render(
                request, patient, state, partial="live", notice="", status=422, model_error=text
            )
        messages.error(request, text)
        return redirect(_patient_url(patient, state, "forecast"))
    name = forecasting.model_by_id(model_id).name
    return _after_write(request, patient, state, f"Forecasts now use {name}.", "forecast")


@require_safe
@permission_required(DECISION, raise_exception=True)
def forecast_check_page(request: HttpRequest) -> HttpResponse:
    """The latest forecast check (``manage.py forecast_check``): no patient data, only
    counts and percentages, so no access-log row."""
    run = ForecastCheckRun.objects.first()
    return render(request, "monitoring/forecast_check.html", {"run": run})
