"""The printable patient report: one patient, or every patient on the worklist page.

A report is a plain HTML page made for paper: ``static/css/report.css`` sets the A4 page, and
CSS page-margin boxes print the patient's MRN and name at the top of every page and
"Page X of Y" at the bottom (Chromium 131+, Safari 18.2+). The margin text differs per
patient, so each report is a CSS named page (``page: report-<pk>``) whose ``@page`` rule the
view writes into a ``<style>`` element, every character escaped (``css_string``).

The chart is ``charts_report.report_figure``: fixed size, black and white. The clinician's
interpretation and sign-off is a ``ReportSignoff`` (one per patient, history kept);
only users with ``monitoring.sign_off_report`` (the clinician group) may save it.

The batch print takes the worklist's query string (filters and page) and prints the
patients listed on that worklist page in one document, each report starting on a new page,
in a fixed number of queries whatever the number of patients.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods, require_safe

from .. import charts, charts_report, config, rules, services, validation
from ..assessment import PatientAssessment, with_metrics_window
from ..audit import log_bulk_access, logs_access
from ..forecast_display import forecast_card
from ..kidney import KidneySummary, kidney_summary
from ..middleware import FLUSH_EACH_CHUNK
from ..models import Patient, RecordStatus, ReportSignoff
from ..review import added_since, person
from ..selectors import joined_or
from . import worklist as worklist_views
from .patient import DEFAULT_WINDOW_MONTHS, PageState
from .patient_display import (
    RANGE_LABEL,
    _band,
    _dose,
    _evidence_label,
    _value_in,
    alert_items,
    dose_suggestion_text,
    drug_rows,
    duration_text,
    metrics_view,
    regimen_rows,
)

TEMPLATE = "monitoring/report.html"
BATCH_TEMPLATE = "monitoring/report_batch.html"
BODY_TEMPLATE = "monitoring/report_body.html"
PERIOD_MONTHS = (3, 6, 12, 24, 36)
PERIOD_ALL = "all"
DEFAULT_PERIOD_MONTHS = DEFAULT_WINDOW_MONTHS  # 12, as the patient page's metrics window
INTERPRETATION_MAX = ReportSignoff._meta.get_field("interpretation").max_length

# The literature behind the rules (clinical-rules.md); printed at the end of every report.
SOURCES = [
    (
        "G",
        "KDIGO 2024 Clinical Practice Guideline for the management of lupus nephritis: "
        "tacrolimus trough 4–6 ng/mL in maintenance, C12h sampling, at least 36 months of "
        "immunosuppression, nephrotoxicity, over-immunosuppression and interactions (as "
        "received by the project; confirm against the primary text).",
    ),
    (
        "L",
        "Leung EKY et al. Clin Chim Acta 2014;431:270: immunoassays read higher than "
        "LC-MS/MS (assay changes are marked).",
    ),
    ("L", "Uchida K et al. Yakugaku Zasshi 2010;130:113: C24h sampling for once-daily tacrolimus."),
    (
        "L",
        "Rosendaal FR et al. Thromb Haemost 1993;69:236: time in therapeutic range by "
        "linear interpolation.",
    ),
    (
        "L",
        "Yin S et al. Br J Clin Pharmacol 2021, doi:10.1111/bcp.14876: intra-patient "
        "variability, CV above 30 %.",
    ),
    (
        "L",
        "Thölking G et al. 2025: C/D ratio ≤ 1.0 suggests fast metabolism (transplant "
        "cohort, immediate-release tacrolimus).",
    ),
    (
        "L",
        "Inker LA et al. N Engl J Med 2021;385:1737 (CKD-EPI 2021); Schwartz GJ et al. "
        "J Am Soc Nephrol 2009;20:629 (bedside CKiD).",
    ),
    (
        "D",
        "Design defaults of this project (timing windows, steady state 72 h, overdue "
        "90 days, ...): configurable, shown with their source in the back office.",
    ),
]
DISCLAIMER = (
    "Decision support, not a prescription. This report flags; it never prescribes: a dose "
    "suggestion is a proportional estimate worded \u201cconsider\u201d, and the prescriber "
    "decides. Verify every flag against the source results before acting on it. Evidence "
    "tags: [G] guideline as received by the project (confirm against the primary text), "
    "[L] published literature, [D] design default of this project."
)


# --- the period ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The report's period: the last N months (default 12) or every result (``None``)."""

    months: int | None = DEFAULT_PERIOD_MONTHS

    @classmethod
    def from_request(cls, request: HttpRequest) -> Period:
        """An unknown value falls back to the default: a view choice, not data."""
        raw = request.GET.get("period", "").strip().lower()
        if raw == PERIOD_ALL:
            return cls(None)
        if raw.isdigit() and int(raw) in PERIOD_MONTHS:
            return cls(int(raw))
        return cls()

    @property
    def value(self) -> str:
        return PERIOD_ALL if self.months is None else str(self.months)

    def choices(self) -> list[tuple[str, str, bool]]:
        """(value, label, selected) for the period <select>."""
        options = [(str(m), f"Last {m} months", m == self.months) for m in PERIOD_MONTHS]
        return options + [(PERIOD_ALL, "All results", self.months is None)]

    def window_days(self, assessment: PatientAssessment, thresholds: rules.Thresholds) -> int:
        """Days back from the assessment's end; "all" reaches the first record."""
        if self.months is not None:
            days = Decimal(self.months) * thresholds.days_per_month
            return int(days.to_integral_value(rounding=ROUND_HALF_UP))
        records = assessment.records
        moments = [lv.collected_at for lv in records.levels]
        moments += [r.effective_at for r in records.regimens]
        if not moments:
            return 1
        return max(1, (assessment.now - min(moments)).days + 1)


