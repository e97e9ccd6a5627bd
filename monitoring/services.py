"""Writes that are more than a form save: re-judging a patient, marking errors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import config, forecasting, gc_pause, rules, split_work, validation
from .alert_text import ACK_LABELS, action_text
from .assessment import (
    PatientAssessment,
    assess_patient,
    end_of_day,
    target_from_assignment,
    with_metrics_window,
)
from .models import (
    HISTORY_REASON_LENGTH,
    LEVEL_COMPUTED_FIELDS,
    PATIENT_SUMMARY_FIELDS,
    AlertAcknowledgement,
    ConcomitantDrug,
    LabResult,
    LevelStatus,
    Patient,
    PatientForecast,
    RecordStatus,
    Regimen,
    Source,
    TroughLevel,
)
from .selectors import joined_or, patient_record, patient_records

COMPUTED_LEVEL_FIELDS = LEVEL_COMPUTED_FIELDS

# When a write refits the forecasts it touched (``patients_reassess``).
Refit = Literal["now", "background", "no"]


def patients_assess(
    patients: Iterable[Patient],
    *,
    as_of: date | None = None,
    thresholds: rules.Thresholds | None = None,
    **selection,
) -> list[PatientAssessment]:
    """Judge patients without writing anything (pages, exports). ``selection``: which
    records to load (``selectors.patient_records``)."""
    thresholds = thresholds or config.load_thresholds()
    default = config.default_target()
    return [
        assess_patient(r, default_target=default, thresholds=thresholds, as_of=as_of)
        for r in patient_records(patients, **selection)
    ]


def patients_reassess(
    patients: Iterable[Patient],
    *,
    troughs: Collection[int] | None = None,
    refit: Refit = "now",
    new_levels: Collection = (),
    store_new: Callable[[], None] | None = None,
    records_committed: bool = False,
) -> list[PatientAssessment]:
    """Recompute and store every level's flags and each patient's alert summary. Called
    after any write that can change a verdict (a level, regimen, target, drug or lab).
    The results carry the records loaded for the rules only (``patient_records``).

    ``troughs``: when only troughs were written (a levels import), the ids of those added
    or changed. A trough's flags depend on the patient's regimens, targets and drugs, never
    on the other troughs, so the others keep theirs; the summary reads only the troughs of
    the metrics window and the latest one that counts, which is the stored
    ``latest_level`` unless one of ``troughs`` replaced it (every earlier write kept it
    current). So these are all that is loaded and judged: the cost follows the file, not the
    patients' years of history, and the stored result is the same as re-judging everything
    (tests compare the two). A patient whose summary is marked (``assessed_on`` empty) is
    judged in full all the same.

    ``refit``: the records changed, so the model-informed forecast is fitted again (see
    ``forecasting``): "now" in this request (a clinician's form: the page shows the result),
    "background" by a task once this write commits (an interface or an import, whose
    throughput a fit per message would cap), "no" when nothing a fit reads changed (a new
    day alone). See ``forecasts_after_change``.

    ``new_levels`` (with ``troughs`` holding their ids): troughs an import is about to
    insert, as plain objects with their ids reserved (``importers.levels.LevelSnapshot``):
    judged with the stored ones, their flags set on them and not written here;
    ``store_new()`` inserts them, inside this function's transaction before the summaries
    (which point at them) are stored. So a large import writes each trough once, with its
    flags, instead of inserting it, reading it back and updating it.

    ``records_committed``: the caller has written nothing yet that the rules read (an
    import that only adds troughs, passed as ``new_levels``; the daily refresh). Then
    thousands of patients are judged half in a helper process on the second core
    (``split_work``), which reads through its own connection; the result is the same
    (tests compare the two) and the assessments are not returned (an empty list)."""
    with gc_pause.collector_paused():  # thousands of patients' records, all kept to the end
        return _reassess(list(patients), troughs, refit, new_levels, store_new, records_committed)


def _reassess(patients, troughs, refit, new_levels, store_new, records_committed):
    judging = _Judging(troughs, {level.pk for level in new_levels}, new_levels)
    if split_work.usable(len(patients), records_committed=records_committed):
        results = []
        verdicts = split_work.in_two(judging.verdicts, patients)
    else:
        results = judging.assessments(patients)
        verdicts = [judging.verdict(result) for result in results]
    updates = _apply_verdicts(verdicts, patients, new_levels)
    with transaction.atomic():
        if store_new is not None:
            store_new()
        _update_rows(TroughLevel, COMPUTED_LEVEL_FIELDS, updates)
        _update_each(Patient, patients, PATIENT_SUMMARY_FIELDS)
    if refit != "no":
        forecasts_after_change(verdicts, patients, background=refit == "background")
    return results


@dataclass(frozen=True, slots=True)
class PatientVerdict:
    """What re-judging one patient stores, as plain values (a helper process returns
    them): the summary fields, the latest trough that counts, the troughs whose flags
    changed (id, ``COMPUTED_LEVEL_FIELDS`` values) and the current target band."""

    patient_pk: int
    summary: dict
    latest_level_pk: int | None
    levels: list[tuple[int, tuple]]
    band: tuple[float, float]


class _Judging:
    """One re-judge's choices (which troughs to load, as of when), applied to any subset
    of the patients: so both halves of a split judge exactly as one process would."""

    def __init__(self, troughs: Collection[int] | None, new_ids: set[int], new_levels) -> None:
        self.troughs = troughs
        self.new_ids = new_ids
        self.thresholds = config.load_thresholds()
        self.as_of = timezone.localdate()
        self.selection: dict = {"for_rules": True, "rule_labs_until": end_of_day(self.as_of)}
        if new_levels:
            self.selection["extra_levels"] = new_levels

    def assessments(self, patients: list[Patient]) -> list[PatientAssessment]:
        judge = functools.partial(patients_assess, as_of=self.as_of, thresholds=self.thresholds)
        if self.troughs is None:
            return judge(patients, **self.selection)
        # Never judged, or marked after a change of thresholds (patients_mark_for_rejudging):
        # their stored flags are not to be trusted, so they are judged in full.
        whole = [p for p in patients if p.assessed_on is None]
        partial = [p for p in patients if p.assessed_on is not None]
        results = judge(whole, **self.selection)
        window = self.thresholds.metrics_window_days
        window_start = end_of_day(self.as_of) - timedelta(days=window)
        latest = {p.latest_level_id for p in partial if p.latest_level_id is not None}
        # The new troughs come with the call (``new_levels``): only stored ones are read.
        stored = {*self.troughs, *latest} - self.new_ids
        return results + judge(
            partial, levels_since=window_start, level_pks=stored, **self.selection
        )

    def verdict(self, result: PatientAssessment) -> PatientVerdict:
        """The verdict of one judged patient; the loaded troughs and the patient take the
        new values too (the assessments returned show them)."""
        changed = []
        for a in result.levels:
            level = a.level
            hours = a.timing.hours
            new = (
                a.target.low,
                a.target.high,
                a.range,
                a.timing.code,
                a.timing.reason,
                rules.round_to(hours, 3) if hours is not None else None,
                a.steady_state,
            )
            if any(getattr(level, k) != v for k, v in zip(COMPUTED_LEVEL_FIELDS, new, strict=True)):
                for k, v in zip(COMPUTED_LEVEL_FIELDS, new, strict=True):
                    setattr(level, k, v)
                changed.append((level.pk, new))
        patient = result.records.patient
        patient_summary_set(patient, result, self.as_of)
        # By id: the rules read plain rows (``for_rules``) and troughs not stored yet.
        patient.latest_level_id = result.latest.level.pk if result.latest else None
        summary = {name: getattr(patient, name) for name in _SUMMARY_VALUES}
        return PatientVerdict(patient.pk, summary, patient.latest_level_id, changed, _band(result))

    def verdicts(self, patients: Sequence[Patient]) -> list[PatientVerdict]:
        return [self.verdict(result) for result in self.assessments(list(patients))]


# The summary fields a verdict carries by value (``latest_level`` goes by id).
_SUMMARY_VALUES = [name for name in PATIENT_SUMMARY_FIELDS if name != "latest_level"]


def _apply_verdicts(
    verdicts: list[PatientVerdict], patients: list[Patient], new_levels: Collection
) -> list[tuple[int, tuple]]:
    """Set the verdicts on this process's patients and new troughs (a helper's were set
    on its own copies); return the (id, values) of the stored troughs to update."""
    by_pk = {p.pk: p for p in patients}
    new = {level.pk: level for level in new_levels}
    updates = []
    for verdict in verdicts:
        patient = by_pk[verdict.patient_pk]
        for name, value in verdict.summary.items():
            setattr(patient, name, value)
        patient.latest_level_id = verdict.latest_level_pk
        for pk, values in verdict.levels:
            level = new.get(pk)
            if level is None:
                updates.append((pk, values))
                continue
            for k, v in zip(COMPUTED_LEVEL_FIELDS, values, strict=True):
                setattr(level, k, v)
    return updates


def forecasts_after_change(
    verdicts: list[PatientVerdict], patients: list[Patient], *, background: bool = False
) -> None:
    """Refit the forecasts of the patients a write touched, in the same request when they
    are few (a form); mark them stale when many, for the next look at each patient or the
    daily refresh to refit.

    ``background``: marked stale, and when few (the patients a request would have refitted)
    one task refits them once the write commits (``transaction.on_commit``: a worker must
    see the new records, and a write rolled back queues nothing); many are left to the
    view and the daily refresh as above, not an hour of fits holding a worker. Until then a
    page that shows a patient refits a stale forecast itself (``patient_forecast``), so no
    page shows the old fit as current."""
    if not settings.PK_FORECASTS or not verdicts:
        return
    ids = [v.patient_pk for v in verdicts]
    if background:
        forecasting.patients_mark_forecast_stale(ids)
        if len(ids) <= forecasting.SYNCHRONOUS_LIMIT:
            # robust: the records are committed by then; a queue that refuses the task
            # leaves the forecasts stale (refitted on view or daily), not a failed write.
            transaction.on_commit(lambda: _enqueue_refit(ids), robust=True)
        return
    if len(verdicts) <= forecasting.SYNCHRONOUS_LIMIT:
        by_pk = {p.pk: p for p in patients}
        forecasting.patients_refit(
            [by_pk[pk] for pk in ids], {v.patient_pk: v.band for v in verdicts}
        )
    else:
        forecasting.patients_mark_forecast_stale(ids)


def _band(assessment: PatientAssessment) -> tuple[float, float]:
    return float(assessment.current_target.low), float(assessment.current_target.high)


def _enqueue_refit(patient_ids: list[int]) -> None:
    from .tasks import refit_forecasts  # tasks imports the importers, which import this

    refit_forecasts.enqueue(patient_ids)


def patients_refit_marked(patient_ids: Iterable[int]) -> int:
    """The background refit (``tasks.refit_forecasts``): each of these patients whose
    forecast is still stale (a page view may have refitted it meanwhile) is fitted, and the
    fit stored only if no newer change was marked while it ran. Returns how many were."""
    if not settings.PK_FORECASTS:
        return 0
    marks = dict(
        PatientForecast.objects.filter(patient_id__in=list(patient_ids), stale=True).values_list(
            "patient_id", "change_count"
        )
    )
    stored = 0
    for patient in Patient.objects.filter(pk__in=marks).order_by("pk"):
        band = _band(patient_assess(patient))
        stored += forecasting.patient_refit_if_unchanged(patient, band, marks[patient.pk])[1]
    return stored


def patient_forecast(patient: Patient, assessment: PatientAssessment):
    """The stored forecast for a page; fitted now only if missing or stale (a large
    import marked it): once, then stored. None where forecasts are switched off."""
    if not settings.PK_FORECASTS:
        return None
    stored = joined_or(patient, "forecast", PatientForecast.objects.filter(patient=patient).first)
    if stored is None:
        forecasting.patients_refit([patient], {patient.pk: _band(assessment)})
        stored = PatientForecast.objects.get(patient=patient)
    elif stored.stale:
        # Stored as the background task stores it: not over a change marked meanwhile (an
        # HL7 message during the fit), which its own task refits; this page shows this fit.
        fields, _kept = forecasting.patient_refit_if_unchanged(
            patient, _band(assessment), stored.change_count
        )
        for name, value in fields.items():
            setattr(stored, name, value)
    return stored


def patients_refit_stale() -> int:
    """Refit every active patient's missing or stale forecast (the daily refresh)."""
    if not settings.PK_FORECASTS:
        return 0
    stale = Patient.objects.filter(active=True).filter(
        Q(forecast__isnull=True) | Q(forecast__stale=True)
    )
    count = 0
    for patient in stale.iterator(chunk_size=200):
        forecasting.patients_refit([patient], {patient.pk: _band(patient_assess(patient))})
        count += 1
    return count


