"""The patient page: header, alerts, trough chart, levels table, metrics, regimens, drugs.

Thin views: fetch the patient, judge it (``services.patient_assess``), shape rows for the
template (``views.patient_display``, shared with the printed report), render. Writes (add a
trough, add a missing last-dose time, mark a trough entered in error) go through
``services`` and re-judge the patient; with htmx they answer with the updated ``live``
fragment (alerts, metrics, chart and levels table), without JavaScript they redirect back
to the page. Validation errors come back next to the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget

from .. import charts, config, followup, rules, services, validation
from ..alert_text import action_text
from ..audit import logs_access
from ..forecast_display import forecast_card
from ..forms import ErrorReasonForm, TroughLevelForm
from ..kidney import kidney_summary
from ..models import LevelStatus, Patient, ReportSignoff, TroughLevel
from ..review import review_status
from .patient_display import (
    _band,
    _dose,
    _evidence_label,
    alert_items,
    dose_suggestion_text,
    drug_rows,
    duration_text,
    level_rows,
    metrics_view,
    regimen_rows,
)
from .record_forms import RecordFormView, record_forms

TEMPLATE = "monitoring/patient.html"
WINDOW_MONTHS = (3, 6, 12, 24)
DEFAULT_WINDOW_MONTHS = 12
DEFAULT_UNIT = rules.CANONICAL_UNIT
# The levels table shows the newest troughs; the chart always draws them all. Ten years of
# weekly troughs made a page of half a megabyte that took most of a second to render, and
# staff act on the recent ones: "show all" is one click away.
LEVELS_SHOWN = 50
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
ADD_FORM_ID = "add_%s"  # element ids: the add form and the row forms share field names


# --- page state (unit and metrics window live in the query string) -------------------------


@dataclass(frozen=True)
class PageState:
    unit: str = DEFAULT_UNIT
    window_months: int = DEFAULT_WINDOW_MONTHS
    all_levels: bool = False

    @classmethod
    def from_request(cls, request: HttpRequest) -> PageState:
        """Unknown values fall back to the defaults: these are view choices, not data."""
        unit = DEFAULT_UNIT
        wanted = request.GET.get("unit", "").strip().lower()
        for known in charts.UNITS:
            if wanted == known.lower():
                unit = known
        window = DEFAULT_WINDOW_MONTHS
        raw = request.GET.get("window", "").strip()
        if raw.isdigit() and int(raw) in WINDOW_MONTHS:
            window = int(raw)
        all_levels = request.GET.get("levels", "").strip().lower() == "all"
        return cls(unit, window, all_levels)

    def query(self, **changes) -> str:
        """The query string for this state (only non-defaults), with ``changes`` applied."""
        unit = changes.get("unit", self.unit)
        window = changes.get("window", self.window_months)
        all_levels = changes.get("all_levels", self.all_levels)
        params = {}
        if unit != DEFAULT_UNIT:
            params["unit"] = unit
        if window != DEFAULT_WINDOW_MONTHS:
            params["window"] = window
        if all_levels:
            params["levels"] = "all"
        return "?" + urlencode(params) if params else ""

    def window_days(self, thresholds: rules.Thresholds) -> int:
        days = Decimal(self.window_months) * thresholds.days_per_month
        return int(days.to_integral_value(rounding=ROUND_HALF_UP))


# --- forms used only on this page ---------------------------------------------------------


def _datetime_widget() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)


class TroughEntryForm(TroughLevelForm):
    """TroughLevelForm (the shared validation) as the clinic enters a new result: no
    entered-in-error status on creation, and the accession checked per patient."""

    correction_reason = None  # a new result: nothing to correct

    class Meta(TroughLevelForm.Meta):
        fields = [
            "collected_at",
            "last_dose_at",
            "reported_value",
            "reported_unit",
            "assay",
            "accession",
            "status",
        ]
        widgets = {
            "collected_at": _datetime_widget(),
            "last_dose_at": _datetime_widget(),
            "reported_value": forms.TextInput(attrs={"autocomplete": "off", "size": 8}),
            "reported_unit": forms.TextInput(
                attrs={"autocomplete": "off", "size": 8, "list": "trough-units"}
            ),
        }
        labels = {
            "collected_at": "Collected at",
            "last_dose_at": "Last dose before the draw",
            "reported_value": "Value as reported",
            "reported_unit": "Unit as reported",
        }
        help_texts = {
            "reported_value": "e.g. 5.2, <1.0 or >30",
            "reported_unit": "ng/mL, µg/L, mcg/L or nmol/L",
            "last_dose_at": "Needed for the C12h/C24h timing check.",
        }

    def __init__(self, *args, patient: Patient, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient
        self.fields["status"].choices = [
            (value, label)
            for value, label in LevelStatus.choices
            if value != LevelStatus.ENTERED_IN_ERROR
        ]
        if not self.is_bound:
            self.initial.setdefault("reported_unit", rules.CANONICAL_UNIT)

    def clean_accession(self) -> str:
        accession = (self.cleaned_data.get("accession") or "").strip()
        # The constraint names the patient, which is not a form field, so the ModelForm
        # would not check it: a duplicate would otherwise end in an IntegrityError.
        if (
            accession
            and TroughLevel.objects.filter(patient=self.patient, accession=accession).exists()
        ):
            raise ValidationError(f"value '{accession}': already recorded for this patient")
        return accession


class LastDoseForm(forms.Form):
    last_dose_at = forms.CharField(
        label="Last dose before the draw",
        widget=_datetime_widget(),
        help_text="Local time of the last tacrolimus dose before this sample.",
    )

    def clean_last_dose_at(self):
        text = self.cleaned_data["last_dose_at"]
        try:
            parsed = validation.parse_datetime(text, "last_dose_at")
        except rules.RuleError as exc:
            raise ValidationError(f"value '{exc.value}': {exc.message}") from exc
        if parsed is None:
            raise ValidationError("a last-dose time is required")
        return parsed


@dataclass
class LevelAction:
    """A per-trough form open in the levels table: ``kind`` is "last_dose", "error" or
    "fit" (leave it out of the model fit, or take it back: views/forecast.py)."""

    kind: str
    level: TroughLevel
    form: forms.Form


# --- rendering ------------------------------------------------------------------------------


def _page_context(
    request: HttpRequest,
    patient: Patient,
    state: PageState,
    *,
    add_form: TroughEntryForm | None = None,
    action: LevelAction | None = None,
    notice: str = "",
    record: RecordFormView | None = None,
    ack_error: str = "",
    model_error: str = "",
) -> dict:
    thresholds = config.load_thresholds()
    assessment = services.patient_assess(
        patient, window_days=state.window_days(thresholds), thresholds=thresholds
    )
    target = assessment.current_target
    regimen = assessment.current_regimen
    can_add = request.user.has_perm("monitoring.add_troughlevel")
    forecast = services.patient_forecast(patient, assessment)
    levels_total = len(assessment.levels)
    limit = None
    if not state.all_levels and levels_total > LEVELS_SHOWN:
        limit = LEVELS_SHOWN
        newest = assessment.levels[-LEVELS_SHOWN:]
        if action is not None and all(a.level.pk != action.level.pk for a in newest):
            limit = None  # a form open on an older trough: keep its row on the page
    # Only the rows shown are built (the newest 50 of ~500 on a 10-year page).
    shown = level_rows(
        assessment, state.unit, forecast.residuals if forecast else None, limit=limit
    )
    return {
        "patient": patient,
        "state": state,
        "query": state.query(),
        "unit_links": [(unit, state.query(unit=unit), unit == state.unit) for unit in charts.UNITS],
        "window_links": [
            (months, state.query(window=months), months == state.window_months)
            for months in WINDOW_MONTHS
        ],
        "assessment": assessment,
        "age": rules.age_in_years(patient.birth_date, timezone.localdate()),
        "target": target,
        "target_band": _band(target.low, target.high, rules.CANONICAL_UNIT),
        "target_band_nmol": _band(target.low, target.high, rules.NMOL_UNIT),
        "target_evidence": _evidence_label(target.evidence),
        # The first assignment usually dates from the import (the birth date): only a later
        # phase has a start worth showing.
        "target_since": (
            target.effective_from
            if len(assessment.records.targets) > 1
            and target.effective_from != assessment.records.targets[0].effective_from
            else None
        ),
        "regimen": regimen,
        "regimen_dose": _dose(regimen.daily_dose_mg) if regimen else "",
        "duration": duration_text(patient, assessment, thresholds),
        "duration_code": assessment.duration.code,
        "required_months": _dose(thresholds.required_months),
        "steady_hours": _dose(thresholds.steady_state_hours),
        "alerts": alert_items(assessment, state.unit),
        "dose_suggestion": dose_suggestion_text(assessment),
        "next_action": action_text(assessment.action),
        "next_due": assessment.next_due,
        "due_state": followup.due_state(assessment.next_due, timezone.localdate(assessment.now)),
        "post_change_days": thresholds.post_change_trough_days,
        "overdue_days": thresholds.overdue_days,
        "metrics": metrics_view(assessment, state, thresholds),
        "figure_script": charts.figure_script(
            charts.figure_json(
                charts.trough_figure(assessment, unit=state.unit, forecast=forecast)
            ),
            "trough-figure",
        ),
        "forecast_card": forecast_card(patient, forecast, timezone.localdate(assessment.now)),
        "can_exclude": request.user.has_perm("monitoring.record_clinical_decision"),
        "model_error": model_error,
        "chart_summary": charts.chart_summary(assessment, unit=state.unit),
        "rows": shown,
        "levels_total": levels_total,
        "levels_hidden": levels_total - len(shown),
        "levels_limit": LEVELS_SHOWN,
        "all_levels_query": state.query(all_levels=True),
        "newest_levels_query": state.query(all_levels=False),
        "regimen_rows": regimen_rows(assessment),
        "drug_rows": drug_rows(assessment),
        "add_form": add_form
        if add_form is not None
        else (TroughEntryForm(patient=patient, auto_id=ADD_FORM_ID) if can_add else None),
        "action": action,
        "notice": notice,
        "record_forms": record_forms(request.user, patient, assessment, record),
        "kidney": kidney_summary(assessment),
        "review": review_status(assessment, _signoff(patient)),
        "can_acknowledge": request.user.has_perm("monitoring.record_clinical_decision"),
        "ack_error": ack_error,
    }


def _signoff(patient: Patient) -> ReportSignoff | None:
    """The report's sign-off: joined with the patient on the page view, a query otherwise."""
    try:
        return patient.report_signoff
    except ReportSignoff.DoesNotExist:
        return None


