"""The set-based path of a levels file (``LevelImporter`` in bulk mode): plain snapshots of
the stored results a file's rows can meet, read before the first row and outside any write
transaction; then, in one short write transaction, the new results and their history rows
in one insert per table (``bulk.insert_rows``) and the few updates through ``save()``.

A history row here holds what simple-history's ``save()`` path writes for a created result:
the tracked fields, ``history_type`` ``+``, the importing user, the change reason of the
block (``history_reason.change_reason``, NULL without one) and the time of the write."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from operator import attrgetter

from django.db import DatabaseError, connection
from django.utils import timezone

from .. import bulk, history_reason
from ..models import LEVEL_COMPUTED_FIELDS, LevelStatus, TroughLevel
from ..selectors import in_chunks

# What a row is compared with: the stored result's own values.
VALUE_FIELDS = (
    "collected_at",
    "last_dose_at",
    "reported_value",
    "reported_unit",
    "comparator",
    "value_ng_ml",
    "assay",
    "status",
    "error_reason",
)
SNAPSHOT_FIELDS = ("pk", "patient_id", "accession", *VALUE_FIELDS)
# Set by ``services.patients_reassess`` on a new result before it is inserted.
COMPUTED_FIELDS = tuple(LEVEL_COMPUTED_FIELDS)


class _Snapshot:
    """What a ``LevelSnapshot`` does; its fields are generated below."""

    __slots__ = ()

    def __post_init__(self) -> None:
        self.origin = self

    @property
    def in_error(self) -> bool:
        return self.status == LevelStatus.ENTERED_IN_ERROR

    @property
    def counts_for_flags(self) -> bool:  # as TroughLevel.counts_for_flags
        return self.status in (LevelStatus.FINAL, LevelStatus.CORRECTED)

    def changed(self, changes: dict) -> LevelSnapshot:
        twin = LevelSnapshot(**{name: getattr(self, name) for name in SNAPSHOT_FIELDS})
        for name, value in changes.items():
            setattr(twin, name, value)
        twin.origin = self.origin
        return twin


def _default(name: str):
    return TroughLevel._meta.get_field(name).get_default()


# A dataclass for its generated ``__init__``: one assignment per field, where a loop of
# ``setattr`` over the field names took three times as long (1.7 against 0.5 us; a
# 100,000-row file: 0.12 s).
LevelSnapshot = dataclasses.make_dataclass(
    "LevelSnapshot",
    [(name, object, dataclasses.field(default="")) for name in SNAPSHOT_FIELDS]
    + [
        (name, object, dataclasses.field(default=_default(name), init=False))
        for name in COMPUTED_FIELDS
    ]
    + [("origin", object, dataclasses.field(default=None, init=False))],
    bases=(_Snapshot,),
    slots=True,
    eq=False,  # compared and hashed by identity, as any record object
    repr=False,
)
LevelSnapshot.__module__ = __name__
LevelSnapshot.__doc__ = """A result as plain values: stored (``pk`` known) or new in this file
(``pk`` given at the write). ``origin`` is the snapshot that becomes the database row, so a
later row's update of a new result points at the row the insert creates."""


class ChangedMeanwhile(DatabaseError):
    """A stored result this file updates was changed by someone else after the file was
    judged: the file is refused, as when a constraint refuses it."""


def load_snapshots(
    patient_pks: Sequence[int], accessions: dict[int, set[str]] | None
) -> list[LevelSnapshot]:
    """The stored results of these patients a file's rows can meet: with ``accessions``
    (per patient, "" for rows without one) those with one of them, and those without an
    accession for the patients that have such rows; with None, all of them. Reads only:
    per 900 patients the (patient, accession) keys from the accession index, then the
    matched results whole, 900 at a time (none for a file of new results)."""
    found: list[LevelSnapshot] = []
    matched: list[int] = []
    for chunk in in_chunks(sorted(patient_pks)):
        stored = TroughLevel.objects.filter(patient_id__in=chunk).order_by()
        if accessions is None:
            found += _snapshots(stored)
            continue
        without = [pk for pk in chunk if "" in accessions.get(pk, ())]
        if without:
            found += _snapshots(stored.filter(patient_id__in=without, accession=""))
        keys = _keys_among(stored, chunk, accessions)
        matched += [pk for pk, patient, acc in keys if acc in accessions.get(patient, ())]
    for part in in_chunks(sorted(matched)):
        found += _snapshots(TroughLevel.objects.filter(pk__in=part).order_by())
    found.sort(key=lambda s: s.pk)
    return found


