"""Read queries the pages and exports need, in a constant number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Length, Replace

from .assessment import PatientRecords
from .models import ConcomitantDrug, LabResult, Patient, Regimen, TargetAssignment, TroughLevel


def _group(queryset: QuerySet, ids: list[int]) -> dict[int, list]:
    grouped: dict[int, list] = defaultdict(list)
    for row in queryset.filter(patient_id__in=ids):
        grouped[row.patient_id].append(row)
    return grouped


def patient_records(patients: Iterable[Patient]) -> list[PatientRecords]:
    """Every record the rules need for these patients: six queries whatever their number."""
    patients = list(patients)
    ids = [p.pk for p in patients]
    targets = _group(TargetAssignment.objects.select_related("profile"), ids)
    regimens = _group(Regimen.objects.all(), ids)
    levels = _group(TroughLevel.objects.all(), ids)
    drugs = _group(ConcomitantDrug.objects.select_related("catalog"), ids)
    labs = _group(LabResult.objects.all(), ids)
    return [
        PatientRecords(
            patient=p,
            targets=targets[p.pk],
            regimens=regimens[p.pk],
            levels=levels[p.pk],
            drugs=drugs[p.pk],
            labs=labs[p.pk],
        )
        for p in patients
    ]


def patient_record(patient: Patient) -> PatientRecords:
    return patient_records([patient])[0]


def worklist_patients(
    *, query: str = "", alert: str = "", range_flag: str = "", timing_flag: str = ""
) -> QuerySet[Patient]:
    """Active patients for the worklist, most urgent first, from the stored summaries only
    (``alert_codes``, ``warning_count``, ``latest_level``): no rule runs per row.

    Urgency: more warnings, then more alerts, then the oldest latest trough (no trough at
    all first), then MRN so that pages are stable. Empty filters are ignored; ``query``
    matches MRN, family or given name, every word of it somewhere."""
    patients = Patient.objects.filter(active=True).select_related("latest_level")
    for word in query.split():
        patients = patients.filter(
            Q(mrn__icontains=word) | Q(family_name__icontains=word) | Q(given_name__icontains=word)
        )
    if alert:
        # Codes are stored ';'-joined: match a whole code, never a fragment of another.
        patients = patients.filter(
            Q(alert_codes=alert)
            | Q(alert_codes__startswith=f"{alert};")
            | Q(alert_codes__endswith=f";{alert}")
            | Q(alert_codes__contains=f";{alert};")
        )
    if range_flag:
        patients = patients.filter(latest_level__range_flag=range_flag)
    if timing_flag:
        patients = patients.filter(latest_level__timing_flag=timing_flag)
    separators = Length("alert_codes") - Length(Replace("alert_codes", Value(";"), Value("")))
    alert_count = Case(
        When(alert_codes="", then=Value(0)),
        default=separators + Value(1),
        output_field=IntegerField(),
    )
    return patients.annotate(alert_count=alert_count).order_by(
        "-warning_count",
        "-alert_count",
        F("latest_level__collected_at").asc(nulls_first=True),
        "mrn",
    )
