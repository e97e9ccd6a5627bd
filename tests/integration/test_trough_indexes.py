"""The trough table's indexes: each one serves a query, since every import writes every
index of every new trough (100,000 a large file)."""

from __future__ import annotations

import pytest
from django.db import connection

from monitoring.models import TroughLevel

pytestmark = pytest.mark.django_db


def indexed_columns(table: str) -> list[list[str]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [c["columns"] for c in constraints.values() if c["index"] or c["unique"]]


def test_a_patients_troughs_are_found_through_one_index_led_by_the_patient():
    indexes = indexed_columns(TroughLevel._meta.db_table)
    # The patient page, the rules and the exports read a patient's troughs by date.
    assert ["patient_id", "collected_at"] in indexes
    # An index of the patient alone repeated the one above; it only cost writes.
    assert ["patient_id"] not in indexes


def test_the_trough_history_keeps_its_index_of_the_patient():
    # The audit page reads every version of a patient's troughs by the patient.
    assert ["patient_id"] in indexed_columns(TroughLevel.history.model._meta.db_table)