def _keys_among(stored, chunk: list[int], accessions: dict[int, set[str]]):
    """(pk, patient, accession) of the chunk's stored results with an accession, at least
    those with one of the chunk's file accessions (the caller matches the pairs). One pass
    over the chunk's keys (the partial unique index covers them) beats an ``accession IN
    (...)`` per 900 accessions, which scans the same entries each time. On PostgreSQL the
    file's accessions go along as one array, hashed by the server (``= ANY``), so only the
    matches come back, not every stored key (385,000 keys read: 0.75 s; matched there:
    0.4 s)."""
    if connection.vendor != "postgresql":
        return stored.exclude(accession="").values_list("pk", "patient_id", "accession")
    wanted = sorted({acc for pk in chunk for acc in accessions.get(pk, ()) if acc})
    if not wanted:
        return []
    table = connection.ops.quote_name(TroughLevel._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, patient_id, accession FROM {table} "  # noqa: S608 - our own table
            "WHERE patient_id = ANY(%s) AND accession <> '' AND accession = ANY(%s)",
            [list(chunk), wanted],
        )
        return cursor.fetchall()


def _snapshots(query) -> list[LevelSnapshot]:
    return [
        LevelSnapshot(**dict(zip(SNAPSHOT_FIELDS, values, strict=True)))
        for values in query.values_list(*SNAPSHOT_FIELDS)
    ]


def _user_id(ctx) -> int | None:
    return ctx.user.pk if getattr(ctx.user, "pk", None) else None


def _row_maker(fields, constants: dict):
    """(columns, function snapshot → row tuple) for these model fields: snapshot values,
    then ``constants`` (by attname), then each field's default."""
    columns, picked, fixed = [], [], []
    for field in fields:
        name = field.attname
        if name == "id" or name in SNAPSHOT_FIELDS or name in COMPUTED_FIELDS:
            picked.append("pk" if name == "id" else name)
        elif name in constants:
            fixed.append((name, constants[name]))
        elif field.has_default() or field.null or field.blank:
            fixed.append((name, field.get_default()))
        else:  # pragma: no cover - a new required field must be given here
            raise TypeError(f"no value for {field.model.__name__}.{name} in a bulk insert")
    columns = [("id" if name == "pk" else name) for name in picked] + [n for n, _ in fixed]
    getter = attrgetter(*picked)
    tail = tuple(value for _, value in fixed)
    return columns, lambda snapshot: getter(snapshot) + tail


def reserve_ids(records: Sequence[LevelSnapshot]) -> None:
    """Give new results their ids before they are inserted (the flags and the patients'
    latest trough point at them). Inside the write transaction."""
    waiting = [s for s in records if s.pk is None]
    for snapshot, pk in zip(waiting, bulk.reserve_ids(TroughLevel, len(waiting)), strict=True):
        snapshot.pk = pk


def insert_new(records: Sequence[LevelSnapshot], ctx) -> None:
    """Insert new results, with their flags when already judged, then their history rows.
    Inside the caller's write transaction."""
    if not records:
        return
    now = timezone.now()
    reserve_ids(records)
    constants = {"source": ctx.source, "entered_by_id": _user_id(ctx), "created_at": now}
    fields = [f for f in TroughLevel._meta.concrete_fields]
    columns, make = _row_maker(fields, constants)
    bulk.insert_rows(TroughLevel, columns, [make(s) for s in records])
    insert_history(records, ctx, now)


def insert_history(records: Sequence[LevelSnapshot], ctx, now) -> None:
    """The "created" history rows of new results, as ``save()`` would write them."""
    history = TroughLevel.history.model
    constants = {
        "source": ctx.source,
        "entered_by_id": _user_id(ctx),
        "created_at": now,
        "history_date": now,
        "history_change_reason": history_reason.current() or None,
        "history_type": "+",
        "history_user_id": _user_id(ctx),
    }
    fields = [f for f in history._meta.concrete_fields if f.attname != "history_id"]
    columns, make = _row_maker(fields, constants)
    bulk.insert_rows(history, columns, [make(s) for s in records])


def apply_updates(updates: Sequence[tuple[LevelSnapshot, dict]], ctx) -> list[int]:
    """Update stored (or just inserted) results through ``save()``, so each change has its
    history row; refused (``ChangedMeanwhile``) when a result no longer holds the values
    the file was judged against. Returns the updated ids."""
    if not updates:
        return []
    pks = sorted({snapshot.origin.pk for snapshot, _ in updates})
    records: dict[int, TroughLevel] = {}
    for chunk in in_chunks(pks):
        records.update(
            (r.pk, r) for r in TroughLevel.objects.select_for_update().filter(pk__in=chunk)
        )
    user = ctx.user if getattr(ctx.user, "pk", None) else None
    for snapshot, changes in updates:
        record = records.get(snapshot.origin.pk)
        if record is None or any(
            getattr(record, name) != getattr(snapshot, name) for name in VALUE_FIELDS
        ):
            label = snapshot.accession or f"{snapshot.reported_value} at {snapshot.collected_at}"
            raise ChangedMeanwhile(f"result {label} was changed by another import meanwhile")
        for name, value in changes.items():
            setattr(record, name, value)
        if user is not None:
            record._history_user = user
        record.save()
    return pks
