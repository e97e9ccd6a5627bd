"""What a preview "would have written": the validate-only half of the importers (kinds.py).

A dry run (the web preview of a CSV file, an HL7 preview) judges its rows by reads alone and
opens no transaction, so that a preview holds no lock. Its verdicts must still be those of a
real import, where later rows meet what earlier rows wrote: so what a row would have written
is kept in ``ctx.unsaved`` (per model and patient), later rows look there before they query,
and a kept value is the one the database would give back (rounded as its column rounds, a
name compared as the database compares it). Kept apart from the importers because it is one
idea (imitating the database without touching it) that every importer shares, and it depends
on nothing of theirs: a context is anything with ``validate_only`` and ``unsaved``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from django.db import connections, models, router

from ..models import ConcomitantDrug, Patient


class Previewing(Protocol):
    """The part of an importer's context (``kinds.Context``) this module reads and fills."""

    validate_only: bool
    unsaved: dict[tuple, list]


def _unsaved_key(record) -> tuple:
    """Where ``ctx.unsaved`` keeps a record: by model and patient (a patient by its own pk,
    None while new)."""
    owner = record.pk if isinstance(record, Patient) else record.patient_id
    return (type(record), owner)


def kept(record, ctx: Previewing) -> bool:
    """Validate-only: a new record an earlier row "created" (it has no pk, yet exists)."""
    records = ctx.unsaved.get(_unsaved_key(record), ())
    return any(other is record for other in records)


def keep(record, ctx: Previewing, written: dict) -> None:
    """Validate-only: keep what a row would have written (``written``, the fields it set)
    where later rows of the file look for it, as the database would give it back."""
    _as_read_back(record, written)
    if not kept(record, ctx):
        ctx.unsaved.setdefault(_unsaved_key(record), []).append(record)


def _as_read_back(record, written: dict) -> None:
    """Validate-only: the fields a row writes, as a later row would read them back from the
    database. A decimal with more places than its column's is rounded on the way (so the
    same value in the next row is "updated" in an import): PostgreSQL rounds half away from
    zero; SQLite stores a float, which Django's own converter for the column reads back."""
    database = connections[router.db_for_write(type(record), instance=record)]
    for name in written:
        model_field = record._meta.get_field(name)
        value = getattr(record, model_field.attname)
        if not isinstance(model_field, models.DecimalField) or not isinstance(value, Decimal):
            continue
        if database.vendor == "sqlite":
            column = model_field.get_col(model_field.model._meta.db_table)
            read_back = database.ops.get_decimalfield_converter(column)
            value = read_back(float(value), column, database)
        else:
            value = value.quantize(
                Decimal(1).scaleb(-model_field.decimal_places), rounding=ROUND_HALF_UP
            )
        setattr(record, model_field.attname, value)


def lookup(ctx: Previewing, model, patient, matches, query):
    """The record a row meets: in validate-only mode first among the unsaved ones (new, or
    stored and changed by an earlier row: a lookup never matches on a field a row changes,
    so the stored copy and the changed one match alike), else ``query()``'s result."""
    if not ctx.validate_only:
        return query()
    for record in ctx.unsaved.get((model, patient.pk), []):
        if matches(record):
            return record
    return query()


def same_name(stored: str, name: str) -> bool:
    """``name__iexact`` said of two texts (validate-only): SQLite's LIKE ignores the case
    of ASCII letters only; PostgreSQL compares UPPER() of both."""
    if connections[router.db_for_read(ConcomitantDrug)].vendor == "sqlite":
        return _ascii_lower(stored) == _ascii_lower(name)
    return stored.upper() == name.upper()


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)