# --- what a report shows -------------------------------------------------------------------


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


@dataclass
class ReportLevelRow:
    collected_at: datetime
    last_dose_at: datetime | None
    hours: str
    ng_ml: str
    nmol_l: str
    timing_code: str
    timing_label: str
    timing_text: str
    steady_state: bool
    range_code: str
    range_label: str
    target: str
    assay: str
    assay_change: str
    status: str
    status_code: str
    in_error: bool
    error_reason: str
    accession: str


def report_level_rows(
    assessment: PatientAssessment, start: datetime | None
) -> list[ReportLevelRow]:
    """The troughs of the period, newest first, in both units; entered-in-error results
    stay (struck through, with the reason), as on the patient page."""
    changes = charts.assay_change_notes(assessment)
    rows = []
    for a in reversed(assessment.levels):
        level = a.level
        if start is not None and level.collected_at <= start:
            continue
        hours = "unknown"
        if a.timing.hours is not None:
            hours = f"{rules.round_to(a.timing.hours, 1)} h"
        if a.timing.nominal_hours is not None:
            hours += f" (C{int(a.timing.nominal_hours)}h)"
        label = a.timing.code
        if a.timing.code in (rules.BORDERLINE, rules.MISTIMED) and a.timing.direction:
            label += f", {a.timing.direction.lower()}"
        rows.append(
            ReportLevelRow(
                collected_at=level.collected_at,
                last_dose_at=level.last_dose_at,
                hours=hours,
                ng_ml=f"{level.comparator}{_value_in(level.value_ng_ml, rules.CANONICAL_UNIT)}",
                nmol_l=f"{level.comparator}{_value_in(level.value_ng_ml, rules.NMOL_UNIT)}",
                timing_code=a.timing.code,
                timing_label=label,
                timing_text=(
                    "" if a.timing.code == rules.VALID else rules.timing_explanation(a.timing)
                ),
                steady_state=a.steady_state,
                range_code=a.range,
                range_label=RANGE_LABEL[a.range],
                target=_band(a.target.low, a.target.high, rules.CANONICAL_UNIT, with_unit=False),
                assay=level.get_assay_display() if level.assay else "not recorded",
                assay_change=changes.get(id(a), ""),
                status=level.get_status_display(),
                status_code=level.status,
                in_error=level.in_error,
                error_reason=level.error_reason,
                accession=level.accession,
            )
        )
    return rows


