"""Set-based inserts for large imports: many rows of one table in one statement stream,
below the ORM (no model instance, no per-row SQL built by Django).

PostgreSQL gets ``COPY ... FROM STDIN`` (psycopg's ``cursor.copy``); SQLite one prepared
``INSERT`` run with ``executemany``. Keys are reserved first (the table's sequence on
PostgreSQL; after the highest key ever used on SQLite, inside the write transaction that
holds the database's write lock), so the caller knows every new row's id without reading
them back: the history rows and the flags point at them.

Values go through each field's ``get_db_prep_save`` where the backend needs a conversion
(date-times, decimals), exactly as a ``save()`` would store them."""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.db import connection, models


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` fresh primary keys for ``model``; call inside the write transaction."""
    if count <= 0:
        return []
    table = model._meta.db_table
    pk_column = model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The sequence's name first: inside the SELECT, pg_get_serial_sequence (stable,
            # not constant) was looked up again for every id, 0.35 of 0.43 s for 100,000.
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)",
                [connection.ops.quote_name(table), pk_column],
            )
            sequence = cursor.fetchone()[0]
            cursor.execute(
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count]
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite AUTOINCREMENT never reuses a key: start after the highest ever handed out
        # (sqlite_sequence), which an explicit insert then moves on by itself.
        quote = connection.ops.quote_name
        cursor.execute(f"SELECT MAX({quote(pk_column)}) FROM {quote(table)}")  # noqa: S608
        highest = cursor.fetchone()[0] or 0
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        found = cursor.fetchone()
        start = max(highest, found[0] if found else 0) + 1
    return list(range(start, start + count))


def _converters(model: type[models.Model], columns: Sequence[str]):
    """Per column: None when the value goes to the driver as it is, else a function. The
    conversions are remembered per value: a file's rows share few distinct date-times and
    values (the write time of every row, the day's draw times)."""
    fields = {f.attname: f for f in model._meta.concrete_fields}
    converters = []
    for name in columns:
        field = fields[name]
        # Keys included: they are the integers ``reserve_ids`` handed out, each seen once,
        # so remembering their conversion only filled a dictionary.
        simple = isinstance(
            field, models.CharField | models.TextField | models.IntegerField | models.ForeignKey
        )
        if connection.vendor == "postgresql" and isinstance(
            field, models.DateTimeField | models.DecimalField | models.BooleanField
        ):
            simple = True  # psycopg adapts these as Django would
        converters.append(None if simple else _remembering(field))
    return converters


def _remembering(field):
    seen: dict = {}

    def convert(value):
        try:
            return seen[value]
        except KeyError:
            seen[value] = converted = field.get_db_prep_save(value, connection)
            return converted

    return convert


def insert_rows(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence],
    *,
    converted: bool = False,
) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``, attnames) into ``model``'s table.
    Inside the caller's transaction; a refusal (a constraint) raises the driver's error,
    wrapped by Django as ``IntegrityError``/``DatabaseError``. ``converted``: the values
    are already as ``get_db_prep_save`` gives them (``insert_defaults``)."""
    if not rows:
        return
    converters = [] if converted else _converters(model, columns)
    converting = [(i, c) for i, c in enumerate(converters) if c is not None]
    if converting:
        # Only the columns that need it: rebuilding every value of 200,000 rows cost more
        # than converting the few that do.
        def converted(row: Sequence) -> list:
            row = list(row)
            for index, convert in converting:
                row[index] = convert(row[index])
            return row

        rows = [converted(row) for row in rows]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    fields = [by_attname[c] for c in columns]
    names = ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django wraps psycopg's errors raised inside its cursor; COPY goes through the
            # raw cursor, so its errors are wrapped the same way here.
            types = _binary_types(fields)
            sql = f"COPY {table} ({names}) FROM STDIN"
            if types:
                sql += " (FORMAT BINARY)"
            started = time.monotonic()
            with connection.wrap_database_errors:
                with cursor.cursor.copy(sql) as copy:
                    if types:
                        copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
            if connection.queries_logged:  # as Django logs its own statements (tests count)
                connection.queries_log.append(
                    {
                        "sql": f"{sql} ({len(rows)} rows)",
                        "time": f"{time.monotonic() - started:.3f}",
                    }
                )
            return
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608


def _binary_types(fields: Sequence[models.Field]) -> list[str] | None:
    """The PostgreSQL type of each field's column, for a binary ``COPY``; None when psycopg
    does not know one of them (then the rows go as text). Binary: the server reads date-times and
    decimals as they are stored instead of parsing their text, and psycopg writes them
    without formatting it (measured: 100,000 troughs 0.74 -> 0.38 s into a bare table).
    Each value is dumped by its column's type, so it must be of that type (a decimal for
    ``numeric``, a string for ``varchar``): what ``get_db_prep_save`` and the callers give."""
    adapters = connection.connection.adapters.types
    types = []
    for field in fields:
        # "numeric(6, 2)", "varchar(40)": the modifiers do not change the binary format.
        db_type = field.db_type(connection).split("(")[0].strip()
        if adapters.get(db_type) is None:
            return None
        types.append(db_type)
    return types


def insert_defaults(model: type[models.Model], column: str, values: Sequence, **fixed) -> None:
    """One row per value of ``column`` (an attname), with ``fixed`` values by attname and
    every other field at its default (the key from the table's own sequence): what
    ``bulk_create`` of such objects stores, without building a model instance per row."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = [f.attname for f in fields]
    template = [
        f.get_db_prep_save(fixed.get(f.attname, f.get_default()), connection) for f in fields
    ]
    at = columns.index(column)
    rows = [(*template[:at], value, *template[at + 1 :]) for value in values]
    insert_rows(model, columns, rows, converted=True)