def patient_summary_set(patient: Patient, result: PatientAssessment, as_of: date) -> None:
    """The stored summary of a judged patient (not saved here), but ``latest_level``, which
    a bulk insert can set only once the troughs have keys (``synthetic.write``)."""
    patient.alert_codes = ";".join(result.alerts)
    patient.warning_count = result.warning_count
    patient.assessed_on = as_of
    patient.next_action = action_text(result.action)
    patient.next_trough_due = result.next_due
    patient.acknowledged_codes = ";".join(sorted(result.acknowledged))
    patient.urgency_band = result.urgency_band
    patient.problem_since = result.problem_since


def patients_refresh_summaries(patients: Iterable[Patient]) -> None:
    """A new day: time alone raises alerts (an overdue trough, 36 months reached, the
    metrics window moving on), so yesterday's summaries are judged again. Stored trough
    flags never depend on the date: only the troughs the summary reads are judged (as after
    an import that wrote none)."""
    patients_reassess(patients, troughs=(), refit="no", records_committed=True)


def patients_mark_for_rejudging() -> None:
    """After a change of thresholds, target profiles or the drug catalogue: every patient's
    flags and summary are judged again in full by the next refresh (``assessed_on`` empty,
    as for a patient never judged)."""
    Patient.objects.update(assessed_on=None)


