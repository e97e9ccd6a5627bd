"""The audit trail: who opened which patient (``AccessLog``) and who changed what in a
patient's records (django-simple-history, read back as one timeline).

Page views that show one patient's data record the visit with the ``logs_access`` decorator
(or by calling ``log_access`` themselves)::

    @require_GET
    @permission_required("monitoring.view_patient", raise_exception=True)
    @logs_access("patient")
    def patient_detail(request, pk): ...

The decorator records every successful response (any method, any headers): a page, its
htmx fragments, a form re-shown with errors. An htmx fragment is coalesced with the row
of the same user, patient and view written in the last ``ACCESS_LOG_COALESCE_MINUTES``
(the server's own record, never the client's word); without such a row it is logged.
Refused, failed and redirected requests show no data and are not visits.
"""

from __future__ import annotations

import getpass
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import wraps

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from . import rules
from .alert_text import ACK_LABELS
from .models import (
    AccessLog,
    AlertAcknowledgement,
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    Patient,
    Regimen,
    TargetAssignment,
    TargetProfile,
    TroughLevel,
)

# --- who is asking ---------------------------------------------------------------------------


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or with ``PROXY_COUNT`` trusted reverse proxies in
    front, the address the outermost of them saw (X-Forwarded-For, counted from the right,
    since everything to the left of what our proxies appended is whatever the client sent).
    Also django-axes' AXES_CLIENT_IP_CALLABLE, so lockouts and the access log agree."""
    remote = _valid_ip(request.META.get("REMOTE_ADDR", "") or "")
    count = getattr(settings, "PROXY_COUNT", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count > 0 and forwarded:
        hops = [hop for hop in (part.strip() for part in forwarded.split(",")) if hop]
        if hops:
            chosen = _valid_ip(hops[-count] if len(hops) >= count else hops[0])
            if chosen:
                return chosen
    return remote


def lockout_username(request: HttpRequest, credentials: dict | None = None) -> str:
    """django-axes' AXES_USERNAME_CALLABLE: the username tried, cut to the longest a real
    one can be. Untrimmed, a 1000-character "username" could not be recorded (the lockout
    tables hold 255) and the attempt would escape the count."""
    field_name = settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        name = credentials.get(field_name)
    else:
        name = getattr(request, "POST", {}).get(field_name)
    limit = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD).max_length
    return str(name or "")[:limit]


# --- access log ------------------------------------------------------------------------------


def _who(request: HttpRequest) -> tuple[object | None, str]:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user, user.get_username()
    return None, ""


def _recently_logged(user, patient_id: int, what: str) -> bool:
    minutes = getattr(settings, "ACCESS_LOG_COALESCE_MINUTES", 30)
    return AccessLog.objects.filter(
        user=user,
        patient_id=patient_id,
        view_name=what[:40],
        at__gte=timezone.now() - timedelta(minutes=minutes),
    ).exists()


def log_access(
    request: HttpRequest, patient: Patient | int, what: str, *, coalesce: bool = False
) -> AccessLog | None:
    """Record that ``request.user`` opened ``what`` (e.g. "patient", "report") of a patient.

    ``coalesce``: skip the row when the same user's visit to the same view of this patient
    is already recorded within the coalescing window (an htmx fragment of a logged page)."""
    user, username = _who(request)
    patient_id = patient if isinstance(patient, int) else patient.pk
    if coalesce and user is not None and _recently_logged(user, patient_id, what):
        return None
    return AccessLog.objects.create(
        user=user,
        username=username,
        patient_id=patient_id,
        view_name=what[:40],
        path=rules.visible(request.path)[:200],
        ip=client_ip(request),
    )


def log_command_access(patient: Patient, what: str, command: str) -> AccessLog:
    """Record that a management command took a patient's data out (no request, no signed-in
    user: the operating-system account that ran it is named instead)."""
    try:
        account = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid, e.g. in some containers
        account = "unknown"
    return AccessLog.objects.create(
        user=None,
        username=f"{account} (manage.py)"[:150],
        patient=patient,
        view_name=what[:40],
        path=f"manage.py {command}"[:200],
    )