def _render(
    request: HttpRequest,
    patient: Patient,
    state: PageState,
    *,
    partial: str = "",
    status: int = 200,
    **extra,
) -> HttpResponse:
    context = _page_context(request, patient, state, **extra)
    template = f"{TEMPLATE}#{partial}" if partial else TEMPLATE
    return render(request, template, context, status=status)


def _fragment_wanted(request: HttpRequest) -> bool:
    # A history restore (back button after the cache expired) needs the whole page.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _patient_url(patient: Patient, state: PageState, anchor: str = "") -> str:
    url = reverse("monitoring:patient", args=[patient.pk]) + state.query()
    return url + (f"#{anchor}" if anchor else "")


def _after_write(
    request: HttpRequest, patient: Patient, state: PageState, notice: str, anchor: str
) -> HttpResponse:
    """htmx: the updated live fragment. Plain POST: back to the page (post/redirect/get)."""
    if request.htmx:
        return _render(request, patient, state, partial="live", notice=notice)
    messages.success(request, notice)
    return redirect(_patient_url(patient, state, anchor))


def _level_of(patient: Patient, level_pk: int) -> TroughLevel:
    level = get_object_or_404(TroughLevel, pk=level_pk, patient=patient)
    level.patient = patient  # already loaded: saves a query in the services
    return level


