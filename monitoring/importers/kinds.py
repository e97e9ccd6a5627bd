"""One importer per CSV kind. Each validates a row through ``monitoring.validation`` and writes
it; the runner wraps the whole file in one transaction and rolls it back when any row failed,
so later rows see earlier ones (a correction that follows its original in the same file
works) and nothing is left behind on error. A dry run (the web preview) writes nothing and
opens no transaction: its rows are judged by reads only (``Context.validate_only``), each
meeting what the earlier rows would have written (kept and looked up by importers/unsaved.py,
which imitates the database for every kind and so lives apart from any one of them).

Levels are the bulk of every file (a lab's history runs to hundreds of thousands of rows), so
``LevelImporter`` in bulk mode (a CSV file) is set-based: every row is judged first, reading
only, against plain snapshots of the stored results the file can meet and of the file's own
earlier rows; ``finish`` then writes the new results and their history with one insert per
table and the few updates through ``save()``, in one short transaction (importers/levels.py).
HL7 messages carry a handful of results each and keep the row-by-row path."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .. import rules, validation
from ..catalog import match_drug
from ..config import DEFAULT_PROFILE_CODE
from ..exports import LEVEL_COLUMNS, PATIENT_COLUMNS
from ..models import (
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    LevelStatus,
    Patient,
    RecordStatus,
    Regimen,
    Source,
    TargetAssignment,
    TargetProfile,
    TroughLevel,
)
from ..selectors import in_chunks
from . import levels, unsaved

CREATED, UPDATED, UNCHANGED, ERROR = "created", "updated", "unchanged", "error"


class RowErrors(Exception):
    def __init__(self, errors: list[rules.RuleError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass
class Context:
    thresholds: rules.Thresholds
    decimal_comma: bool = False
    user: object | None = None
    source: str = Source.CSV
    patients: dict[str, Patient] = field(default_factory=dict)
    affected: set[int] = field(default_factory=set)
    # Bulk mode (CSV files): new levels wait for one batched insert in ``finish``. HL7
    # messages carry a handful of results each and keep the row-by-row path.
    bulk: bool = False
    # Validate-only (the previews: HL7, and CSV files of every kind but levels, whose bulk
    # mode judges by reads anyway): rows are judged by reads alone, with no transaction, so
    # a preview holds no lock. What a row would have written is kept in ``unsaved`` (per
    # model and patient; importers/unsaved.py) and later rows meet it as they would meet it
    # in the database, so the verdicts are those of a real import.
    validate_only: bool = False
    unsaved: dict[tuple, list] = field(default_factory=dict)
    # When the forecasts of the patients written are refitted (services.patients_reassess).
    refit: str = "now"

    def patient(self, mrn: str) -> Patient:
        if mrn not in self.patients:
            found = Patient.objects.filter(mrn=mrn).first()
            if found is None:
                raise rules.RuleError("mrn", mrn, "unknown patient (import the patient first)")
            self.patients[mrn] = found
        return self.patients[mrn]


def kept(error: rules.RuleError) -> rules.RuleError:
    """A row's error kept as data for its report: without its traceback or the exception it
    was raised from, whose frames reach back to whatever keeps the error (the row's
    ``Collector``): a cycle per bad row, which only the garbage collector could free, and
    imports hold it off (``gc_pause``)."""
    error.__traceback__ = error.__cause__ = error.__context__ = None
    return error


class Collector:
    """Gather every field error of a row instead of stopping at the first. ``memory``:
    the answers of pure checks, kept for a whole file (``remembered``)."""

    def __init__(self, memory: dict | None = None) -> None:
        self.errors: list[rules.RuleError] = []
        self.memory = memory

    def __call__(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except rules.RuleError as exc:
            self.errors.append(kept(exc))
            return None

    def remembered(self, func, *args, **kwargs):
        """As calling, for a pure check (the same text gets the same answer): its answer,
        or its error, is remembered in ``memory``, which the collector must have been given.
        A lab's file repeats its units, assays, statuses, draw times and values on
        thousands of rows."""
        key = (func, args, tuple(kwargs.items())) if kwargs else (func, args)
        try:
            value, error = self.memory[key]
        except KeyError:
            try:
                value, error = func(*args, **kwargs), None
            except rules.RuleError as exc:
                value, error = None, kept(exc)
            self.memory[key] = (value, error)
        if error is not None:
            self.errors.append(error)
        return value

    def check(self) -> None:
        if self.errors:
            raise RowErrors(self.errors)


def _stamp(record, ctx: Context) -> None:
    record.source = ctx.source
    if ctx.user is not None and getattr(ctx.user, "pk", None):
        record.entered_by = ctx.user
        record._history_user = ctx.user


def _fill_new(record, values: dict, ctx: Context) -> None:
    for key, value in values.items():
        setattr(record, key, value)
    _stamp(record, ctx)


def _save_changes(record, values: dict, ctx: Context) -> str:
    """Create, update or leave a record, and say which (validate-only: say it, keep the
    record in ``ctx.unsaved``, write nothing)."""
    if record.pk is None and not (ctx.validate_only and unsaved.kept(record, ctx)):
        _fill_new(record, values, ctx)
        if ctx.validate_only:
            unsaved.keep(record, ctx, values)
        else:
            record.save()
        return CREATED
    changed = {k: v for k, v in values.items() if getattr(record, k) != v}
    if not changed:
        return UNCHANGED
    for key, value in changed.items():
        setattr(record, key, value)
    if ctx.validate_only:
        unsaved.keep(record, ctx, changed)
        return UPDATED
    if ctx.user is not None and getattr(ctx.user, "pk", None):
        record._history_user = ctx.user
    record.save()
    return UPDATED


def _writing(ctx: Context):
    """A savepoint around a row's write; none in validate-only mode, which writes nothing
    (and on SQLite, whose transactions begin IMMEDIATE, would take the write lock)."""
    return nullcontext() if ctx.validate_only else transaction.atomic()


def computed_columns(exported: Sequence[str], imported: Sequence[str]) -> tuple[str, ...]:
    """The export's columns an import ignores (the computed ones), so that an exported file
    imports as it is; read from the export's own column list, so the two cannot drift."""
    return tuple(column for column in exported if column not in imported)


