"""Run an import: read, validate and write every row in one transaction, then keep or roll
back; a dry run (the web preview) judges every row by reads only, with no transaction. Used
by ``import_csv`` and the web upload, so both report the same problems."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction

from .. import config, gc_pause
from ..log_filters import database_refusal
from ..models import Patient, Source
from ..services import Refit, patients_reassess
from .csv_reader import Problem, read_table
from .kinds import CREATED, ERROR, IMPORTERS, UNCHANGED, UPDATED, Context, RowErrors
from .levels import ChangedMeanwhile


@dataclass
class RowResult:
    row: int
    action: str
    mrn: str
    values: dict[str, str]
    problems: list[Problem] = field(default_factory=list)


@dataclass
class ImportReport:
    kind: str
    dry_run: bool
    rows: list[RowResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def counts(self) -> Counter:
        counts = Counter({CREATED: 0, UPDATED: 0, UNCHANGED: 0})
        counts.update(r.action for r in self.rows if r.action != ERROR)
        return counts

    def summary(self) -> str:
        c = self.counts
        text = f"{c[CREATED]} created, {c[UPDATED]} updated, {c[UNCHANGED]} unchanged"
        if self.problems:
            return f"{len(self.problems)} problem(s): nothing imported"
        if self.dry_run:
            return f"dry run, nothing written: would be {text}"
        if not c[CREATED] and not c[UPDATED]:
            return f"nothing changed: {text}"
        return text


class _Rollback(Exception):
    pass


# progress(rows_done, rows_total): called as rows are judged, and once at the end.
Progress = Callable[[int, int], None]
BeforeCommit = Callable[["ImportReport"], None]
PROGRESS_EVERY = 1000


def run_csv_import(
    kind: str,
    data: bytes,
    *,
    dry_run: bool = False,
    user=None,
    source: str = Source.CSV,
    progress: Progress | None = None,
    before_commit: BeforeCommit | None = None,
    refit: Refit = "now",
) -> ImportReport:
    """Judge and (unless ``dry_run``) write a CSV file of ``kind``; all rows or none.

    ``before_commit(report)`` runs inside the write transaction once every row is accepted,
    so a caller's own bookkeeping (a background job marking itself done) commits, or rolls
    back, together with the rows. ``refit``: when the forecasts of the patients written are
    fitted again ("background" for jobs and commands: see ``services.patients_reassess``)."""
    importer_class = IMPORTERS[kind]
    report = ImportReport(kind=kind, dry_run=dry_run)
    table = read_table(
        data,
        required=importer_class.required,
        optional=importer_class.optional,
        aliases=importer_class.aliases,
        derived=importer_class.derived,
    )
    report.warnings = table.warnings
    report.problems = list(table.problems)
    if report.problems:
        return report
    ctx = Context(
        thresholds=config.load_thresholds(),
        decimal_comma=table.decimal_comma,
        user=user,
        source=source,
        bulk=True,
    )
    importer = importer_class(ctx)
    if importer.judges_first:
        # Every row's values, result and snapshot live to the end of the file, and no row
        # leaves cyclic garbage behind (gc_pause). The row-by-row kinds' model saves do, a
        # dozen objects a row, so they keep the collector.
        with gc_pause.collector_paused():
            _judge_then_write(importer, table.rows, report, dry_run, progress, before_commit, refit)
    elif dry_run:
        ctx.validate_only = True
        _judge_only(importer, table.rows, report, progress)
    else:
        _judge_and_write(importer, table.rows, report, progress, before_commit, refit)
    if progress:
        progress(len(table.rows), len(table.rows))
    return report


def _judge_row(importer, line: int, row: dict[str, str], savepoints: bool) -> RowResult:
    result = RowResult(line, ERROR, row.get("mrn", ""), row)
    try:
        # A savepoint per row: a database refusal spoils only its own row, and
        # PostgreSQL's transaction stays usable for reporting the rest.
        savepoint = transaction.atomic() if savepoints else nullcontext()
        with savepoint:
            result.action, result.mrn = importer.checked_import(row)
    except RowErrors as exc:
        result.problems = [Problem(line, e.field, str(e.value), e.message) for e in exc.errors]
    except DatabaseError as exc:
        refusal = f"refused by the database: {database_refusal(exc)}"
        result.problems = [Problem(line, "-", "", refusal)]
    return result


def _judge_rows(importer, rows, report: ImportReport, progress, savepoints: bool) -> None:
    total = len(rows)
    for done, (line, row) in enumerate(rows, start=1):
        if progress and done % PROGRESS_EVERY == 0:
            progress(done, total)
        result = _judge_row(importer, line, row, savepoints)
        report.problems.extend(result.problems)
        report.rows.append(result)


def _write(importer, report: ImportReport, before_commit, refit: Refit) -> None:
    """Inside the write transaction: the importer's waiting writes, the touched patients'
    flags and summaries, and the caller's bookkeeping. Raises _Rollback when refused."""
    ctx = importer.ctx
    try:
        importer.finish()
        # A levels file's new troughs are inserted in here, with their flags.
        patients_reassess(
            Patient.objects.filter(pk__in=ctx.affected),
            troughs=importer.changed_troughs(),
            refit=refit,
            **importer.reassess_options(),
        )
    except ChangedMeanwhile as exc:
        report.problems.append(Problem(0, "-", "", f"{exc}: nothing imported, import it again"))
        raise _Rollback from exc
    except DatabaseError as exc:
        # Another import stored the same results meanwhile: the constraints refuse the
        # batch, and this file writes nothing.
        report.problems.append(
            Problem(0, "-", "", f"refused by the database: {database_refusal(exc)}")
        )
        raise _Rollback from exc
    report.written = True
    if before_commit:
        before_commit(report)


def _judge_then_write(importer, rows, report, dry_run, progress, before_commit, refit) -> None:
    """Set-based (levels): every row judged with reads only and no transaction held, so a
    dry run (the web preview) locks nothing however large the file; then one short write
    transaction when every row is accepted."""
    importer.prepare([row for _line, row in rows])
    _judge_rows(importer, rows, report, progress, savepoints=False)
    if report.problems or dry_run:
        return
    try:
        with transaction.atomic():
            _write(importer, report, before_commit, refit)
    except _Rollback:
        report.written = False


def _judge_only(importer, rows, report: ImportReport, progress) -> None:
    """A dry run of a row-by-row kind (patients, regimens, medications, labs): every row
    judged by reads only (``ctx.validate_only``), no transaction, no savepoint, so the web
    preview locks nothing (on SQLite a transaction takes the write lock at BEGIN; on
    PostgreSQL a write takes row and unique-index locks). Each row meets what the earlier
    rows would have written, so the report is the import's."""
    importer.prepare([row for _line, row in rows])
    _judge_rows(importer, rows, report, progress, savepoints=False)


def _judge_and_write(importer, rows, report, progress, before_commit, refit) -> None:
    """Row by row (patients, regimens, medications, labs): each row written as it is
    judged, inside one transaction, so later rows see earlier ones; rolled back when any
    row failed (a dry run takes ``_judge_only`` instead)."""
    try:
        with transaction.atomic():
            importer.prepare([row for _line, row in rows])
            _judge_rows(importer, rows, report, progress, not importer.own_savepoints)
            if report.problems:
                raise _Rollback
            _write(importer, report, before_commit, refit)
    except _Rollback:
        report.written = False
