"""Records as the rules read them, for re-judging many patients at once (an import, the
daily refresh, any write's ``services.patients_reassess``): plain rows from ``values_list``
holding only what ``assessment.assess_patient`` reads, instead of model instances.

Building 60,000 regimens and 30,000 drugs with their catalogue entries as model instances
took two thirds of the time of reading a 5,000-patient clinic's records; the same rows as
tuples took a third of it (drugs: a seventh). The rows borrow the model's own properties
(``Regimen.nominal_hours``, ``TroughLevel.counts_for_flags``), so a rule reads one
definition whichever kind of record it is given. They are for the rules only: pages and
exports load model instances (``selectors.patient_records`` without ``for_rules``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field, make_dataclass

from django.db.models import QuerySet

from .models import (
    LEVEL_COMPUTED_FIELDS,
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    Regimen,
    TroughLevel,
)


class RuleRow:
    """A record as the values of ``FIELDS`` given names (``pk`` and ``patient_id`` first).
    Each kind is made by ``_rule_row``."""

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()


def _rule_row(name: str, fields: tuple[str, ...], doc: str = "", *, extra=(), **namespace):
    """A ``RuleRow`` kind with these fields (positional, in this order), ``extra`` slots
    set later (None until then) and the ``namespace`` (the model's own properties).

    A dataclass for its generated ``__init__``: one assignment per field, where a loop of
    ``setattr`` over the names took six times as long (1.3 against 0.2 us a row; 160,000
    rows when an import re-judges 5,000 patients). Compared and hashed by identity, as
    the model instances they stand for."""
    row = make_dataclass(
        name,
        [*fields, *((slot, object, field(default=None, init=False)) for slot in extra)],
        bases=(RuleRow,),
        namespace={"FIELDS": fields, "__doc__": doc, **namespace},
        slots=True,
        eq=False,
        repr=False,
    )
    row.__module__ = __name__
    return row


RegimenRow = _rule_row(
    "RegimenRow",
    (
        "pk",
        "patient_id",
        "effective_at",
        "formulation",
        "frequency",
        "daily_dose_mg",
        "sampling_hours",
        "status",
    ),
    nominal_hours=Regimen.nominal_hours,
)

LevelRow = _rule_row(
    "LevelRow",
    (
        "pk",
        "patient_id",
        "collected_at",
        "last_dose_at",
        "value_ng_ml",
        "comparator",
        "status",
        *LEVEL_COMPUTED_FIELDS,
    ),
    """A stored trough: the rules' inputs and the flags stored from them, which re-judging
    compares with its verdict (and writes back when they differ).""",
    counts_for_flags=TroughLevel.counts_for_flags,
)

DrugRow = _rule_row(
    "DrugRow",
    ("pk", "patient_id", "name", "started_on", "stopped_on", "status", "catalog_id"),
    """A concomitant drug; ``catalog`` is the catalogue entry itself (a model instance:
    a clinic's catalogue has a few hundred entries, its patients tens of thousands of
    drugs), or None when the name matched none.""",
    extra=("catalog",),
)

LabRow = _rule_row(
    "LabRow", ("pk", "patient_id", "collected_at", "test", "value", "unit", "status")
)


ROW_CLASSES: dict[type, type[RuleRow]] = {
    Regimen: RegimenRow,
    TroughLevel: LevelRow,
    ConcomitantDrug: DrugRow,
    LabResult: LabRow,
}


def rows(queryset: QuerySet) -> list[RuleRow]:
    """The queryset's records as rule rows (its model's class in ``ROW_CLASSES``), in the
    queryset's order; drugs with their catalogue entries (one more query)."""
    row_class = ROW_CLASSES[queryset.model]
    found = [row_class(*values) for values in queryset.values_list(*row_class.FIELDS)]
    if row_class is DrugRow:
        _attach_catalog(found)
    return found


def _attach_catalog(drugs: Sequence[DrugRow]) -> None:
    # The whole catalogue: a few hundred entries, fewer than the ids of the drugs that
    # name them would be as query parameters.
    entries = {entry.pk: entry for entry in DrugCatalogEntry.objects.all()} if drugs else {}
    for drug in drugs:
        drug.catalog = entries.get(drug.catalog_id)
