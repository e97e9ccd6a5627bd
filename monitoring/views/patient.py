"""The patient page: header, alerts, trough chart, levels table, metrics, regimens, drugs.

Thin views: fetch the patient, judge it (``services.patient_assess``), shape rows for the
template, render. Writes (add a trough, add a missing last-dose time, mark a trough entered
in error) go through ``services`` and re-judge the patient; with htmx they answer with the
updated ``live`` fragment (alerts, metrics, chart and levels table), without JavaScript they
redirect back to the page. Validation errors come back next to the field.
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
from ..alert_text import ACK_LABELS, action_text, alert_texts
from ..assessment import LevelAssessment, PatientAssessment
from ..audit import logs_access
from ..forecast_display import forecast_card
from ..forms import ErrorReasonForm, TroughLevelForm
from ..kidney import kidney_summary
from ..models import (
    AlertAcknowledgement,
    ConcomitantDrug,
    EvidenceTag,
    InteractionDirection,
    LevelStatus,
    Patient,
    RecordStatus,
    Regimen,
    ReportSignoff,
    TroughLevel,
)
from ..review import review_status
from .record_forms import RecordFormView, record_forms

TEMPLATE = "monitoring/patient.html"
WINDOW_MONTHS = (3, 6, 12, 24)
DEFAULT_WINDOW_MONTHS = 12
DEFAULT_UNIT = rules.CANONICAL_UNIT
# The levels table shows the newest troughs; the chart always draws them all. Ten years of
# weekly troughs made a page of half a megabyte that took most of a second to render, and
# staff act on the recent ones: "show all" is one click away.
LEVELS_SHOWN = 50
FAR_FROM_MODEL_IWRES = 3  # spec §5: a residual this large is pointed out
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
ADD_FORM_ID = "add_%s"  # element ids: the add form and the row forms share field names

# Presentation only: which badge style shows a verdict (the verdicts come from the rules).
RANGE_BADGE = {
    rules.IN_RANGE: "ok",
    rules.BELOW: "warning",
    rules.ABOVE: "warning",
    rules.INDETERMINATE: "info",
}
RANGE_LABEL = {
    rules.IN_RANGE: "in range",
    rules.BELOW: "below",
    rules.ABOVE: "above",
    rules.INDETERMINATE: "indeterminate",
}
TIMING_BADGE = {
    rules.VALID: "ok",
    rules.BORDERLINE: "info",
    rules.MISTIMED: "warning",
    rules.UNKNOWN: "warning",
}
SEVERITY_BADGE = {rules.WARNING: "warning", rules.CAUTION: "info", rules.INFORMATION: "info"}
TIMING_ALERTS = (rules.C12H_TIMING_MISSING, rules.SAMPLE_MISTIMED, rules.NOT_STEADY_STATE)


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


# --- rows for the template (plain values: no logic or queries in the template) -------------


def _dose(mg: Decimal) -> str:
    """3.00 → "3", 4.50 → "4.5", 10 → "10" (never "1E+1")."""
    return f"{Decimal(mg).normalize():f}"


def _value_in(value_ng_ml: Decimal, unit: str) -> Decimal:
    value = rules.ng_ml_to_nmol_l(value_ng_ml) if unit == rules.NMOL_UNIT else value_ng_ml
    return rules.round_to(value, 2)


def _band(low: Decimal, high: Decimal, unit: str, *, with_unit: bool = True) -> str:
    band = f"{_value_in(low, unit)}–{_value_in(high, unit)}"
    return f"{band} {unit}" if with_unit else band


def _months(value: Decimal | None) -> str:
    return "" if value is None else f"{rules.round_to(value, 1)}"


def _percent(value: Decimal | None) -> str:
    return "" if value is None else f"{rules.round_to(value, 1)} %"


def _evidence_label(tag: str) -> str:
    return EvidenceTag(tag).label if tag in EvidenceTag.values else tag


@dataclass
class LevelRow:
    a: LevelAssessment
    value: str
    range_code: str
    range_label: str
    range_badge: str
    timing_code: str
    timing_badge: str
    timing_hours: str
    timing_text: str
    steady_state: bool
    assay: str
    assay_change: str
    target: str
    can_add_last_dose: bool
    can_mark_error: bool
    predicted: str = ""  # the model's individual prediction at this trough
    far_from_model: bool = False  # |IWRES| > 3: often a wrong time or a missed dose

    @property
    def level(self) -> TroughLevel:
        return self.a.level


def level_rows(
    assessment: PatientAssessment, unit: str, residuals: dict | None = None
) -> list[LevelRow]:
    """Every trough, newest first, entered-in-error ones included (shown struck through);
    with the stored forecast's ``residuals``, the model's prediction beside each trough."""
    changes = charts.assay_change_notes(assessment)
    rows = []
    for a in reversed(assessment.levels):
        level = a.level
        hours = ""
        if a.timing.hours is not None:
            hours = f"{rules.round_to(a.timing.hours, 1)} h"
            if a.timing.nominal_hours is not None:
                hours += f" (C{int(a.timing.nominal_hours)}h)"
        rows.append(
            LevelRow(
                a=a,
                value=f"{level.comparator}{_value_in(level.value_ng_ml, unit)}",
                range_code=a.range,
                range_label=RANGE_LABEL[a.range],
                range_badge=RANGE_BADGE[a.range],
                timing_code=a.timing.code,
                timing_badge=TIMING_BADGE[a.timing.code],
                timing_hours=hours,
                timing_text=rules.timing_explanation(a.timing),
                steady_state=a.steady_state,
                assay=level.get_assay_display() if level.assay else "not recorded",
                assay_change=changes.get(id(a), ""),
                target=_band(a.target.low, a.target.high, unit, with_unit=False),
                can_add_last_dose=not level.in_error and level.last_dose_at is None,
                can_mark_error=not level.in_error,
                **_residual_fields((residuals or {}).get(str(level.pk)), unit),
            )
        )
    return rows


def _residual_fields(residual: list | None, unit: str) -> dict:
    if residual is None:
        return {}
    ipred, iwres = residual
    predicted = _value_in(Decimal(str(round(ipred, 4))), unit)
    return {
        "predicted": f"{rules.round_to(predicted, 2)}",
        "far_from_model": abs(iwres) > FAR_FROM_MODEL_IWRES,
    }


@dataclass
class AlertItem:
    code: str
    label: str
    severity: str
    badge: str
    explanation: str
    evidence: str
    action: str
    details: list[str]
    ack: AlertAcknowledgement | None = None
    ack_label: str = ""


def alert_items(assessment: PatientAssessment, unit: str) -> list[AlertItem]:
    """Each alert in the words of ``alert_text``, with the patient's own facts behind it."""
    latest = assessment.latest
    metrics = assessment.metrics
    items = []
    for text in alert_texts(assessment.alerts):
        details: list[str] = []
        if latest is not None and text.code in TIMING_ALERTS:
            when = timezone.localtime(latest.level.collected_at).strftime("%Y-%m-%d %H:%M")
            if text.code == rules.NOT_STEADY_STATE:
                details.append(f"Latest trough {when}: drawn before steady state.")
            else:
                details.append(f"Latest trough {when}: {rules.timing_explanation(latest.timing)}")
        if latest is not None and text.code in (rules.TROUGH_BELOW_RANGE, rules.TROUGH_ABOVE_RANGE):
            level = latest.level
            details.append(
                f"Latest trough {level.comparator}{_value_in(level.value_ng_ml, unit)} {unit} "
                f"on {timezone.localdate(level.collected_at)}; target "
                f"{_band(latest.target.low, latest.target.high, unit)}."
            )
        if text.code == rules.INTERACTION_RECHECK:
            for event in assessment.interaction_events:
                verb = "started" if event.kind == "start" else "stopped"
                details.append(
                    f"{event.drug} {verb} {event.on} ({event.direction} tacrolimus levels): "
                    f"expect the level to {rules.expected_level_change(event)}."
                )
        if text.code == rules.HIGH_VARIABILITY and metrics.cv_percent is not None:
            details.append(f"CV {_percent(metrics.cv_percent)} (n = {metrics.cv_n}).")
        if text.code == rules.LEVEL_OVERDUE:
            details.append(
                f"Latest trough {timezone.localdate(latest.level.collected_at)}."
                if latest is not None
                else "No trough recorded."
            )
        if text.code == rules.NEPHROTOXICITY_WATCH and assessment.baseline_creatinine:
            details.append(
                f"Creatinine {rules.round_to(assessment.latest_creatinine, 2)} mg/dL against "
                f"a baseline of {rules.round_to(assessment.baseline_creatinine, 2)} mg/dL."
            )
        if text.code == rules.PRE_EXISTING_CKD and assessment.baseline_egfr is not None:
            details.append(
                f"Baseline eGFR {rules.round_to(assessment.baseline_egfr, 0)} mL/min/1.73m²."
            )
        items.append(
            AlertItem(
                code=text.code,
                label=text.label,
                severity=text.severity,
                badge=SEVERITY_BADGE.get(text.severity, "info"),
                explanation=text.explanation,
                evidence=text.evidence_label,
                action=text.action,
                details=details,
                ack=assessment.acknowledged.get(text.code),
                ack_label=ACK_LABELS.get(text.code, ""),
            )
        )
    return items