def _in_period_regimens(assessment: PatientAssessment, start: datetime | None) -> list:
    """Dose history: changes in the period, and the regimen already in force at its start."""
    rows = regimen_rows(assessment)
    if start is None:
        return rows
    before = [
        r
        for r in assessment.records.regimens
        if r.status == RecordStatus.ACTIVE and r.effective_at <= start
    ]
    in_force = max(before, key=lambda r: r.effective_at) if before else None
    return [row for row in rows if row.regimen.effective_at > start or row.regimen is in_force]


def _in_period_drugs(assessment: PatientAssessment, start: datetime | None) -> list:
    rows = drug_rows(assessment)
    if start is None:
        return rows
    first_day = timezone.localdate(start)
    return [row for row in rows if row.drug.stopped_on is None or row.drug.stopped_on >= first_day]


@dataclass
class Report:
    """Everything one patient's report shows, as plain values for the template."""

    patient: Patient
    assessment: PatientAssessment
    period: Period
    period_start: datetime | None
    period_text: str
    age: int
    target: object
    target_band: str
    target_band_nmol: str
    target_evidence: str
    target_since: datetime | None
    regimen: object
    regimen_dose: str
    duration: str
    duration_code: str
    required_months: str
    steady_hours: str
    alerts: list
    dose_suggestion: str
    metrics: object
    figure: dict
    figure_id: str
    chart_summary: str
    rows: list[ReportLevelRow]
    older_levels: int
    regimen_rows: list
    drug_rows: list
    signoff: ReportSignoff | None
    kidney: KidneySummary | None = None
    forecast: object = None  # forecast_display.ForecastCard, or None (forecasts off)
    signoff_by: str = ""
    signoff_at: str = ""
    added_since_signoff: list[str] = field(default_factory=list)

    @property
    def added_since_pronoun(self) -> str:
        """ "it" for one record recorded after the sign-off, "them" for more."""
        one = len(self.added_since_signoff) == 1 and self.added_since_signoff[0].startswith("1 ")
        return "it" if one else "them"

    @property
    def page_name(self) -> str:
        return page_name(self.patient)


def page_name(patient: Patient) -> str:
    """The CSS named page of a patient's report (its page-margin text)."""
    return f"report-{patient.pk}"


