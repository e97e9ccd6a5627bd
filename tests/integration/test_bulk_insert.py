"""``bulk.insert_rows``, the write path of a large levels import (binary ``COPY`` on
PostgreSQL, ``executemany`` on SQLite): a row it inserts reads back field for field as the
same values saved through the ORM, for every column type a trough and its history row have,
the awkward values included (a time zone other than the server's, microseconds, decimals to
the last place, NULLs, text with tabs, backslashes, line breaks and accents)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from monitoring import bulk
from monitoring.models import Patient, Source, TroughLevel

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
AWKWARD = "tab\there, back\\slash, line\nbreak, \\N, 'quoted', Müller-Łukasiewicz"


def _values(model, pk: int, skip: set[str]) -> dict:
    names = [f.attname for f in model._meta.concrete_fields if f.attname not in skip]
    return model.objects.filter(pk=pk).values(*names).get()


@pytest.mark.parametrize(
    ("last_dose_at", "steady_state", "hours", "target"),
    [
        (datetime(2026, 3, 28, 20, 5, 0, 123456, tzinfo=PARIS), True, "12.167", "4.00"),
        (None, False, None, None),
    ],
)
def test_a_bulk_row_reads_back_as_the_same_values_saved_by_the_orm(
    last_dose_at, steady_state, hours, target
):
    author = get_user_model().objects.create_user("bulk-author")
    patient = Patient.objects.create(
        mrn="BULK-1",
        family_name="Doe",
        given_name="Jo",
        birth_date=date(1990, 1, 2),
        sex="F",
        therapy_start=date(2024, 1, 1),
    )
    values = {
        "patient_id": patient.pk,
        "source": Source.CSV,
        "entered_by_id": author.pk,
        "created_at": timezone.now(),
        # Across the spring change of clocks in Paris (29 March 2026).
        "collected_at": datetime(2026, 3, 29, 8, 15, 30, 654321, tzinfo=PARIS),
        "last_dose_at": last_dose_at,
        "reported_value": "4.1234567",
        "reported_unit": "ng/mL",
        "comparator": "<",
        "value_ng_ml": Decimal("4.1234567"),
        "assay": "LCMSMS",
        "status": "final",
        "error_reason": AWKWARD,
        "fit_excluded_reason": AWKWARD[::-1],
        "target_low": Decimal(target) if target else None,
        "target_high": Decimal("6.00") if target else None,
        "range_flag": "low",
        "timing_flag": "ok",
        "timing_reason": "",
        "hours_post_dose": Decimal(hours) if hours else None,
        "steady_state": steady_state,
    }
    saved = TroughLevel.objects.create(accession="ORM", **values)
    values["created_at"] = saved.created_at  # set by save() itself (auto_now_add)
    [pk] = bulk.reserve_ids(TroughLevel, 1)
    columns = ["id", "accession", *values]
    bulk.insert_rows(TroughLevel, columns, [(pk, "BULK", *values.values())])

    skip = {"id", "accession"}
    assert _values(TroughLevel, pk, skip) == _values(TroughLevel, saved.pk, skip)

    # The history row of each, as ``levels.insert_history`` writes it beside ``save()``'s.
    history = TroughLevel.history.model
    orm_history = history.objects.get(id=saved.pk)
    history_values = {
        f.attname: getattr(orm_history, f.attname)
        for f in history._meta.concrete_fields
        if f.attname not in ("history_id", "id", "accession")
    }
    bulk.insert_rows(
        history, ["id", "accession", *history_values], [(pk, "BULK", *history_values.values())]
    )
    inserted = history.objects.get(id=pk).history_id
    skip = {"history_id", "id", "accession"}
    assert _values(history, inserted, skip) == _values(history, orm_history.history_id, skip)