def patients_refresh(today: date, *, full: bool = False) -> tuple[int, int]:
    """Bring stored verdicts up to date for ``today``: active patients never judged (or
    marked by ``patients_mark_for_rejudging``) in full, those judged on an earlier day by
    summary; with ``full`` every active patient in full. Returns (in full, by summary)."""
    active = Patient.objects.filter(active=True)
    if not full:
        active = active.filter(Q(assessed_on__lt=today) | Q(assessed_on__isnull=True))
    patients = list(active)
    whole = sum(1 for p in patients if full or p.assessed_on is None)
    if full:
        patients_reassess(patients, records_committed=True)
    elif patients:
        patients_refresh_summaries(patients)  # judges the marked ones in full itself
    return whole, len(patients) - whole


@dataclass(frozen=True)
class RefreshCounts:
    """What one daily refresh did: patients re-judged in full, by summary, and refitted
    forecasts."""

    whole: int
    summary: int
    refitted: int


def daily_refresh(today: date, *, full: bool = False) -> RefreshCounts:
    """The daily re-judge: stored verdicts brought up to ``today``, then stale forecasts
    refitted. One function for ``manage.py refresh_summaries`` and the worker's daily duty
    (``monitoring.schedule``), so both do exactly the same work."""
    whole, summary = patients_refresh(today, full=full)
    return RefreshCounts(whole=whole, summary=summary, refitted=patients_refit_stale())