def build_report(
    assessment: PatientAssessment,
    period: Period,
    thresholds: rules.Thresholds,
    signoff: ReportSignoff | None,
) -> Report:
    patient = assessment.records.patient
    window_days = period.window_days(assessment, thresholds)
    assessment = with_metrics_window(assessment, window_days, thresholds)
    start = None if period.months is None else assessment.now - timedelta(days=window_days)
    today = timezone.localdate(assessment.now)
    if start is None:
        period_text = "all results"
    else:
        period_text = (
            f"last {period.months} months ({timezone.localdate(start) + timedelta(days=1)} "
            f"to {today})"
        )
    target = assessment.current_target
    regimen = assessment.current_regimen
    rows = report_level_rows(assessment, start)
    stored = services.patient_forecast(patient, assessment)
    state = PageState(window_months=period.months or 0)
    report = Report(
        patient=patient,
        assessment=assessment,
        period=period,
        period_start=start,
        period_text=period_text,
        age=rules.age_in_years(patient.birth_date, today),
        target=target,
        target_band=_band(target.low, target.high, rules.CANONICAL_UNIT),
        target_band_nmol=_band(target.low, target.high, rules.NMOL_UNIT),
        target_evidence=_evidence_label(target.evidence),
        target_since=(
            target.effective_from
            if len(assessment.records.targets) > 1
            and target.effective_from != assessment.records.targets[0].effective_from
            else None
        ),
        regimen=regimen,
        regimen_dose=_dose(regimen.daily_dose_mg) if regimen else "",
        duration=duration_text(patient, assessment, thresholds),
        duration_code=assessment.duration.code,
        required_months=_dose(thresholds.required_months),
        steady_hours=_dose(thresholds.steady_state_hours),
        alerts=alert_items(assessment, rules.CANONICAL_UNIT),
        dose_suggestion=dose_suggestion_text(assessment),
        metrics=metrics_view(assessment, state, thresholds),
        figure=charts.figure_json(
            charts_report.report_figure(assessment, start=start, forecast=stored)
        ),
        figure_id=f"report-figure-{patient.pk}",
        # The sentence describes the troughs of the period, as the chart does.
        chart_summary=charts.chart_summary(
            replace(
                assessment,
                levels=[
                    a for a in assessment.levels if start is None or a.level.collected_at > start
                ],
            )
        ),
        rows=rows,
        kidney=kidney_summary(assessment),
        older_levels=sum(1 for lv in assessment.records.levels if not lv.in_error)
        - sum(1 for row in rows if not row.in_error),
        regimen_rows=_in_period_regimens(assessment, start),
        drug_rows=_in_period_drugs(assessment, start),
        signoff=signoff,
    )
    if stored is not None:
        report.forecast = forecast_card(patient, stored, today)
    if signoff is not None:
        report.signoff_by = person(signoff.reviewed_by)
        report.signoff_at = _local(signoff.reviewed_at)
        report.added_since_signoff = added_since(assessment, signoff.reviewed_at)
    return report


# --- the per-patient page margins ------------------------------------------------------------


def css_string(text: str) -> str:
    """``text`` as a CSS string literal that cannot end the string, the rule or the
    <style> element: anything but letters, digits, spaces and plain punctuation becomes a
    6-digit hex escape."""
    safe = set(" ,.-:/()·")
    out = []
    for char in text:
        if (char.isalnum() and char.isprintable()) or char in safe:
            out.append(char)
        else:
            out.append(f"\\{ord(char):06x}")
    return '"' + "".join(out) + '"'


def page_css(patients: list[Patient], printed: str) -> SafeString:
    """The @page rules that carry per-document and per-patient text into the page margins.
    They need the patients only (not their reports), so a batch can send them first."""
    rules_css = [f"@page {{ @bottom-left {{ content: {css_string(printed)}; }} }}"]
    for n, p in enumerate(patients, start=1):
        name = page_name(p)
        who = f"MRN {p.mrn} · {p.family_name}, {p.given_name} · born {p.birth_date:%Y-%m-%d}"
        rule = f"@top-left {{ content: {css_string(who)}; }}"
        if len(patients) > 1:
            title = f"Tacrolimus TDM report {n} of {len(patients)}"
            rule += f" @top-right {{ content: {css_string(title)}; }}"
            # Chromium cannot restart the page counter, nor count one patient's pages, but it
            # does keep a counter of our own per named page: each report numbers its pages
            # from 1, and the sheet number runs through the whole printout.
            counter = f"{name}-page"
            rule = (
                f"counter-increment: {counter}; {rule} @bottom-right {{ content: "
                f'"Page " counter({counter}) " of this report · sheet " '
                f'counter(page) " of " counter(pages); }}'
            )
        rules_css.append(f"@page {name} {{ {rule} }}")
        rules_css.append(f".report--{p.pk} {{ page: {name}; }}")
    # Every character of the text above went through css_string (or is a pk): no markup.
    return mark_safe("\n".join(rules_css))  # noqa: S308


def _printed_line(request: HttpRequest) -> tuple[str, str]:
    now = timezone.now()
    by = person(request.user)
    return _local(now), by