def dose_suggestion_text(assessment: PatientAssessment) -> str:
    """Decision support, never an order: "Consider 4.5 mg/day (currently 3 mg/day); ..."."""
    if assessment.dose_suggestion is None or assessment.current_regimen is None:
        return ""
    return (
        f"Consider {_dose(assessment.dose_suggestion)} mg/day (currently "
        f"{_dose(assessment.current_regimen.daily_dose_mg)} mg/day); re-check the trough in "
        "1–2 weeks at steady state."
    )


def duration_text(
    patient: Patient, assessment: PatientAssessment, thresholds: rules.Thresholds
) -> str:
    """ "N.N of 36 months since induction start 2024-09-01" (or the other anchor, named)."""
    duration = assessment.duration
    required = _dose(thresholds.required_months)
    if duration.months is None:
        return f"No therapy start recorded: the {required}-month clock cannot run."
    if patient.anchor_date:
        since = f"since {patient.anchor_reason or 'anchor'} {patient.anchor_date}"
    else:
        since = f"since induction start {patient.therapy_start}"
    text = f"{_months(duration.months)} of {required} months {since}"
    if patient.therapy_end and duration.planned:
        text += (
            f"; the planned end gives {_months(duration.total_months)} "
            f"(planned end of immunosuppression {patient.therapy_end})"
        )
    elif patient.therapy_end:
        text += (
            f"; end of immunosuppression {patient.therapy_end} "
            f"({_months(duration.total_months)} months in total)"
        )
    return text