def log_bulk_access(
    request: HttpRequest, patient_ids: Iterable[int], what: str, *, search: str = ""
) -> None:
    """One row per patient a list or an export showed, in batched inserts; and, when the
    list was searched or filtered, one more row without a patient holding the search (so a
    search that found nobody is on record too), named ``"<what> search"``."""
    user, username = _who(request)
    ip = client_ip(request)
    path = rules.visible(request.path)[:200]

    def row(patient_id: int | None, view_name: str, detail: str = "") -> AccessLog:
        return AccessLog(
            user=user,
            username=username,
            patient_id=patient_id,
            view_name=view_name[:40],
            detail=detail[:200],
            path=path,
            ip=ip,
        )

    # What was typed is kept as typed, control characters written as escapes: PostgreSQL
    # refuses NUL, and a search for "\x00" is a search all the same.
    rows = [row(None, f"{what} search", rules.visible(search))] if search else []
    rows += [row(pk, what) for pk in patient_ids]
    AccessLog.objects.bulk_create(rows, batch_size=500)


def logs_access(what: str, *, patient_kwarg: str = "pk") -> Callable:
    """Decorate a view taking the patient's pk (URL keyword ``patient_kwarg``): every
    successful response it gives is written to the access log, htmx fragments coalesced
    with a recent row of the same visit."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            response = view(request, *args, **kwargs)
            if 200 <= response.status_code < 300 or response.status_code == 422:
                log_access(
                    request,
                    int(kwargs[patient_kwarg]),
                    what,
                    coalesce=bool(getattr(request, "htmx", False)),
                )
            return response

        return wrapper

    return decorator


# --- change history --------------------------------------------------------------------------

# Each kind of record of a patient: the label shown, the model, and how its history rows
# point at the patient.
HISTORY_KINDS: dict[str, tuple[str, type[models.Model], str]] = {
    "patient": ("Patient", Patient, "id"),
    "target": ("Target", TargetAssignment, "patient_id"),
    "regimen": ("Regimen", Regimen, "patient_id"),
    "level": ("Trough level", TroughLevel, "patient_id"),
    "drug": ("Concomitant drug", ConcomitantDrug, "patient_id"),
    "lab": ("Lab result", LabResult, "patient_id"),
    "review": ("Alert review", AlertAcknowledgement, "patient_id"),
}
# Stored but not editable, so simple-history's diff leaves them out; a trough's canonical
# value is what the flags are computed from, so its changes are shown too.
EXTRA_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    TroughLevel: ("comparator", "value_ng_ml"),
}
HIDDEN_FIELDS = {"id", "created_at"}
# Bookkeeping shown after the record's own fields.
LAST_FIELDS = ("source", "entered_by")
LABELS = {"value_ng_ml": "value (ng/mL, canonical)"}
ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}


@dataclass
class Change:
    field: str
    old: str
    new: str


@dataclass
class HistoryEntry:
    at: datetime
    user: str
    kind: str
    kind_label: str
    record: str
    action: str
    changes: list[Change] = field(default_factory=list)
    reason: str = ""
    history_id: int = 0


@dataclass
class _Lookups:
    users: dict[int, str]
    patients: dict[int, str]
    profiles: dict[int, str]
    drugs: dict[int, str]

    def fk(self, name: str, value: object) -> str | None:
        if value is None:
            return None
        table = {
            "patient": self.patients,
            "profile": self.profiles,
            "catalog": self.drugs,
            "entered_by": self.users,
        }.get(name)
        if table is None:
            return None
        return table.get(value, f"#{value}")


def _text(value: object) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


def _display(model: type[models.Model], name: str, value: object, lookups: _Lookups) -> str:
    model_field = model._meta.get_field(name)
    if model_field.is_relation:
        label = lookups.fk(name, value)
        return label if label is not None else _text(value)
    if model_field.choices and value not in (None, ""):
        return str(dict(model_field.flatchoices).get(value, value))
    return _text(value)


def _label(model: type[models.Model], name: str) -> str:
    return LABELS.get(name) or str(model._meta.get_field(name).verbose_name)


def _describe(kind: str, row, lookups: _Lookups) -> str:
    """A short name for the record as it was in this version."""
    if kind == "patient":
        return f"{row.mrn} {row.family_name}, {row.given_name}"
    if kind == "target":
        return f"{lookups.profiles.get(row.profile_id, '?')} from {_text(row.effective_from)}"
    if kind == "regimen":
        return (
            f"{_text(row.daily_dose_mg)} mg/day {row.formulation} {row.frequency} "
            f"from {_text(row.effective_at)}"
        )
    if kind == "level":
        text = (
            f"{row.comparator}{row.reported_value} {row.reported_unit} collected "
            f"{_text(row.collected_at)}"
        )
        return f"{text} (accession {row.accession})" if row.accession else text
    if kind == "drug":
        return f"{row.name} from {_text(row.started_on)}"
    if kind == "review":
        return f"{ACK_LABELS.get(row.code, row.code)} ({row.code}) at {_text(row.acknowledged_at)}"
    return (
        f"{row.get_test_display()} {_text(row.value)} {row.unit} collected "
        f"{_text(row.collected_at)}"
    )


def _order(name: str) -> int:
    return LAST_FIELDS.index(name) + 1 if name in LAST_FIELDS else 0


def _compared_fields(model: type[models.Model], row) -> list[str]:
    names = [f.name for f in row.tracked_fields if f.editable and f.name not in HIDDEN_FIELDS]
    names += [n for n in EXTRA_FIELDS.get(model, ()) if n not in names]
    return sorted(names, key=_order)


def _changes(model: type[models.Model], new, old, lookups: _Lookups) -> list[Change]:
    if old is None:  # a creation: the values it started with
        return [
            Change(
                _label(model, name),
                "",
                _display(model, name, getattr(new, _attr(model, name)), lookups),
            )
            for name in _compared_fields(model, new)
            # The page is the patient's own: only a move to another patient is news.
            if name != "patient" and getattr(new, _attr(model, name)) not in (None, "")
        ]
    delta = new.diff_against(old, excluded_fields=HIDDEN_FIELDS)
    pairs = [(c.field, c.old, c.new) for c in delta.changes]
    for name in EXTRA_FIELDS.get(model, ()):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            pairs.append((name, before, after))
    return [
        Change(
            _label(model, name),
            _display(model, name, before, lookups),
            _display(model, name, after, lookups),
        )
        for name, before, after in sorted(pairs, key=lambda pair: _order(pair[0]))
    ]


def _attr(model: type[models.Model], name: str) -> str:
    return model._meta.get_field(name).attname


def _history_rows(kind: str, patient_id: int) -> list:
    _, model, key = HISTORY_KINDS[kind]
    history = model.history.model.objects
    if key == "id":
        rows = history.filter(id=patient_id)
    else:
        # Every version of every record that ever belonged to the patient, so a record moved
        # to another patient still shows the move.
        ids = history.filter(**{key: patient_id}).values("id")
        rows = history.filter(id__in=ids)
    return list(rows.order_by("id", "history_date", "history_id"))


def patient_history(patient: Patient, *, kinds: Iterable[str] | None = None) -> list[HistoryEntry]:
    """Every recorded version of the patient and of its targets, regimens, troughs, drugs and
    labs, newest first, each with who made it and what changed (old → new). A fixed number
    of queries however long the history."""
    wanted = [k for k in HISTORY_KINDS if kinds is None or k in kinds]
    rows_by_kind = {kind: _history_rows(kind, patient.pk) for kind in wanted}
    all_rows = [row for rows in rows_by_kind.values() for row in rows]
    user_ids = {r.history_user_id for r in all_rows} | {
        getattr(r, "entered_by_id", None) for r in all_rows
    }
    user_ids.discard(None)
    patient_ids = {getattr(r, "patient_id", None) for r in all_rows} | {patient.pk}
    patient_ids.discard(None)
    user_model = get_user_model()
    lookups = _Lookups(
        users=dict(
            user_model.objects.filter(pk__in=user_ids).values_list("pk", user_model.USERNAME_FIELD)
        ),
        patients=dict(Patient.objects.filter(pk__in=patient_ids).values_list("pk", "mrn")),
        profiles=dict(TargetProfile.objects.values_list("pk", "name"))
        if "target" in rows_by_kind
        else {},
        drugs=dict(DrugCatalogEntry.objects.values_list("pk", "name"))
        if "drug" in rows_by_kind
        else {},
    )
    entries: list[HistoryEntry] = []
    for kind, rows in rows_by_kind.items():
        label, model, _ = HISTORY_KINDS[kind]
        previous = None
        for row in rows:
            if previous is not None and previous.id != row.id:
                previous = None
            entries.append(
                HistoryEntry(
                    at=row.history_date,
                    user=lookups.users.get(row.history_user_id, "") if row.history_user_id else "",
                    kind=kind,
                    kind_label=label,
                    record=_describe(kind, row, lookups),
                    action=ACTIONS.get(row.history_type, row.history_type),
                    changes=_changes(
                        model, row, previous if row.history_type != "+" else None, lookups
                    ),
                    reason=row.history_change_reason or "",
                    history_id=row.history_id,
                )
            )
            previous = row
    entries.sort(key=lambda e: (e.at, e.history_id), reverse=True)
    return entries
