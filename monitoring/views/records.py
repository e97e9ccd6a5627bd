"""The patient page's record forms (dose or formulation change, target phase, concomitant
drug start or stop, kidney lab, end of therapy): thin views over ``services``.

Like the trough forms of ``views.patient``: a plain POST redirects back to the page (or
shows it again with the errors, 422); with htmx a success answers with the updated live
fragment and an error with the form alone, swapped in place. A GET only leads to the form
on the page."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget

from .. import rules, services
from ..alert_text import ACK_LABELS
from ..models import Patient
from .patient import TEMPLATE, PageState, _after_write, _patient_url, _render
from .record_forms import DECISION, KINDS, RecordFormView, build_form

NOTE_LENGTH = 300


def _save(kind: str, form, patient: Patient, user) -> str:
    """Write a valid form through its service; the notice for the page."""
    data = form.cleaned_data
    reason = data.get("reason", "")
    if kind == "drug_stop":
        drug = data["record"]
        services.drug_stop(drug=drug, stopped_on=data["stopped_on"], user=user, reason=reason)
        return f"{drug.name}: stopped on {data['stopped_on']} recorded."
    if kind == "therapy_end":
        services.patient_therapy_end_set(
            patient=patient, therapy_end=data["therapy_end"], user=user, reason=reason
        )
        return f"End of immunosuppression recorded: {data['therapy_end']}."
    record = services.patient_record_add(
        patient=patient, record=form.save(commit=False), user=user, reason=reason
    )
    if kind == "regimen":
        return f"Regimen recorded: {record} from {record.effective_at:%Y-%m-%d %H:%M}."
    if kind == "target":
        return f"Target recorded: {record}."
    if kind == "drug_start":
        return f"{record.name}: start on {record.started_on} recorded."
    return f"{record.get_test_display()} {record.value} {record.unit} recorded."


@require_http_methods(["GET", "POST"])
def record_add(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    spec = KINDS[kind]
    if not request.user.has_perms(("monitoring.view_patient", *spec.perms)):
        raise PermissionDenied
    patient = get_object_or_404(Patient, pk=pk)
    state = PageState.from_request(request)
    anchor = f"record-{kind}"
    if request.method == "GET":
        return redirect(_patient_url(patient, state, anchor))
    form = build_form(spec, patient, data=request.POST)
    if form.is_valid():
        try:
            notice = _save(kind, form, patient, request.user)
        except rules.RuleError as exc:
            field = exc.field if exc.field in form.fields else None
            form.add_error(field, f"value '{exc.value}': {exc.message}")
        else:
            return _after_write(request, patient, state, notice, anchor)
    bound = RecordFormView(spec, form, request.path)
    if request.htmx:
        context = {"patient": patient, "query": state.query(), "rf": bound}
        response = render(request, f"{TEMPLATE}#record-form", context)
        return reswap(retarget(response, f"#{anchor}"), "outerHTML")
    return _render(request, patient, state, record=bound, status=422)


@require_http_methods(["GET", "POST"])
def alert_acknowledge(request: HttpRequest, pk: int, code: str) -> HttpResponse:
    """Mark one current alert reviewed, with an optional note (a clinician's decision)."""
    if not request.user.has_perms(("monitoring.view_patient", DECISION)):
        raise PermissionDenied
    patient = get_object_or_404(Patient, pk=pk)
    state = PageState.from_request(request)
    if request.method == "GET":
        return redirect(_patient_url(patient, state, "alerts"))
    note = request.POST.get("note", "")
    error = ""
    if len(note) > NOTE_LENGTH:
        error = f"note: longer than {NOTE_LENGTH} characters"
    else:
        try:
            services.alert_acknowledge(patient=patient, code=code, note=note, user=request.user)
        except rules.RuleError as exc:
            error = f"Not saved: {exc.field} value '{exc.value}': {exc.message}."
    if error:
        if request.htmx:
            return _render(request, patient, state, partial="live", ack_error=error)
        return _render(request, patient, state, ack_error=error, status=422)
    label = ACK_LABELS[code]
    return _after_write(request, patient, state, f"Alert marked {label}.", "alerts")