class Importer:
    kind = ""
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    # So that an export_csv file of the same kind imports as it is (round trip): the
    # export's names for import columns, and its computed columns (ignored).
    aliases: dict[str, str] = {}
    derived: tuple[str, ...] = ()
    # True when the importer wraps its own writes in savepoints, so the runner can skip the
    # two extra round trips per row of its own (most rows of a bulk import write nothing).
    own_savepoints = False
    # True when ``import_row`` only judges (reads) and ``finish`` writes everything: the
    # runner then judges the whole file outside any transaction and opens the write
    # transaction for ``finish`` alone (and a dry run opens none).
    judges_first = False

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def import_row(self, row: dict[str, str]) -> tuple[str, str]:
        """Validate and write one row; return (action, mrn)."""
        raise NotImplementedError

    def checked_import(self, row: dict[str, str]) -> tuple[str, str]:
        """``import_row`` after refusing any cell with a control character (NUL, escape...),
        which SQLite would store and PostgreSQL refuse: the same answer on both."""
        try:
            # One C call for a whole row, which nearly always holds no control character.
            clean = "".join(row.values()).isprintable()
        except TypeError:  # a cell that is not text
            clean = False
        if not clean:
            errors = []
            for name, value in row.items():
                try:
                    rules.check_text(name, value if isinstance(value, str) else "")
                except rules.RuleError as exc:
                    errors.append(kept(exc))
            if errors:
                raise RowErrors(errors)
        return self.import_row(row)

    def prepare(self, rows: Sequence[dict[str, str]]) -> None:
        """Look up, before the first row, what the rows will need (bulk mode); nothing by
        default."""

    def finish(self) -> None:
        """Write what the rows left waiting (bulk mode); nothing by default."""

    def changed_troughs(self) -> list[int] | None:
        """After ``finish``: when the rows wrote troughs only, their ids, so that only
        those are judged again (``services.patients_reassess``); None: re-judge all."""
        return None

    def reassess_options(self) -> dict:
        """After ``finish``: more keyword arguments of ``services.patients_reassess``."""
        return {}