def _row_form_id(level: TroughLevel) -> str:
    return f"level{level.pk}_%s"


def _describe(level: TroughLevel) -> str:
    when = timezone.localtime(level.collected_at).strftime("%Y-%m-%d %H:%M")
    return f"{level.reported_value} {level.reported_unit} collected {when}"


# --- views ----------------------------------------------------------------------------------


@require_safe
@permission_required("monitoring.view_patient", raise_exception=True)
@logs_access("patient")
@vary_on_headers("HX-Request")
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(
        Patient.objects.select_related("report_signoff__reviewed_by", "forecast"), pk=pk
    )
    state = PageState.from_request(request)
    partial = "live" if _fragment_wanted(request) else ""
    return _render(request, patient, state, partial=partial)


@require_http_methods(["GET", "POST"])
@permission_required(
    ["monitoring.view_patient", "monitoring.add_troughlevel"], raise_exception=True
)
@logs_access("patient")  # its answers show the patient's troughs
def level_add(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    state = PageState.from_request(request)
    if request.method == "GET":
        return redirect(_patient_url(patient, state, "add-trough"))
    form = TroughEntryForm(request.POST, patient=patient, auto_id=ADD_FORM_ID)
    if not form.is_valid():
        if request.htmx:
            response = _render_add_form(request, patient, state, form)
            return reswap(retarget(response, "#add-trough"), "outerHTML")
        return _render(request, patient, state, add_form=form, status=422)
    level = services.level_add(patient=patient, level=form.save(commit=False), user=request.user)
    return _after_write(
        request, patient, state, f"Trough added: {_describe(level)}.", f"level-{level.pk}"
    )


def _render_add_form(
    request: HttpRequest, patient: Patient, state: PageState, form: TroughEntryForm
) -> HttpResponse:
    context = {"patient": patient, "query": state.query(), "add_form": form}
    return render(request, f"{TEMPLATE}#add-trough", context)


@require_http_methods(["GET", "POST"])
@permission_required(
    ["monitoring.view_patient", "monitoring.change_troughlevel"], raise_exception=True
)
@logs_access("patient")  # its answers show the patient's troughs
def level_last_dose(request: HttpRequest, pk: int, level_pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    level = _level_of(patient, level_pk)
    state = PageState.from_request(request)
    if request.method == "GET":
        return _action_form(
            request,
            patient,
            state,
            LevelAction("last_dose", level, LastDoseForm(auto_id=_row_form_id(level))),
        )
    form = LastDoseForm(request.POST, auto_id=_row_form_id(level))
    if form.is_valid():
        try:
            services.level_add_last_dose(
                level=level, last_dose_at=form.cleaned_data["last_dose_at"], user=request.user
            )
        except rules.RuleError as exc:
            # Quote the time as the user typed it, not our ISO reformatting of it.
            typed = form.cleaned_data["last_dose_at"].isoformat()
            value = request.POST.get("last_dose_at", "") if exc.value == typed else exc.value
            form.add_error("last_dose_at", f"value '{value}': {exc.message}")
    if not form.is_valid():
        return _action_form(
            request, patient, state, LevelAction("last_dose", level, form), status=422
        )
    return _after_write(
        request,
        patient,
        state,
        f"Last-dose time added to the trough {_describe(level)}.",
        f"level-{level.pk}",
    )


@require_http_methods(["GET", "POST"])
@permission_required(
    ["monitoring.view_patient", "monitoring.change_troughlevel"], raise_exception=True
)
@logs_access("patient")  # its answers show the patient's troughs
def level_mark_error(request: HttpRequest, pk: int, level_pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    level = _level_of(patient, level_pk)
    state = PageState.from_request(request)
    if request.method == "GET":
        return _action_form(
            request,
            patient,
            state,
            LevelAction("error", level, ErrorReasonForm(auto_id=_row_form_id(level))),
        )
    form = ErrorReasonForm(request.POST, auto_id=_row_form_id(level))
    if form.is_valid():
        if level.in_error:
            form.add_error("reason", "this trough is already marked entered in error")
        else:
            try:
                services.record_mark_in_error(
                    level, reason=form.cleaned_data["reason"], user=request.user
                )
            except rules.RuleError as exc:
                form.add_error("reason", exc.message)
    if not form.is_valid():
        return _action_form(request, patient, state, LevelAction("error", level, form), status=422)
    return _after_write(
        request,
        patient,
        state,
        f"Trough {_describe(level)} marked entered in error.",
        f"level-{level.pk}",
    )


def _action_form(
    request: HttpRequest,
    patient: Patient,
    state: PageState,
    action: LevelAction,
    *,
    status: int = 200,
) -> HttpResponse:
    """The per-trough form: with htmx only the form, into the row's action cell (a 200, so
    htmx swaps it); without JavaScript the whole page with the form open in its row."""
    if request.htmx:
        context = {"patient": patient, "query": state.query(), "action": action}
        response = render(request, f"{TEMPLATE}#level-action", context)
        if request.method == "POST":
            target = f"#level-{action.level.pk}-action"
            response = reswap(retarget(response, target), "innerHTML")
        return response
    return _render(request, patient, state, action=action, status=status)