# --- the sign-off form ---------------------------------------------------------------------


class SignoffForm(forms.Form):
    interpretation = forms.CharField(
        label="Clinician's interpretation",
        max_length=INTERPRETATION_MAX,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text="Printed on the report with your name and the time of the sign-off.",
        error_messages={"required": "an interpretation is required to sign off"},
        validators=[validation.no_control_characters_multiline],
    )


def signoff_save(*, patient: Patient, interpretation: str, user) -> ReportSignoff:
    """Create or replace the patient's sign-off; simple-history keeps every version."""
    with transaction.atomic():
        signoff = ReportSignoff.objects.select_for_update().filter(patient=patient).first()
        if signoff is None:
            signoff = ReportSignoff(patient=patient)
        signoff.interpretation = interpretation
        signoff.reviewed_by = user
        signoff.reviewed_at = timezone.now()
        signoff._history_user = user
        signoff.save()
    return signoff


@dataclass
class SignoffVersion:
    at: str
    by: str
    action: str
    interpretation: str


def signoff_versions(signoff: ReportSignoff | None) -> list[SignoffVersion]:
    if signoff is None:
        return []
    versions = signoff.history.select_related("reviewed_by").order_by("-history_id")
    return [
        SignoffVersion(
            at=_local(v.reviewed_at),
            by=person(v.reviewed_by),
            action="signed off" if v.history_type == "+" else "signed off again",
            interpretation=v.interpretation,
        )
        for v in versions
    ]


# --- views ---------------------------------------------------------------------------------


def _period_query(period: Period) -> str:
    if period.months == DEFAULT_PERIOD_MONTHS:
        return ""
    return "?" + urlencode({"period": period.value})


def _report_url(patient: Patient, period: Period) -> str:
    return reverse("monitoring:report", args=[patient.pk]) + _period_query(period)


def _signoff(patient: Patient) -> ReportSignoff | None:
    """The sign-off with its reviewer (joined with the patient on the report view)."""
    query = ReportSignoff.objects.select_related("reviewed_by").filter(patient=patient)
    return joined_or(patient, "report_signoff", query.first)


def _render_report(
    request: HttpRequest,
    patient: Patient,
    period: Period,
    *,
    form: SignoffForm | None = None,
    status: int = 200,
) -> HttpResponse:
    thresholds = config.load_thresholds()
    assessment = services.patient_assess(patient, thresholds=thresholds)
    signoff = _signoff(patient)
    report = build_report(assessment, period, thresholds, signoff)
    printed_at, printed_by = _printed_line(request)
    can_sign = request.user.has_perm("monitoring.sign_off_report")
    if form is None and can_sign:
        form = SignoffForm(initial={"interpretation": signoff.interpretation if signoff else ""})
    context = {
        "report": report,
        "report_count": 1,
        "period": period,
        "printed_at": printed_at,
        "printed_by": printed_by,
        "page_css": page_css([patient], f"Printed {printed_at} by {printed_by}"),
        "form": form if can_sign else None,
        "sign_off_url": reverse("monitoring:report_sign_off", args=[patient.pk])
        + _period_query(period),
        "versions": signoff_versions(signoff),
        "sources": SOURCES,
        "disclaimer": DISCLAIMER,
        "patient_url": reverse("monitoring:patient", args=[patient.pk]),
    }
    return render(request, TEMPLATE, context, status=status)


