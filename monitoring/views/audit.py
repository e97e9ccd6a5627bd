"""The audit pages: one patient's change history, and the access log (superusers only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from .. import validation
from ..audit import HISTORY_KINDS, logs_access, patient_history
from ..csv_safe import SafeCsvWriter
from ..models import AccessLog, Patient
from ..rules import RuleError

HISTORY_PAGE_SIZE = 100
ACCESS_PAGE_SIZE = 100
ACCESS_COLUMNS = ["at", "username", "mrn", "view", "detail", "path", "ip"]


def superuser_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """403 for everyone signed in but not a superuser (login itself is the middleware's)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@permission_required("monitoring.view_patient", raise_exception=True)
@logs_access("history")
def patient_history_view(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    kind = request.GET.get("kind", "")
    if kind not in HISTORY_KINDS:
        kind = ""
    entries = patient_history(patient, kinds=[kind] if kind else None)
    page = Paginator(entries, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "monitoring/patient_history.html",
        {
            "patient": patient,
            "page": page,
            "kind": kind,
            "kinds": [(key, label) for key, (label, _, _) in HISTORY_KINDS.items()],
        },
    )


class AccessFilters:
    """The access log's filters, from the query string; a bad date is reported, not raised."""

    def __init__(self, data) -> None:
        self.mrn = (data.get("mrn") or "").strip()[:32]
        self.user = (data.get("user") or "").strip()[:150]
        self.errors: dict[str, str] = {}
        self.since = self._date(data, "since")
        self.until = self._date(data, "until")

    def _date(self, data, name: str):
        try:
            return validation.parse_date(data.get(name), name)
        except RuleError as exc:
            self.errors[name] = f"value '{exc.value}': {exc.message}"
            return None

    def apply(self, rows: QuerySet[AccessLog]) -> QuerySet[AccessLog]:
        if self.mrn:
            rows = rows.filter(patient__mrn__iexact=self.mrn)
        if self.user:
            rows = rows.filter(username__iexact=self.user)
        zone = timezone.get_current_timezone()
        if self.since:
            rows = rows.filter(at__gte=datetime.combine(self.since, time.min, tzinfo=zone))
        if self.until:
            end = datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=zone)
            rows = rows.filter(at__lt=end)
        return rows

    def query(self) -> str:
        params = {
            "mrn": self.mrn,
            "user": self.user,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return urlencode({k: v for k, v in params.items() if v})


def _access_rows(filters: AccessFilters) -> QuerySet[AccessLog]:
    return filters.apply(AccessLog.objects.select_related("patient").order_by("-at", "-id"))


@require_GET
@superuser_required
def access_log(request: HttpRequest) -> HttpResponse:
    filters = AccessFilters(request.GET)
    rows = _access_rows(filters) if not filters.errors else AccessLog.objects.none()
    page = Paginator(rows, ACCESS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "monitoring/access_log.html",
        {
            "page": page,
            "filters": filters,
            "query": filters.query(),
        },
        status=400 if filters.errors else 200,
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: QuerySet[AccessLog]) -> Iterator[str]:
    writer = SafeCsvWriter(_Echo(), lineterminator="\n")
    yield writer.writerow(ACCESS_COLUMNS)
    for row in rows.iterator(chunk_size=1000):
        yield writer.writerow(
            [
                timezone.localtime(row.at).isoformat(timespec="seconds"),
                row.username,
                row.patient.mrn if row.patient else "",
                row.view_name,
                row.detail,
                row.path,
                row.ip or "",
            ]
        )


@require_GET
@superuser_required
def access_log_csv(request: HttpRequest) -> HttpResponse:
    filters = AccessFilters(request.GET)
    if filters.errors:
        return HttpResponse(
            "; ".join(f"{k}: {v}" for k, v in filters.errors.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(
        _csv_lines(_access_rows(filters)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="access-log-{stamp}.csv"'
    return response


def lockout_response(
    request: HttpRequest, original_response=None, credentials=None
) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: the lockout page, 429, in whole minutes."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(
        request,
        "registration/locked_out.html",
        {
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff_minutes": minutes,
        },
        status=429,
    )