class PatientImporter(Importer):
    kind = "patients"
    required = ("mrn", "family_name", "given_name", "birth_date", "sex")
    optional = (
        "height_cm",
        "target_profile",
        "therapy_start",
        "therapy_end",
        "ln_class",
        "cyp3a5_expresser",
    )
    derived = computed_columns(PATIENT_COLUMNS, required + optional)

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.profiles = {p.code.lower(): p for p in TargetProfile.objects.all()}
        # Validate-only: mrn → profile pk of the patient's first target (None: no target).
        self._first_profiles: dict[str, int | None] = {}

    def import_row(self, row):
        c = Collector()
        mrn = c(validation.mrn, row.get("mrn"))
        values = {
            "family_name": c(validation.required, row.get("family_name"), "family_name"),
            "given_name": c(validation.required, row.get("given_name"), "given_name"),
            "birth_date": c(
                validation.parse_date, row.get("birth_date"), "birth_date", not_future=True
            ),
            "sex": c(validation.sex, row.get("sex")),
            "height_cm": c(
                validation.height_cm, row.get("height_cm"), decimal_comma=self.ctx.decimal_comma
            ),
            "therapy_start": c(validation.parse_date, row.get("therapy_start"), "therapy_start"),
            "therapy_end": c(validation.parse_date, row.get("therapy_end"), "therapy_end"),
            "ln_class": (row.get("ln_class") or "").strip(),
        }
        # A file without the column (the older format) leaves a recorded genotype alone.
        if "cyp3a5_expresser" in row:
            values["cyp3a5_expresser"] = c(validation.cyp3a5_expresser, row["cyp3a5_expresser"])
        if values["birth_date"] is None and not c.errors:
            c.errors.append(rules.RuleError("birth_date", "", "is required"))
        for name in ("family_name", "given_name"):
            if values[name] and len(values[name]) > 100:
                c.errors.append(rules.RuleError(name, values[name], "longer than 100 characters"))
        if len(values["ln_class"]) > 20:
            c.errors.append(rules.RuleError("ln_class", values["ln_class"], "longer than 20"))
        start, end = values["therapy_start"], values["therapy_end"]
        if start and end and end < start:
            c.errors.append(rules.RuleError("therapy_end", end, "is before therapy_start"))
        code = (row.get("target_profile") or "").strip().lower() or DEFAULT_PROFILE_CODE
        profile = self.profiles.get(code)
        if profile is None:
            c.errors.append(
                rules.RuleError(
                    "target_profile", row.get("target_profile"), "unknown target profile code"
                )
            )
        c.check()
        # Validate-only: a patient an earlier row created or changed is met as it left it.
        earlier = self.ctx.patients.get(mrn) if self.ctx.validate_only else None
        patient = earlier or Patient.objects.filter(mrn=mrn).first() or Patient(mrn=mrn)
        patient.initial_target_profile = profile  # a new patient's first target (Patient.save)
        action = _save_changes(patient, values, self.ctx)
        self.ctx.patients[mrn] = patient
        target_action = self._set_base_target(patient, profile)
        if action == UNCHANGED and target_action:
            action = UPDATED
        self.ctx.affected.add(patient.pk)
        return action, mrn

    def _set_base_target(self, patient: Patient, profile: TargetProfile) -> bool:
        """The file's profile is the patient's first target; later phases are added by staff."""
        if self.ctx.validate_only:
            return self._plan_base_target(patient, profile)
        first = patient.targets.order_by("effective_from").first()
        if first is None:
            start = timezone.make_aware(datetime.combine(patient.birth_date, time.min))
            TargetAssignment.objects.create(patient=patient, profile=profile, effective_from=start)
            return True
        if first.profile_id != profile.pk:
            first.profile = profile
            first.save()
            return True
        return False

    def _plan_base_target(self, patient: Patient, profile: TargetProfile) -> bool:
        """``_set_base_target`` by reads only: the first target's profile of each patient of
        the file is remembered as the rows leave it."""
        if patient.mrn not in self._first_profiles:
            if patient.pk is None:
                # A new patient is saved with the row's profile as its first target.
                self._first_profiles[patient.mrn] = profile.pk
            else:
                first = patient.targets.order_by("effective_from").first()
                self._first_profiles[patient.mrn] = first.profile_id if first else None
        changed = self._first_profiles[patient.mrn] != profile.pk
        self._first_profiles[patient.mrn] = profile.pk
        return changed