def _update_each(model, records: list, fields: list[str]) -> None:
    """Store ``fields`` of every record (``_update_rows``)."""
    attnames = [model._meta.get_field(name).attname for name in fields]
    _update_rows(
        model, fields, [(r.pk, tuple(getattr(r, name) for name in attnames)) for r in records]
    )


def _update_rows(model, fields: list[str], rows: list[tuple[int, tuple]]) -> None:
    """Store (id, values of ``fields``) rows. On PostgreSQL one ``UPDATE ... FROM unnest``
    of one array per column; elsewhere one ``UPDATE ... WHERE id = %s`` run with
    executemany (SQLite runs it in-process; 5,000 statements sent to PostgreSQL took a
    second).

    Django's ``bulk_update`` writes one CASE per field over the whole batch, which the
    database evaluates for every row of the batch: quadratic, ten seconds for the 2,000
    troughs of one import on SQLite. Computed flags bypass history either way.
    """
    if not rows:
        return
    opts = model._meta
    quote = connection.ops.quote_name
    columns = [opts.get_field(name) for name in fields]
    params = [
        [c.get_db_prep_save(v, connection) for c, v in zip(columns, values, strict=True)] + [pk]
        for pk, values in rows
    ]
    table, key = quote(opts.db_table), quote(opts.pk.column)
    # Identifiers and types from the model's own metadata, quoted; every value a parameter.
    if connection.vendor == "postgresql":
        names = [quote(c.column) for c in columns]
        arrays = ", ".join(f"%s::{c.db_type(connection)}[]" for c in [*columns, opts.pk])
        sql = (
            f"UPDATE {table} SET {', '.join(f'{n} = u.{n}' for n in names)}"  # noqa: S608
            f" FROM unnest({arrays}) AS u({', '.join(names)}, {key})"
            f" WHERE {table}.{key} = u.{key}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [list(column) for column in zip(*params, strict=True)])
        return
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    sql = f"UPDATE {table} SET {assignments} WHERE {key} = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def patient_reassess(patient: Patient) -> PatientAssessment:
    return patients_reassess([patient])[0]


def record_mark_in_error(record, *, reason: str, user=None) -> None:
    """Entered-in-error replaces delete: the record stays, with the reason and its history."""
    reason = (reason or "").strip()
    if not reason:
        raise rules.RuleError("error_reason", reason, "a reason is required")
    if isinstance(record, TroughLevel):
        record.status = LevelStatus.ENTERED_IN_ERROR
    elif isinstance(record, Regimen | ConcomitantDrug | LabResult):
        record.status = RecordStatus.ENTERED_IN_ERROR
    else:  # pragma: no cover - a programming error, not user input
        raise TypeError(f"cannot mark {type(record).__name__} in error")
    record.error_reason = reason
    if user is not None:
        record._history_user = user
    with transaction.atomic():
        record.save(update_fields=["status", "error_reason"])
        patient_reassess(record.patient)


def patient_assess(
    patient: Patient,
    *,
    window_days: int | None = None,
    thresholds: rules.Thresholds | None = None,
    as_of: date | None = None,
) -> PatientAssessment:
    """One patient judged without writing (the patient page). The alerts are those of the
    configured thresholds, so the page agrees with the stored flags and the worklist; with
    ``window_days`` only the metrics are recomputed over that window instead."""
    thresholds = thresholds or config.load_thresholds()
    records = patient_record(patient)
    # The default target applies only to a patient without any assignment (import always
    # creates one): skip its query otherwise, the first assignment stands in unused.
    default = (
        target_from_assignment(records.targets[0]) if records.targets else config.default_target()
    )
    result = assess_patient(records, default_target=default, thresholds=thresholds, as_of=as_of)
    if window_days is not None:
        with_metrics_window(result, window_days, thresholds)
    return result


def level_add(*, patient: Patient, level: TroughLevel, user=None) -> TroughLevel:
    """Save a trough entered on the patient page (already validated by TroughLevelForm) and
    re-judge the patient in the same transaction."""
    level.patient = patient
    level.source = Source.MANUAL
    if user is not None and user.is_authenticated:
        level.entered_by = user
        level._history_user = user
    with transaction.atomic():
        level.save()
        patient_reassess(patient)
    return level


def level_add_last_dose(*, level: TroughLevel, last_dose_at, user=None) -> TroughLevel:
    """Record the missing last-dose time of a trough (the C12h check) and re-judge."""
    thresholds = config.load_thresholds()
    if level.in_error:
        raise rules.RuleError("last_dose_at", "", "the trough is entered in error")
    if level.last_dose_at is not None:
        raise rules.RuleError(
            "last_dose_at", level.last_dose_at.isoformat(), "a last-dose time is already recorded"
        )
    validation.level_timing(level.collected_at, last_dose_at, thresholds)
    level.last_dose_at = last_dose_at
    if user is not None and user.is_authenticated:
        level._history_user = user
    with transaction.atomic():
        level.save(update_fields=["last_dose_at"])
        patient_reassess(level.patient)
    return level


def _authored(record, user, reason: str) -> None:
    """Name the author and the reason on the history row the save writes."""
    if user is not None and user.is_authenticated:
        record._history_user = user
        if hasattr(record, "entered_by_id"):
            record.entered_by = user
    if reason:
        record._change_reason = reason[:HISTORY_REASON_LENGTH]


def patient_record_add(*, patient: Patient, record, user=None, reason: str = ""):
    """Save a regimen, target phase, concomitant drug or lab entered on the patient page
    (already validated by its page form, ``forms.PATIENT_RECORD_FORMS``) and re-judge the
    patient in the same transaction. A regimen keeps the reason as its note too."""
    record.patient = patient
    if hasattr(record, "source"):
        record.source = Source.MANUAL
    if isinstance(record, Regimen) and reason:
        record.note = reason
    _authored(record, user, reason)
    with transaction.atomic():
        record.save()
        patient_reassess(patient)
    return record


def drug_stop(*, drug: ConcomitantDrug, stopped_on: date, user=None, reason: str = ""):
    """Record that a concomitant drug was stopped (its start stays as it was)."""
    if drug.status != RecordStatus.ACTIVE:
        raise rules.RuleError("drug", drug.name, "is entered in error")
    if stopped_on < drug.started_on:
        raise rules.RuleError("stopped_on", stopped_on, "is before started_on")
    drug.stopped_on = stopped_on
    author = drug.entered_by_id
    _authored(drug, user, reason)
    drug.entered_by_id = author  # who keyed in the start stays its author; history names both
    with transaction.atomic():
        drug.save(update_fields=["stopped_on"])
        patient_reassess(drug.patient)
    return drug


def patient_therapy_end_set(*, patient: Patient, therapy_end: date, user=None, reason: str = ""):
    """Record the actual or planned end of all immunosuppression (the 36-month clock)."""
    if patient.therapy_start and therapy_end < patient.therapy_start:
        raise rules.RuleError("therapy_end", therapy_end, "is before therapy_start")
    patient.therapy_end = therapy_end
    _authored(patient, user, reason)
    with transaction.atomic():
        patient.save(update_fields=["therapy_end"])
        patient_reassess(patient)
    return patient


def alert_acknowledge(*, patient: Patient, code: str, note: str = "", user) -> AlertAcknowledgement:
    """A clinician's review of one of the patient's current alerts. It holds for the data
    as they are now (``assessment.data_mark``) and lapses with the next trough, dose or drug
    change; then the patient is re-judged so the next action and the rank follow."""
    if code not in ACK_LABELS:
        raise rules.RuleError("code", code, "this alert is not answered by a review")
    current = patient_assess(patient)
    if code not in current.alerts:
        raise rules.RuleError("code", code, "is not a current alert of this patient")
    with transaction.atomic():
        ack = AlertAcknowledgement(
            patient=patient,
            code=code,
            note=note.strip(),
            data_mark=current.data_mark,
            acknowledged_by=user,
        )
        ack._history_user = user
        ack._change_reason = ACK_LABELS[code]
        ack.save()
        patient_reassess(patient)
    return ack


def level_set_fit_exclusion(*, level: TroughLevel, reason: str, exclude: bool, user=None) -> None:
    """Leave a trough out of the PK fit (or take it back in), with the reason in the history;
    the trough itself, its flags and its place on the chart do not change."""
    reason = " ".join(reason.split())
    if not reason:
        raise rules.RuleError("reason", reason, "a reason is required")
    level.fit_excluded_reason = reason[:300] if exclude else ""
    level._change_reason = (
        f"excluded from the PK fit: {reason}" if exclude else f"back in the PK fit: {reason}"
    )[:HISTORY_REASON_LENGTH]
    if user is not None and user.is_authenticated:
        level._history_user = user  # not entered_by: the result's author stays who entered it
    with transaction.atomic():
        level.save(update_fields=["fit_excluded_reason"])
        patient_reassess(level.patient)


def patient_set_pk_model(*, patient: Patient, model_id: str, reason: str, user=None) -> None:
    """Choose the patient's PK model among the shipped ones (history keeps who and why)."""
    reason = " ".join(reason.split())
    if not reason:
        raise rules.RuleError("reason", reason, "a reason is required")
    if model_id not in forecasting.pk.shipped_models():
        raise rules.RuleError("pk_model", model_id, "not a shipped model")
    patient.pk_model = model_id
    patient._change_reason = f"PK model {model_id}: {reason}"[:HISTORY_REASON_LENGTH]
    if user is not None and user.is_authenticated:
        patient._history_user = user
    with transaction.atomic():
        patient.save(update_fields=["pk_model"])
        patient_reassess(patient)