@dataclass
class RegimenRow:
    regimen: Regimen
    change: str
    current: bool
    dose: str
    sampling: str


def regimen_rows(assessment: PatientAssessment) -> list[RegimenRow]:
    records = assessment.records
    active = sorted(
        (r for r in records.regimens if r.status == RecordStatus.ACTIVE),
        key=lambda r: r.effective_at,
    )
    labels = {id(r): label for r, label in charts.dose_changes(active)}
    current = assessment.current_regimen
    rows = [
        RegimenRow(
            regimen=r,
            change=(
                labels.get(id(r), "no change (repeated record)")
                if r.status == RecordStatus.ACTIVE
                else ""
            ),
            current=r is current,
            dose=_dose(r.daily_dose_mg),
            sampling=_dose(r.nominal_hours),
        )
        for r in records.regimens
    ]
    return sorted(rows, key=lambda row: row.regimen.effective_at, reverse=True)


@dataclass
class DrugRow:
    drug: ConcomitantDrug
    state: str
    badges: list[tuple[str, str]]  # (style, text)


def drug_rows(assessment: PatientAssessment) -> list[DrugRow]:
    active_ids = {id(d) for d in assessment.active_drugs}
    today = timezone.localdate(assessment.now)
    rows = []
    for drug in sorted(assessment.records.drugs, key=lambda d: d.started_on, reverse=True):
        if drug.status == RecordStatus.ENTERED_IN_ERROR:
            state = "entered in error"
        elif id(drug) in active_ids:
            state = "active"
        elif drug.started_on > today:
            state = "planned"
        else:
            state = "stopped"
        badges = []
        entry = drug.catalog
        if entry is None:
            badges.append(("plain", "not in the catalogue"))
        else:
            strength = f" ({entry.get_strength_display().lower()})" if entry.strength else ""
            if entry.interaction == InteractionDirection.RAISES:
                badges.append(("warning", f"raises tacrolimus level{strength}"))
            elif entry.interaction == InteractionDirection.LOWERS:
                badges.append(("warning", f"lowers tacrolimus level{strength}"))
            if entry.immunosuppressant:
                badges.append(("info", "immunosuppressant"))
            if entry.calcineurin_inhibitor:
                badges.append(("danger", "CNI (calcineurin inhibitor)"))
        rows.append(DrugRow(drug, state, badges))
    return rows