class RegimenImporter(Importer):
    kind = "regimens"
    required = ("mrn", "effective_at", "formulation", "frequency", "daily_dose_mg")
    optional = ("sampling_hours", "dose_times")

    def import_row(self, row):
        c = Collector()
        dc = self.ctx.decimal_comma
        patient = c(self.ctx.patient, c(validation.mrn, row.get("mrn")) or "")
        effective_at = c(validation.parse_datetime, row.get("effective_at"), "effective_at")
        if effective_at is None and not any(e.field == "effective_at" for e in c.errors):
            c.errors.append(rules.RuleError("effective_at", "", "is required"))
        values = {
            "formulation": c(validation.formulation, row.get("formulation")),
            "frequency": c(validation.frequency, row.get("frequency")),
            "daily_dose_mg": c(
                validation.daily_dose_mg, row.get("daily_dose_mg"), decimal_comma=dc
            ),
            "sampling_hours": c(
                validation.sampling_hours, row.get("sampling_hours"), decimal_comma=dc
            ),
        }
        # A file without the column (the older format) leaves stored clock times alone.
        if "dose_times" in row and values["frequency"]:
            values["dose_times"] = c(validation.dose_times, row["dose_times"], values["frequency"])
        c.check()
        regimen = unsaved.lookup(
            self.ctx,
            Regimen,
            patient,
            lambda r: (r.effective_at, r.status) == (effective_at, RecordStatus.ACTIVE),
            lambda: Regimen.objects.filter(
                patient=patient, effective_at=effective_at, status=RecordStatus.ACTIVE
            ).first(),
        ) or Regimen(patient=patient, effective_at=effective_at)
        if "dose_times" not in values and regimen.dose_times:
            c(validation.dose_times, regimen.dose_times, values["frequency"])
            c.check()
        self.ctx.affected.add(patient.pk)
        return _save_changes(regimen, values, self.ctx), patient.mrn


