"""The contract exports (docs/data-formats.md, "Export") as web downloads: the same file
``manage.py export_csv KIND --as-of DATE`` writes, for users allowed to export
(``monitoring.export_data``). Every patient in the file is written to the access log."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from .. import validation
from ..audit import log_bulk_access
from ..exports import csv_lines
from ..models import Patient
from ..rules import RuleError

TEMPLATE = "monitoring/exports.html"
KINDS = [
    ("levels", "Trough levels: every result of every patient, with its flags"),
    ("patients", "Patients: the 36-month clock, the latest trough, metrics and alerts"),
    ("forecast", "Forecasts: each patient's model, predicted trough and dose to consider (now)"),
]


class ExportForm(forms.Form):
    kind = forms.ChoiceField(label="Export", choices=KINDS, widget=forms.RadioSelect)
    # Text, parsed by the shared validation, so a bad date is quoted as typed.
    as_of = forms.CharField(
        label="As of",
        max_length=10,
        help_text="YYYY-MM-DD. Only data collected on or before this date counts; durations, "
        "metrics and overdue checks are computed at this date.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_as_of(self):
        try:
            day = validation.parse_date(self.cleaned_data["as_of"], "as_of")
        except RuleError as exc:
            raise forms.ValidationError(f"value '{exc.value}': {exc.message}") from exc
        if day is None:
            raise forms.ValidationError("a date is required")
        return day


@require_GET
@permission_required("monitoring.export_data", raise_exception=True)
def export_page(request: HttpRequest) -> HttpResponse:
    """Without a kind: the form. With a kind and a date: the CSV file."""
    if "kind" not in request.GET:
        form = ExportForm(initial={"kind": "levels", "as_of": timezone.localdate().isoformat()})
        return render(request, TEMPLATE, {"form": form})
    form = ExportForm(request.GET)
    if not form.is_valid():
        return render(request, TEMPLATE, {"form": form}, status=400)
    kind, as_of = form.cleaned_data["kind"], form.cleaned_data["as_of"]
    log_bulk_access(
        request,
        Patient.objects.values_list("pk", flat=True),
        f"export {kind}",
        search=f"as_of={as_of.isoformat()}",
    )
    response = StreamingHttpResponse(csv_lines(kind, as_of), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kind}-as-of-{as_of.isoformat()}.csv"'
    return response