@dataclass
class MetricsView:
    window_months: int
    window_days: int
    n_qualifying: int
    percent_in_range: str
    ttr: str
    cv: str
    cv_n: int
    cv_min_n: int
    cv_high: str
    cd_ratio: str
    cd_fast: bool
    cd_threshold: str
    ttr_gap_days: int


def metrics_view(
    assessment: PatientAssessment, state: PageState, thresholds: rules.Thresholds
) -> MetricsView:
    m = assessment.metrics
    return MetricsView(
        window_months=state.window_months,
        window_days=m.window_days,
        n_qualifying=m.n_qualifying,
        percent_in_range=_percent(m.percent_in_range),
        ttr=_percent(m.ttr_percent),
        cv=_percent(m.cv_percent) if m.cv_n >= thresholds.cv_min_n else "",
        cv_n=m.cv_n,
        cv_min_n=thresholds.cv_min_n,
        cv_high=_dose(thresholds.cv_high_percent),
        cd_ratio="" if m.cd_ratio is None else f"{rules.round_to(m.cd_ratio, 2)}",
        cd_fast=m.cd_fast_metaboliser,
        cd_threshold=f"{rules.round_to(thresholds.cd_fast_metaboliser, 1)}",
        ttr_gap_days=thresholds.ttr_max_gap_days,
    )


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
    rows = level_rows(assessment, state.unit, forecast.residuals if forecast else None)
    shown = rows
    if not state.all_levels and len(rows) > LEVELS_SHOWN:
        shown = rows[:LEVELS_SHOWN]
        if action is not None and all(r.level.pk != action.level.pk for r in shown):
            shown = rows  # a form open on an older trough: keep its row on the page
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
        "figure": charts.figure_json(
            charts.trough_figure(assessment, unit=state.unit, forecast=forecast)
        ),
        "forecast_card": forecast_card(patient, forecast, timezone.localdate(assessment.now)),
        "can_exclude": request.user.has_perm("monitoring.record_clinical_decision"),
        "model_error": model_error,
        "chart_summary": charts.chart_summary(assessment, unit=state.unit),
        "rows": shown,
        "levels_total": len(rows),
        "levels_hidden": len(rows) - len(shown),
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
        Patient.objects.select_related("report_signoff__reviewed_by"), pk=pk
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