class LevelImporter(Importer):
    kind = "levels"
    own_savepoints = True
    required = ("mrn", "collected_at", "value", "unit")
    optional = ("last_dose_at", "assay", "accession", "status", "error_reason")
    aliases = {"reported_value": "value", "reported_unit": "unit"}
    derived = computed_columns(LEVEL_COLUMNS, required + optional + tuple(aliases))

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        # Bulk mode: the rows are judged against plain snapshots (the stored results they
        # can meet, and the file's own new ones), and write nothing until ``finish``.
        self.judges_first = ctx.bulk
        self._index: dict[tuple, list[levels.LevelSnapshot]] = {}
        self._loaded: set[int] = set()
        self._new: list[levels.LevelSnapshot] = []
        self._updates: list[tuple[levels.LevelSnapshot, dict]] = []
        self._changed: list = []
        self._reassess: dict = {}
        self._memory: dict = {}

    def changed_troughs(self):
        return [record.pk for record in self._changed]

    def reassess_options(self) -> dict:
        return self._reassess

    @staticmethod
    def _key(patient_pk: int, accession: str, collected_at, comparator: str, value) -> tuple:
        if accession:
            return (patient_pk, accession)
        return (patient_pk, "", collected_at.astimezone(UTC), comparator, value)

    def _remember(self, snapshot: levels.LevelSnapshot) -> None:
        key = self._key(
            snapshot.patient_id,
            snapshot.accession,
            snapshot.collected_at,
            snapshot.comparator,
            snapshot.value_ng_ml,
        )
        self._index.setdefault(key, []).append(snapshot)

    def prepare(self, rows):
        """Bulk mode: the file's patients, and snapshots of the stored results its rows can
        meet (those with the file's accessions, and those without one for the patients
        with such rows), in a few queries for the whole file, reading only."""
        if not self.ctx.bulk:
            return
        accessions: dict[str, set[str]] = {}
        # Each distinct MRN checked once, and the rows' own checks find the answer: a
        # file of 100,000 rows names a few thousand patients (0.24 s of checks -> 0.01).
        remembered = Collector(self._memory).remembered
        for row in rows:
            mrn = remembered(validation.mrn, row.get("mrn"))
            if mrn is None:
                continue  # reported against its row
            accessions.setdefault(mrn, set()).add((row.get("accession") or "").strip())
        missing = sorted(accessions.keys() - self.ctx.patients.keys())
        for chunk in in_chunks(missing):
            for patient in Patient.objects.filter(mrn__in=chunk):
                self.ctx.patients[patient.mrn] = patient
        wanted = {
            self.ctx.patients[mrn].pk: found
            for mrn, found in accessions.items()
            if mrn in self.ctx.patients
        }
        self._load(list(wanted), wanted)

    def _load(self, patient_pks: list[int], accessions: dict[int, set[str]] | None) -> None:
        todo = [pk for pk in patient_pks if pk not in self._loaded]
        self._loaded.update(todo)
        for snapshot in levels.load_snapshots(todo, accessions):
            self._remember(snapshot)

    def finish(self) -> None:
        """Bulk mode, inside the write transaction. Usually the file only adds results:
        their ids are reserved and the insert waits for ``patients_reassess``, which judges
        them from their plain values and inserts them with their flags (``store_new``).
        A file that also updates stored results inserts, updates, and is re-judged from
        the database."""
        if not self.ctx.bulk:
            return
        new, self._new = self._new, []
        updates, self._updates = self._updates, []
        if updates:
            levels.insert_new(new, self.ctx)
            updated = levels.apply_updates(updates, self.ctx)
            inserted = {s.pk for s in new}
            self._changed = new + [TroughLevel(pk=pk) for pk in updated if pk not in inserted]
            return
        levels.reserve_ids(new)
        self._changed = new
        if new:
            self._reassess = {
                "new_levels": new,
                "store_new": lambda: levels.insert_new(new, self.ctx),
                # Nothing written yet: the new troughs wait for ``store_new``.
                "records_committed": True,
            }

    def import_row(self, row):
        c = Collector(self._memory)
        t = self.ctx.thresholds
        patient = c(self.ctx.patient, c.remembered(validation.mrn, row.get("mrn")) or "")
        collected_at = c.remembered(
            validation.parse_datetime, row.get("collected_at"), "collected_at", not_future=True
        )
        if collected_at is None and not any(e.field == "collected_at" for e in c.errors):
            c.errors.append(rules.RuleError("collected_at", "", "is required"))
        last_dose_at = c.remembered(
            validation.parse_datetime, row.get("last_dose_at"), "last_dose_at"
        )
        level = c.remembered(
            rules.parse_level,
            row.get("value"),
            row.get("unit"),
            ceiling_ng_ml=t.plausibility_ceiling_ng_ml,
            decimal_comma=self.ctx.decimal_comma,
        )
        assay = c.remembered(validation.assay, row.get("assay"))
        status, error_reason = self._status(c, row)
        accession = (row.get("accession") or "").strip()
        if len(accession) > 64:
            c.errors.append(rules.RuleError("accession", accession, "longer than 64 characters"))
        if collected_at and last_dose_at:
            c.remembered(
                validation.level_timing,
                collected_at,
                last_dose_at,
                t,
                raw=row.get("last_dose_at", "").strip(),
            )
        c.check()
        values = {
            "collected_at": collected_at,
            "last_dose_at": last_dose_at,
            "reported_value": row["value"].strip(),
            "reported_unit": row["unit"].strip(),
            "comparator": level.comparator,
            "value_ng_ml": validation.stored_ng_ml(level.value_ng_ml),
            "assay": assay,
            "status": status,
        }
        if error_reason:
            values["error_reason"] = error_reason
        existing = self._find(patient, accession, collected_at, level)
        if existing is not None and existing.in_error:
            # A result staff marked entered-in-error is not brought back by a re-import.
            return UNCHANGED, patient.mrn
        if existing is not None and error_reason:
            # A file never retracts a stored result: that needs a person looking at it.
            raise RowErrors(
                [
                    rules.RuleError(
                        "status",
                        row.get("status", ""),
                        "this result is stored and not in error; mark it entered in error on the "
                        "patient page or in the admin",
                    )
                ]
            )
        if (
            existing is not None
            and status == LevelStatus.PRELIMINARY
            and existing.status != LevelStatus.PRELIMINARY
        ):
            # A late preliminary never downgrades the lab's final or corrected result.
            return UNCHANGED, patient.mrn
        if existing is not None and accession and self._value_differs(existing, level):
            if status != LevelStatus.CORRECTED:
                raise RowErrors(
                    [
                        rules.RuleError(
                            "value",
                            row["value"],
                            f"differs from the stored result {existing.reported_value} "
                            f"{existing.reported_unit} for accession {accession}; "
                            "send it with status 'corrected' to supersede it",
                        )
                    ]
                )
        self.ctx.affected.add(patient.pk)
        if self.ctx.bulk:
            return self._plan(existing, patient, accession, values), patient.mrn
        record = existing or TroughLevel(patient=patient, accession=accession)
        # Without the runner's savepoint: a refusal must spoil this row only (validate-only
        # mode writes nothing, so it takes none).
        with _writing(self.ctx):
            action = _save_changes(record, values, self.ctx)
        if action != UNCHANGED:
            self._changed.append(record)
        return action, patient.mrn

    def _plan(self, existing, patient: Patient, accession: str, values: dict) -> str:
        """Bulk mode: what the row will write, kept for ``finish``; later rows of the file
        see it as the row-by-row path would have stored it."""
        if existing is None:
            snapshot = levels.LevelSnapshot(patient_id=patient.pk, accession=accession, **values)
            snapshot.pk = None
            self._new.append(snapshot)
            self._remember(snapshot)
            return CREATED
        changes = {k: v for k, v in values.items() if getattr(existing, k) != v}
        if not changes:
            return UNCHANGED
        twin = existing.changed(changes)
        group = self._index[
            self._key(
                existing.patient_id,
                existing.accession,
                existing.collected_at,
                existing.comparator,
                existing.value_ng_ml,
            )
        ]
        group[group.index(existing)] = twin
        self._updates.append((existing, changes))
        return UPDATED

    @staticmethod
    def _status(c: Collector, row: dict[str, str]) -> tuple[str | None, str]:
        """``entered_in_error`` (as the levels export writes a retracted result) is accepted
        for a result not stored yet, with its ``error_reason``: so an export re-imports whole.
        Such a result never counts for flags."""
        text = (row.get("status") or "").strip()
        reason = (row.get("error_reason") or "").strip()
        if text.lower() != LevelStatus.ENTERED_IN_ERROR:
            if reason:
                c.errors.append(
                    rules.RuleError("error_reason", reason, "is only for status entered_in_error")
                )
            return c.remembered(validation.level_status, text), ""
        if not reason:
            c.errors.append(
                rules.RuleError("error_reason", "", "is required with status entered_in_error")
            )
        elif len(reason) > 300:
            c.errors.append(rules.RuleError("error_reason", reason, "longer than 300 characters"))
        return LevelStatus.ENTERED_IN_ERROR, reason

    @staticmethod
    def _value_differs(existing, level: rules.Level) -> bool:
        """A changed value needs status 'corrected', except over a preliminary result,
        which whatever the lab sends next replaces."""
        if existing.status == LevelStatus.PRELIMINARY:
            return False
        return (
            existing.comparator != level.comparator
            or existing.value_ng_ml != validation.stored_ng_ml(level.value_ng_ml)
            or rules.normalise_unit(existing.reported_unit) != level.unit
        )

    def _find(self, patient, accession, collected_at, level):
        """The stored result (a model instance row by row; a snapshot in bulk mode, which
        includes the file's earlier new results) a row is about, or None."""
        if not self.ctx.bulk:
            return unsaved.lookup(
                self.ctx,
                TroughLevel,
                patient,
                lambda r: self._same_result(r, accession, collected_at, level),
                lambda: self._existing(patient, accession, collected_at, level),
            )
        if patient.pk not in self._loaded:
            self._load([patient.pk], None)
        value = validation.stored_ng_ml(level.value_ng_ml)
        key = self._key(patient.pk, accession, collected_at, level.comparator, value)
        for snapshot in self._index.get(key, ()):
            if accession or rules.normalise_unit(snapshot.reported_unit) == level.unit:
                return snapshot
        return None

    @staticmethod
    def _same_result(record: TroughLevel, accession, collected_at, level) -> bool:
        """What ``_existing`` looks for, said of one record (validate-only mode)."""
        if accession:
            return record.accession == accession
        return (
            record.accession == ""
            and record.collected_at == collected_at
            and record.comparator == level.comparator
            and record.value_ng_ml == validation.stored_ng_ml(level.value_ng_ml)
            and rules.normalise_unit(record.reported_unit) == level.unit
        )

    @staticmethod
    def _existing(patient, accession, collected_at, level) -> TroughLevel | None:
        if accession:
            return TroughLevel.objects.filter(patient=patient, accession=accession).first()
        candidates = TroughLevel.objects.filter(
            patient=patient,
            accession="",
            collected_at=collected_at,
            comparator=level.comparator,
            value_ng_ml=validation.stored_ng_ml(level.value_ng_ml),
        )
        for candidate in candidates:
            if rules.normalise_unit(candidate.reported_unit) == level.unit:
                return candidate
        return None


