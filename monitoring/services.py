"""Writes that are more than a form save: re-judging a patient, marking errors."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import config, forecasting, rules, validation
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
    flags, instead of inserting it, reading it back and updating it."""
    patients = list(patients)
    thresholds = config.load_thresholds()
    as_of = timezone.localdate()
    new_ids = {level.pk for level in new_levels}
    selection: dict = {
        "for_rules": True,
        "rule_labs_until": end_of_day(as_of),
    }
    if new_levels:
        selection["extra_levels"] = new_levels
    if troughs is None:
        results = patients_assess(patients, as_of=as_of, thresholds=thresholds, **selection)
    else:
        # Never judged, or marked after a change of thresholds (patients_mark_for_rejudging):
        # their stored flags are not to be trusted, so they are judged in full.
        whole = [p for p in patients if p.assessed_on is None]
        partial = [p for p in patients if p.assessed_on is not None]
        results = patients_assess(whole, as_of=as_of, thresholds=thresholds, **selection)
        window_start = end_of_day(as_of) - timedelta(days=thresholds.metrics_window_days)
        latest = {p.latest_level_id for p in partial if p.latest_level_id is not None}
        # The new troughs come with the call (``new_levels``): only stored ones are read.
        stored = {*troughs, *latest} - new_ids
        selection.update(levels_since=window_start, level_pks=stored)
        results += patients_assess(partial, as_of=as_of, thresholds=thresholds, **selection)
    changed_levels = []
    for result in results:
        for a in result.levels:
            level = a.level
            new = {
                "target_low": a.target.low,
                "target_high": a.target.high,
                "range_flag": a.range,
                "timing_flag": a.timing.code,
                "timing_reason": a.timing.reason,
                "hours_post_dose": (
                    rules.round_to(a.timing.hours, 3) if a.timing.hours is not None else None
                ),
                "steady_state": a.steady_state,
            }
            if any(getattr(level, k) != v for k, v in new.items()):
                for k, v in new.items():
                    setattr(level, k, v)
                if level.pk not in new_ids:
                    changed_levels.append(level)
        patient = result.records.patient
        patient_summary_set(patient, result, as_of)
        latest = result.latest.level if result.latest else None
        if latest is None or isinstance(latest, TroughLevel):
            patient.latest_level = latest
        else:  # a trough not stored yet (``new_levels``)
            patient.latest_level_id = latest.pk
    with transaction.atomic():
        if store_new is not None:
            store_new()
        _update_each(TroughLevel, changed_levels, COMPUTED_LEVEL_FIELDS)
        _update_each(Patient, patients, PATIENT_SUMMARY_FIELDS)
    if refit != "no":
        forecasts_after_change(results, background=refit == "background")
    return results


def forecasts_after_change(results: list[PatientAssessment], *, background: bool = False) -> None:
    """Refit the forecasts of the patients a write touched, in the same request when they
    are few (a form); mark them stale when many, for the next look at each patient or the
    daily refresh to refit.

    ``background``: marked stale, and when few (the patients a request would have refitted)
    one task refits them once the write commits (``transaction.on_commit``: a worker must
    see the new records, and a write rolled back queues nothing); many are left to the
    view and the daily refresh as above, not an hour of fits holding a worker. Until then a
    page that shows a patient refits a stale forecast itself (``patient_forecast``), so no
    page shows the old fit as current."""
    if not settings.PK_FORECASTS or not results:
        return
    if background:
        ids = [r.records.patient.pk for r in results]
        forecasting.patients_mark_forecast_stale(ids)
        if len(ids) <= forecasting.SYNCHRONOUS_LIMIT:
            # robust: the records are committed by then; a queue that refuses the task
            # leaves the forecasts stale (refitted on view or daily), not a failed write.
            transaction.on_commit(lambda: _enqueue_refit(ids), robust=True)
        return
    if len(results) <= forecasting.SYNCHRONOUS_LIMIT:
        forecasting.patients_refit(
            [r.records.patient for r in results], {r.records.patient.pk: _band(r) for r in results}
        )
    else:
        forecasting.patients_mark_forecast_stale(r.records.patient.pk for r in results)


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
    patients_reassess(patients, troughs=(), refit="no")


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
        patients_reassess(patients)
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
    """Store ``fields`` of every record: one ``UPDATE ... WHERE id = %s`` run with executemany.

    Django's ``bulk_update`` writes one CASE per field over the whole batch, which the
    database evaluates for every row of the batch: quadratic, ten seconds for the 2,000
    troughs of one import on SQLite. Computed flags bypass history either way.
    """
    if not records:
        return
    opts = model._meta
    quote = connection.ops.quote_name
    columns = [opts.get_field(name) for name in fields]
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    # Identifiers from the model's own metadata, quoted; every value is a parameter.
    sql = f"UPDATE {quote(opts.db_table)} SET {assignments} WHERE {quote(opts.pk.column)} = %s"  # noqa: S608
    params = [
        [column.get_db_prep_save(getattr(record, column.attname), connection) for column in columns]
        + [record.pk]
        for record in records
    ]
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
