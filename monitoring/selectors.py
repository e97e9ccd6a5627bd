"""Read queries the pages and exports need, in a constant number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime

from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Length, Replace

from .assessment import RULE_LAB_TESTS, PatientRecords
from .models import ConcomitantDrug, LabResult, Patient, Regimen, TargetAssignment, TroughLevel


def _group(queryset: QuerySet, ids: list[int]) -> dict[int, list]:
    grouped: dict[int, list] = defaultdict(list)
    for row in queryset.filter(patient_id__in=ids):
        grouped[row.patient_id].append(row)
    return grouped


# What re-judging reads of a trough: the rules' inputs and the stored flags it compares
# with (services.COMPUTED_LEVEL_FIELDS). Labs: only those the rules read (kidney_baseline).
LEVEL_RULE_INPUTS = (
    "patient_id",
    "collected_at",
    "last_dose_at",
    "value_ng_ml",
    "comparator",
    "status",
)


# Ids per ``IN (...)`` lookup: under SQLite's historical limit of 999 parameters.
LOOKUP_CHUNK = 900


def in_chunks(items: Sequence, size: int = LOOKUP_CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def patient_records(
    patients: Iterable[Patient],
    *,
    level_fields: Sequence[str] = (),
    levels_since: datetime | None = None,
    level_pks: Collection[int] = (),
) -> list[PatientRecords]:
    """Every record the rules need for these patients: six queries whatever their number.

    With ``level_fields`` (re-judging thousands of patients after an import) troughs are
    loaded with those fields only and labs with the tests the rules read: the records are
    then for the rules, not for display (another field of a trough would cost a query).
    With ``levels_since`` only the troughs collected after it are loaded, and those of
    ``level_pks`` (one more query per 900 of them that are older)."""
    patients = list(patients)
    ids = [p.pk for p in patients]
    targets = _group(TargetAssignment.objects.select_related("profile"), ids)
    regimens = _group(Regimen.objects.all(), ids)
    levels_query = TroughLevel.objects.all()
    labs_query = LabResult.objects.all()
    if level_fields:
        levels_query = levels_query.only(*level_fields)
        labs_query = labs_query.filter(test__in=RULE_LAB_TESTS).only(
            "patient_id", "test", "value", "unit", "collected_at", "status"
        )
    if levels_since is None:
        levels = _group(levels_query, ids)
    else:
        levels = _group(levels_query.filter(collected_at__gt=levels_since), ids)
        loaded = {level.pk for group in levels.values() for level in group}
        for chunk in in_chunks(sorted(set(level_pks) - loaded)):
            for level in levels_query.filter(pk__in=chunk):
                levels[level.patient_id].append(level)
    drugs = _group(ConcomitantDrug.objects.select_related("catalog"), ids)
    labs = _group(labs_query, ids)
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
