"""Read queries the pages and exports need, in a constant number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta

from django.db.models import (
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Window,
)
from django.db.models.functions import Coalesce, Rank
from django.utils import timezone

from . import rule_rows
from .assessment import RULE_LAB_TESTS, PatientRecords
from .models import (
    AlertAcknowledgement,
    ConcomitantDrug,
    LabResult,
    LabTest,
    LevelStatus,
    Patient,
    RecordStatus,
    Regimen,
    TargetAssignment,
    TroughLevel,
)


def _group(queryset: QuerySet, ids: list[int], *, as_rows: bool = False) -> dict[int, list]:
    """The records of these patients by patient, in the model's order; ``as_rows``: as
    plain rows for the rules (``rule_rows``) instead of model instances."""
    query = queryset.query
    if not query.order_by and query.default_ordering:
        # The models order by "patient" first, which sorts by the patients' MRNs through a
        # join: grouped per patient that costs a join and a sort of every row for nothing.
        # By the key instead, each patient's records keep their order.
        keys = queryset.model._meta.ordering
        queryset = queryset.order_by(*("patient_id" if key == "patient" else key for key in keys))
    queryset = queryset.filter(patient_id__in=ids)
    grouped: dict[int, list] = defaultdict(list)
    for row in rule_rows.rows(queryset) if as_rows else queryset:
        grouped[row.patient_id].append(row)
    return grouped


def joined_or(instance, relation: str, query: Callable[[], object]):
    """A one-to-one record loaded with ``instance`` by the view's ``select_related`` (None
    when there is none), else ``query()``: a page that joins it saves a query, every other
    caller reads it as before."""
    field = instance._meta.get_field(relation)
    if field.is_cached(instance):
        return field.get_cached_value(instance)
    return query()


# Ids per ``IN (...)`` lookup: under SQLite's historical limit of 999 parameters.
LOOKUP_CHUNK = 900


def in_chunks(items: Sequence, size: int = LOOKUP_CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def patient_records(
    patients: Iterable[Patient],
    *,
    for_rules: bool = False,
    levels_since: datetime | None = None,
    level_pks: Collection[int] = (),
    rule_labs_until: datetime | None = None,
    extra_levels: Iterable = (),
) -> list[PatientRecords]:
    """Every record the rules need for these patients: seven queries whatever their number.

    For re-judging thousands of patients (an import, the daily refresh) the records can be
    narrowed to what the rules read; they are then for the rules, not for display:
    ``for_rules``: regimens, troughs, drugs and labs as plain rows (``rule_rows``);
    ``levels_since``: only the troughs collected after it, and those of ``level_pks`` (one
    more query per 900 of them that are older); ``rule_labs_until``: only the labs the
    kidney rules read as of that instant (``rule_labs``); ``extra_levels``: troughs not
    stored yet (an import about to insert them), added to their patients' troughs."""
    patients = list(patients)
    ids = [p.pk for p in patients]
    targets = _group(TargetAssignment.objects.select_related("profile"), ids)
    regimens = _group(Regimen.objects.all(), ids, as_rows=for_rules)
    levels_query = TroughLevel.objects.all()
    if levels_since is None:
        levels = _group(levels_query, ids, as_rows=for_rules)
    else:
        levels = _group(levels_query.filter(collected_at__gt=levels_since), ids, as_rows=for_rules)
        loaded = {level.pk for group in levels.values() for level in group}
        for chunk in in_chunks(sorted(set(level_pks) - loaded)):
            more = levels_query.filter(pk__in=chunk).order_by()
            for level in rule_rows.rows(more) if for_rules else more:
                levels[level.patient_id].append(level)
    wanted = set(ids)
    for level in extra_levels:
        if level.patient_id in wanted:
            levels[level.patient_id].append(level)
    drugs = _group(ConcomitantDrug.objects.select_related("catalog"), ids, as_rows=for_rules)
    acknowledgements = _group(AlertAcknowledgement.objects.select_related("acknowledged_by"), ids)
    if rule_labs_until is None:
        labs = _group(LabResult.objects.all(), ids, as_rows=for_rules)
    else:
        labs = rule_labs(ids, rule_labs_until, as_rows=for_rules)
    return [
        PatientRecords(
            patient=p,
            targets=targets[p.pk],
            regimens=regimens[p.pk],
            levels=levels[p.pk],
            drugs=drugs[p.pk],
            labs=labs[p.pk],
            acknowledgements=acknowledgements[p.pk],
        )
        for p in patients
    ]