class MedicationImporter(Importer):
    kind = "medications"
    required = ("mrn", "drug", "started_on")
    optional = ("stopped_on",)

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.catalog = list(DrugCatalogEntry.objects.all())

    def import_row(self, row):
        c = Collector()
        patient = c(self.ctx.patient, c(validation.mrn, row.get("mrn")) or "")
        name = c(validation.required, row.get("drug"), "drug")
        if name and len(name) > 120:
            c.errors.append(rules.RuleError("drug", name, "longer than 120 characters"))
        started = c(validation.parse_date, row.get("started_on"), "started_on")
        if started is None and not any(e.field == "started_on" for e in c.errors):
            c.errors.append(rules.RuleError("started_on", "", "is required"))
        stopped = c(validation.parse_date, row.get("stopped_on"), "stopped_on")
        if started and stopped and stopped < started:
            c.errors.append(rules.RuleError("stopped_on", stopped, "is before started_on"))
        c.check()
        drug = unsaved.lookup(
            self.ctx,
            ConcomitantDrug,
            patient,
            lambda r: (
                unsaved.same_name(r.name, name)
                and (r.started_on, r.status) == (started, RecordStatus.ACTIVE)
            ),
            lambda: ConcomitantDrug.objects.filter(
                patient=patient,
                name__iexact=name,
                started_on=started,
                status=RecordStatus.ACTIVE,
            ).first(),
        ) or ConcomitantDrug(patient=patient, started_on=started)
        values = {"name": name, "stopped_on": stopped, "catalog": match_drug(name, self.catalog)}
        self.ctx.affected.add(patient.pk)
        return _save_changes(drug, values, self.ctx), patient.mrn