@require_safe
@permission_required("monitoring.view_patient", raise_exception=True)
@logs_access("report")
def patient_report(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(
        Patient.objects.select_related("report_signoff__reviewed_by", "forecast"), pk=pk
    )
    return _render_report(request, patient, Period.from_request(request))


@require_http_methods(["POST"])
@permission_required(
    ["monitoring.view_patient", "monitoring.sign_off_report"], raise_exception=True
)
@logs_access("report")  # a refused sign-off shows the report again
def report_sign_off(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    period = Period.from_request(request)
    form = SignoffForm(request.POST)
    if not form.is_valid():
        return _render_report(request, patient, period, form=form, status=422)
    signoff_save(
        patient=patient, interpretation=form.cleaned_data["interpretation"], user=request.user
    )
    messages.success(request, "Interpretation saved and signed off.")
    return redirect(_report_url(patient, period) + "#signoff")


# Where the batch template's content goes: the view streams what comes before it, then each
# report as it is built, then what comes after.
_REPORTS_HERE = "<!-- reports stream here -->"


@require_safe
@permission_required("monitoring.view_patient", raise_exception=True)
def batch_report(request: HttpRequest) -> StreamingHttpResponse:
    """The reports of the patients on the worklist page that has the same query string
    (filters and page), in the worklist's order, in one document.

    Streamed: 50 reports take seconds to build (a chart and the rules' verdicts each), so the
    page head, the toolbar and the page-margin rules (which need the patients only) go out
    at once and each report follows as soon as it is rendered; the browser shows them as
    they come. Every listed patient's access-log row is written before the first byte, as
    the page will show them all (a reader who stops it early has seen some of them)."""
    filters, patients, _today = worklist_views._filtered(request)
    page = Paginator(patients, worklist_views.PAGE_SIZE).get_page(request.GET.get("page"))
    listed = list(page.object_list)
    period = Period.from_request(request)
    if listed:
        log_bulk_access(request, [p.pk for p in listed], "report")
    printed_at, printed_by = _printed_line(request)
    worklist_query = request.GET.copy()
    worklist_query.pop("period", None)
    context = {
        "report_count": len(listed),
        "reports_here": mark_safe(_REPORTS_HERE),  # noqa: S308 (a constant)
        "period": period,
        "printed_at": printed_at,
        "printed_by": printed_by,
        "page_css": page_css(listed, f"Printed {printed_at} by {printed_by}"),
        "sources": SOURCES,
        "disclaimer": DISCLAIMER,
        "filtered": any(filters.selection().values()),
        "page": page,
        "worklist_url": reverse("monitoring:worklist")
        + (f"?{worklist_query.urlencode()}" if worklist_query else ""),
        "hidden_params": [
            (key, value) for key, values in worklist_query.lists() for value in values
        ],
    }
    document = render_to_string(BATCH_TEMPLATE, context, request)
    head, tail = document.split(_REPORTS_HERE)
    response = StreamingHttpResponse(
        _batch_parts(request, listed, period, context, head, tail),
        content_type="text/html; charset=utf-8",
    )
    # Compressed report by report, else gzip would hold the head back (middleware.py).
    setattr(response, FLUSH_EACH_CHUNK, True)
    return response


def _batch_parts(
    request: HttpRequest, listed: list[Patient], period: Period, context: dict, head, tail
) -> Iterator[str]:
    """The document in pieces: the head, each report as it is rendered, the end. The
    records are loaded after the head has gone out: the first patient's alone, so that the
    first report follows at once, then all the others together (loading 50 patients' records
    takes a second or two); twice a fixed number of queries, whatever the number of
    patients."""
    yield head
    if not listed:
        yield render_to_string(f"{BATCH_TEMPLATE}#empty", context, request)
    else:
        thresholds = config.load_thresholds()
        signoffs = {
            s.patient_id: s
            for s in ReportSignoff.objects.select_related("reviewed_by").filter(
                patient__in=[p.pk for p in listed]
            )
        }
        body = get_template(BODY_TEMPLATE)
        for group in (listed[:1], listed[1:]):
            for assessment in services.patients_assess(group) if group else ():
                signoff = signoffs.get(assessment.records.patient.pk)
                report = build_report(assessment, period, thresholds, signoff)
                yield "\n" + body.render({**context, "report": report}, request) + "\n"
    yield tail