def rule_labs(ids: list[int], until: datetime, *, as_rows: bool = False) -> dict[int, list]:
    """The labs ``assessment.kidney_baseline`` reads, up to ``until``: creatinine and eGFR
    drawn before tacrolimus first started (the baseline), and the latest creatinine (ties
    included); not the years of monitoring results in between. Two queries; ``as_rows``:
    as plain rows for the rules (``rule_rows``)."""
    active = (
        LabResult.objects.filter(
            status=RecordStatus.ACTIVE, test__in=RULE_LAB_TESTS, collected_at__lte=until
        )
        .only("patient_id", "test", "value", "unit", "collected_at", "status")
        .order_by()  # the rules sort them; the default order would join the patients
    )
    first_start = (
        Regimen.objects.filter(
            patient_id=OuterRef("patient_id"), status=RecordStatus.ACTIVE, daily_dose_mg__gt=0
        )
        .order_by("effective_at")
        .values("effective_at")[:1]
    )
    baseline = _group(active.filter(collected_at__lt=Subquery(first_start)), ids, as_rows=as_rows)
    newest = active.filter(test=LabTest.CREATININE).annotate(
        rank=Window(Rank(), partition_by=F("patient_id"), order_by=F("collected_at").desc())
    )
    loaded = {lab.pk for labs in baseline.values() for lab in labs}
    latest = newest.filter(patient_id__in=ids, rank=1)
    for lab in rule_rows.rows(latest) if as_rows else latest:
        if lab.pk not in loaded:  # the latest creatinine may be a baseline one
            baseline[lab.patient_id].append(lab)
    return baseline


def patient_record(patient: Patient) -> PatientRecords:
    return patient_records([patient])[0]


DUE_OVERDUE, DUE_WEEK = "overdue", "week"
DUE_WEEK_DAYS = 7


def worklist_patients(
    *,
    query: str = "",
    alert: str = "",
    range_flag: str = "",
    timing_flag: str = "",
    due: str = "",
    today: date | None = None,
    sort: str = "",
) -> QuerySet[Patient]:
    """Active patients for the worklist, most urgent first (``worklist_order``), from the
    stored summaries only (``alert_codes``, ``urgency_band``, ``next_trough_due``,
    ``latest_level``): no rule runs per row. Empty filters are ignored; ``query`` matches
    MRN, family or given name, every word of it somewhere."""
    # The latest sign-off and whether a (non-error) trough arrived after it: one join and
    # one correlated subquery, so the rows cost no query each.
    arrived = TroughLevel.objects.filter(
        patient=OuterRef("pk"), created_at__gt=OuterRef("report_signoff__reviewed_at")
    ).exclude(status=LevelStatus.ENTERED_IN_ERROR)
    patients = (
        Patient.objects.filter(active=True)
        .select_related("latest_level", "report_signoff__reviewed_by")
        .annotate(troughs_since_signoff=Exists(arrived))
    )
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
    if due:
        # The stored due date (services.patient_summary_set): overdue, or due within a week.
        today = today or timezone.localdate()
        if due == DUE_OVERDUE:
            patients = patients.filter(next_trough_due__lt=today)
        elif due == DUE_WEEK:
            limit = today + timedelta(days=DUE_WEEK_DAYS)
            patients = patients.filter(next_trough_due__lte=limit)
    return patients.order_by(*worklist_order(sort))


# Sortable worklist columns: the stored field (or expression) and whether a larger value
# comes first when sorted "ascending" by what the column shows (months on therapy grow as
# the clock's anchor date gets older).
WORKLIST_SORTS = {
    "mrn": ("mrn", False),
    "name": ("family_name", False),
    "trough_date": ("latest_level__collected_at", False),
    "trough_value": ("latest_level__value_ng_ml", False),
    "months": (Coalesce("anchor_date", "therapy_start"), True),
    "next_due": ("next_trough_due", False),
}


def worklist_order(sort: str = "") -> list:
    """The worklist's order: by urgency band (``followup.urgency_band``), the oldest problem
    first within a band, then MRN; or by a column (``sort``, "-" first for descending),
    empty values last, MRN breaking ties."""
    key = sort.lstrip("-")
    if key not in WORKLIST_SORTS:
        return ["urgency_band", F("problem_since").asc(nulls_first=True), "mrn"]
    target, inverted = WORKLIST_SORTS[key]
    expression = F(target) if isinstance(target, str) else target
    descending = sort.startswith("-") != inverted
    ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    extra = ["given_name"] if key == "name" else []
    return [ordered, *extra, "mrn"]