class LabImporter(Importer):
    kind = "labs"
    required = ("mrn", "collected_at", "test", "value", "unit")
    optional = ("accession",)

    def import_row(self, row):
        c = Collector()
        patient = c(self.ctx.patient, c(validation.mrn, row.get("mrn")) or "")
        collected_at = c(
            validation.parse_datetime, row.get("collected_at"), "collected_at", not_future=True
        )
        if collected_at is None and not any(e.field == "collected_at" for e in c.errors):
            c.errors.append(rules.RuleError("collected_at", "", "is required"))
        test = c(validation.lab_test, row.get("test"))
        unit = c(validation.lab_unit, test, row.get("unit")) if test else None
        value = c(
            validation.lab_value,
            row.get("value"),
            decimal_comma=self.ctx.decimal_comma,
            test=test,
        )
        if value is not None and value > Decimal("100000"):
            c.errors.append(rules.RuleError("value", row.get("value"), "is implausibly large"))
        c.check()
        lab = unsaved.lookup(
            self.ctx,
            LabResult,
            patient,
            lambda r: (
                (r.test, r.collected_at, r.status) == (test, collected_at, RecordStatus.ACTIVE)
            ),
            lambda: LabResult.objects.filter(
                patient=patient,
                test=test,
                collected_at=collected_at,
                status=RecordStatus.ACTIVE,
            ).first(),
        ) or LabResult(patient=patient, test=test, collected_at=collected_at)
        values = {
            "value": value,
            "unit": unit,
            "accession": (row.get("accession") or "").strip()[:64],
        }
        self.ctx.affected.add(patient.pk)
        return _save_changes(lab, values, self.ctx), patient.mrn


IMPORTERS: dict[str, type[Importer]] = {
    cls.kind: cls
    for cls in (PatientImporter, RegimenImporter, LevelImporter, MedicationImporter, LabImporter)
}
