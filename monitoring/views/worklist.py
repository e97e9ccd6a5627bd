"""The worklist (home page): every active patient, most urgent first, with the latest trough,
the 36-month clock, the alerts and the next action; filters, search, pages and a CSV export.

Fast by design: rows come from the summaries that ``services.patients_reassess`` stores on
every write (alert codes, warning count, latest trough and its flags), so no rule runs per
row. Only the cheap 36-month clock is computed here, from the patient's stored dates. Alerts
that change with the calendar alone (a trough becoming overdue) are caught by re-judging, in
one batch, the patients whose summary predates today before the list is read.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django import forms
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from .. import config, followup, rules, services, validation
from ..alert_text import AlertText, alert_texts, next_action
from ..audit import log_bulk_access
from ..csv_safe import SafeCsvWriter
from ..exports import fixed, iso
from ..models import Patient, ReportSignoff, TroughLevel
from ..review import person
from ..selectors import DUE_OVERDUE, DUE_WEEK, WORKLIST_SORTS, worklist_patients

TEMPLATE = "monitoring/worklist.html"
PAGE_SIZE = 50
EXPORT_COLUMNS = [
    "mrn",
    "family_name",
    "given_name",
    "latest_collected_at",
    "latest_value_ng_ml",
    "latest_range_flag",
    "latest_timing_flag",
    "months_on_therapy",
    "alerts",
    "next_action",
    "next_trough_due",
]

# Presentation only: how a verdict looks (the verdicts themselves come from the rules).
RANGE_BADGE = {
    rules.IN_RANGE: ("ok", "in range"),
    rules.BELOW: ("warning", "below range"),
    rules.ABOVE: ("warning", "above range"),
    rules.INDETERMINATE: ("info", "indeterminate"),
}
TIMING_BADGE = {
    rules.VALID: ("ok", "timing valid"),
    rules.BORDERLINE: ("info", "timing borderline"),
    rules.MISTIMED: ("warning", "mistimed"),
    rules.UNKNOWN: ("warning", "timing unknown"),
}
# Each severity has its own badge style, glyph (shape) and word, never colour alone.
SEVERITY_STYLE = {
    rules.WARNING: ("warning", "▲", "Warning"),
    rules.CAUTION: ("caution", "◆", "Caution"),
    rules.INFORMATION: ("info", "●", "Information"),
}


def _choices(first: str, pairs: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    return [("", first)] + [(code, label) for code, (_, label) in pairs.items()]


class WorklistFilters(forms.Form):
    """The worklist's query string. Bad values are reported and ignored, never a 500."""

    q = forms.CharField(
        label="Search MRN or name",
        required=False,
        max_length=100,
        validators=[validation.no_control_characters],
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "id": "worklist-q",
                "autocomplete": "off",
                "placeholder": "e.g. MRN-1001 or Doe",
            }
        ),
    )
    alert = forms.ChoiceField(
        label="Alert",
        required=False,
        choices=[("", "any alert")]
        + [(a.code, a.label) for a in alert_texts(list(rules.ALERT_CODES))],
        widget=forms.Select(attrs={"id": "worklist-alert"}),
    )
    range = forms.ChoiceField(
        label="Latest trough range",
        required=False,
        choices=_choices("any range", RANGE_BADGE),
        widget=forms.Select(attrs={"id": "worklist-range"}),
    )
    timing = forms.ChoiceField(
        label="Latest trough timing",
        required=False,
        choices=_choices("any timing", TIMING_BADGE),
        widget=forms.Select(attrs={"id": "worklist-timing"}),
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[("", "urgency")]
        + [(f"{sign}{key}", f"{sign}{key}") for key in WORKLIST_SORTS for sign in ("", "-")],
        widget=forms.HiddenInput(),
    )
    due = forms.ChoiceField(
        label="Next trough due",
        required=False,
        choices=[
            ("", "any due date"),
            (DUE_OVERDUE, "overdue"),
            (DUE_WEEK, "overdue or due this week"),
        ],
        widget=forms.Select(attrs={"id": "worklist-due"}),
    )

    def search_text(self) -> str:
        """What the user searched and filtered for, as typed, for the access log."""
        return "; ".join(
            f"{name}={str(self.data.get(name, '')).strip()}"
            for name in self.fields
            if str(self.data.get(name, "")).strip()
        )

    def selection(self) -> dict[str, str]:
        """The selector's arguments from the fields that are valid (invalid ones: no filter)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "query": data.get("q") or "",
            "alert": data.get("alert") or "",
            "range_flag": data.get("range") or "",
            "timing_flag": data.get("timing") or "",
            "due": data.get("due") or "",
            "sort": data.get("sort") or "",
        }


@dataclass(frozen=True)
class AlertBadge:
    text: AlertText
    style: str
    glyph: str
    severity_word: str
    reviewed: bool = False

    @property
    def html(self) -> SafeString:
        return _badge_html(self.text, self.style, self.glyph, self.severity_word, self.reviewed)


@functools.lru_cache(maxsize=256)
def _badge_html(text: AlertText, style: str, glyph: str, word: str, reviewed: bool) -> SafeString:
    """An alert's badge is the same on every row: built once per alert, not by the template
    on each of the ~250 badges of a page (a third of the worklist's time at 5,000 patients).
    Shape and word besides the colour; the explanation as a tooltip. A reviewed alert says
    so in words and with a tick, and is drawn plain: it no longer ranks the patient."""
    if reviewed:
        return format_html(
            '<span class="badge alert-badge alert-badge--reviewed" title="{}">'
            '<span class="alert-badge__glyph" aria-hidden="true">✓</span> '
            "{} (reviewed)</span>",
            text.explanation,
            text.label,
        )
    return format_html(
        '<span class="badge badge--{} alert-badge" title="{}">'
        '<span class="alert-badge__glyph" aria-hidden="true">{}</span> '
        '<span class="visually-hidden">{}: </span>{}</span>',
        style,
        text.explanation,
        glyph,
        word,
        text.label,
    )


@dataclass(frozen=True)
class WorklistRow:
    patient: Patient
    level: TroughLevel | None
    value: str
    range_style: str
    range_label: str
    timing_style: str
    timing_label: str
    months: Decimal | None
    months_shown: str  # months so far, one decimal, for <progress> and the text
    months_note: str
    alerts: list[AlertBadge]
    next_action: str
    next_due: date | None
    due_state: str  # "overdue", "due this week" or ""
    signoff: ReportSignoff | None
    signoff_by: str
    troughs_since: bool


def refresh_stale_summaries(today: date) -> None:
    """Re-judge, in one batch, active patients whose stored summary predates today: time
    alone can raise an alert (overdue trough, 36 months reached). Once a day at most, and
    a fixed number of queries however many patients (services.patients_refresh). The
    worker's daily re-judge (monitoring.schedule, at DAILY_REFRESH_TIME) spares the day's
    first visitor the wait."""
    services.patients_refresh(today)


def _duration(patient: Patient, today: date, thresholds: rules.Thresholds) -> rules.Duration:
    return rules.duration_status(
        patient.clock_anchor,
        patient.therapy_end,
        today,
        required_months=thresholds.required_months,
        days_per_month=thresholds.days_per_month,
    )


def worklist_row(patient: Patient, today: date, thresholds: rules.Thresholds) -> WorklistRow:
    level = patient.latest_level
    range_style, range_label = RANGE_BADGE.get(level.range_flag, ("", "")) if level else ("", "")
    timing_style, timing_label = (
        TIMING_BADGE.get(level.timing_flag, ("", "")) if level else ("", "")
    )
    duration = _duration(patient, today, thresholds)
    note = ""
    if patient.therapy_end:
        verb = "ended" if patient.therapy_end <= today else "planned end"
        note = f"{verb} {patient.therapy_end:%Y-%m-%d}"
    elif duration.months is None:
        note = "start date not recorded"
    elif duration.code == rules.DURATION_MET:
        note = f"{config.plain(thresholds.required_months)} months reached"
    codes = patient.alerts
    reviewed = set(patient.acknowledged_codes.split(";")) if patient.acknowledged_codes else set()
    badges = []
    for text in alert_texts(codes):
        style, glyph, word = SEVERITY_STYLE[text.severity]
        badges.append(AlertBadge(text, style, glyph, word, text.code in reviewed))
    return WorklistRow(
        patient=patient,
        level=level,
        value=f"{level.comparator}{fixed(level.value_ng_ml, 1)}" if level else "",
        range_style=range_style,
        range_label=range_label,
        timing_style=timing_style,
        timing_label=timing_label,
        months=duration.months,
        months_shown=fixed(duration.months, 1),
        months_note=note,
        alerts=badges,
        next_action=patient.next_action or next_action(codes),
        next_due=patient.next_trough_due,
        due_state=followup.due_state(patient.next_trough_due, today),
        signoff=_signoff(patient),
        signoff_by=person(_signoff(patient).reviewed_by) if _signoff(patient) else "",
        troughs_since=getattr(patient, "troughs_since_signoff", False),
    )


def _signoff(patient: Patient) -> ReportSignoff | None:
    try:
        return patient.report_signoff
    except ReportSignoff.DoesNotExist:
        return None


def _filtered(request: HttpRequest) -> tuple[WorklistFilters, QuerySet[Patient], date]:
    today = timezone.localdate()
    refresh_stale_summaries(today)
    filters = WorklistFilters(request.GET)
    return filters, worklist_patients(**filters.selection(), today=today), today


@require_GET
@permission_required("monitoring.view_patient", raise_exception=True)
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def worklist(request: HttpRequest) -> HttpResponse:
    filters, patients, today = _filtered(request)
    thresholds = config.load_thresholds()
    page = Paginator(patients, PAGE_SIZE).get_page(request.GET.get("page"))
    # Every request of the list is a look at the patients it shows (fragments too: each
    # search or page shows other patients), and a search is on record even if it finds nobody.
    log_bulk_access(
        request, [p.pk for p in page.object_list], "worklist", search=filters.search_text()
    )
    selection = filters.selection()
    context = {
        "filters": filters,
        "filtered": any(v for k, v in selection.items() if k != "sort"),
        "sort": selection["sort"],
        "sort_label": SORT_LABELS.get(selection["sort"].lstrip("-"), ""),
        "sort_links": sort_links(request, selection["sort"]),
        "critical_high": config.plain(thresholds.critical_high_ng_ml),
        "critical_low": config.plain(thresholds.critical_low_ng_ml),
        "page": page,
        "rows": [worklist_row(p, today, thresholds) for p in page.object_list],
        "required_months": config.plain(thresholds.required_months),
    }
    # A history restore (back button after the cache expired) needs the whole page.
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, f"{TEMPLATE}#worklist-table", context)
    return render(request, TEMPLATE, context)


SORT_LABELS = {
    "mrn": "MRN",
    "name": "name",
    "trough_date": "latest trough date",
    "trough_value": "latest trough value",
    "months": "months of immunosuppression",
    "next_due": "next trough due",
}


@dataclass(frozen=True)
class SortLink:
    query: str
    label: str
    state: str  # "ascending", "descending" or ""


def sort_links(request: HttpRequest, current: str) -> dict[str, SortLink]:
    """A link per sortable column that keeps the filters: ascending first, then descending
    when the column is already sorted ascending."""
    links = {}
    for key, label in SORT_LABELS.items():
        query = request.GET.copy()
        query.pop("page", None)
        query["sort"] = f"-{key}" if current == key else key
        state = "ascending" if current == key else "descending" if current == f"-{key}" else ""
        links[key] = SortLink("?" + query.urlencode(), label, state)
    return links


class _Echo:
    def write(self, value: str) -> str:
        return value


def _export_lines(patients: QuerySet[Patient], today: date) -> Iterator[str]:
    thresholds = config.load_thresholds()
    writer = SafeCsvWriter(_Echo(), lineterminator="\n")
    yield writer.writerow(EXPORT_COLUMNS)
    for patient in patients.iterator(chunk_size=500):
        level = patient.latest_level
        codes = patient.alerts
        yield writer.writerow(
            [
                patient.mrn,
                patient.family_name,
                patient.given_name,
                iso(level.collected_at) if level else "",
                fixed(level.value_ng_ml, 2) if level else "",
                level.range_flag if level else "",
                level.timing_flag if level else "",
                fixed(_duration(patient, today, thresholds).months, 1),
                ";".join(sorted(codes)),
                patient.next_action or next_action(codes),
                patient.next_trough_due.isoformat() if patient.next_trough_due else "",
            ]
        )


@require_GET
@permission_required("monitoring.view_patient", raise_exception=True)
def worklist_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered worklist (every page, same order) as CSV."""
    filters, patients, today = _filtered(request)
    log_bulk_access(
        request,
        patients.values_list("pk", flat=True),
        "worklist export",
        search=filters.search_text(),
    )
    response = StreamingHttpResponse(_export_lines(patients, today), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="worklist-{today:%Y-%m-%d}.csv"'
    return response


RECALL_COLUMNS = [
    "mrn",
    "family_name",
    "given_name",
    "birth_date",
    "next_trough_due",
    "due",
    "latest_collected_at",
    "next_action",
]


@require_GET
@permission_required("monitoring.view_patient", raise_exception=True)
def recall_csv(request: HttpRequest) -> HttpResponse:
    """Patients whose next trough is overdue or due within the week (or the due filter
    chosen), with the worklist's other filters, soonest due first: the list the clinic
    calls. Every patient listed is written to the access log."""
    today = timezone.localdate()
    refresh_stale_summaries(today)
    filters = WorklistFilters(request.GET)
    selection = filters.selection()
    selection["due"] = selection["due"] or DUE_WEEK
    patients = list(worklist_patients(**selection, today=today).order_by("next_trough_due", "mrn"))
    log_bulk_access(request, [p.pk for p in patients], "recall list", search=filters.search_text())
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer, lineterminator="\n")
    writer.writerow(RECALL_COLUMNS)
    for patient in patients:
        level = patient.latest_level
        writer.writerow(
            [
                patient.mrn,
                patient.family_name,
                patient.given_name,
                patient.birth_date.isoformat(),
                patient.next_trough_due.isoformat() if patient.next_trough_due else "",
                followup.due_state(patient.next_trough_due, today),
                iso(level.collected_at) if level else "",
                patient.next_action,
            ]
        )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="recall-{today:%Y-%m-%d}.csv"'
    return response
