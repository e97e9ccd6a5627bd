"""The page of one web import job: a progress bar while the worker runs it, then the result.

Only the job's uploader (or a superuser) sees it; anyone else gets a 404, as for a job that
does not exist, so job numbers reveal nothing. While the job is queued or running the page
polls its own status block (htmx, every second) or, without JavaScript, reloads itself
(<noscript> meta refresh); once the job has finished the block stops polling.

The access log: a queued or running job shows no patient data (counts only), so polling
writes nothing. A finished job's page shows the problems (which quote the file's cells) or
the patients it touched: each response then records the job and every patient shown.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from .. import rules
from ..audit import client_ip, log_bulk_access
from ..jobs import job_progress
from ..models import AccessLog, ImportJob, Patient, TroughLevel
from .imports import KIND_LABELS, PERMISSION

TEMPLATE = "monitoring/import_job.html"
# Links shown per list; the rest are counted ("and 1,234 more").
LINK_LIMIT = 100


def _job_for(request: HttpRequest, pk: int) -> ImportJob:
    jobs = ImportJob.objects.defer("data").select_related("created_by")
    if not request.user.is_superuser:
        jobs = jobs.filter(created_by=request.user)
    try:
        return jobs.get(pk=pk)
    except ImportJob.DoesNotExist:
        raise Http404("No such import job") from None


def _links(job: ImportJob) -> tuple[list[Patient], list[TroughLevel]]:
    result = job.result or {}
    patient_ids = list(result.get("patients", []))[:LINK_LIMIT]
    trough_ids = list(result.get("unknown_timing", []))[:LINK_LIMIT]
    patients = list(Patient.objects.filter(pk__in=patient_ids).order_by("mrn"))
    troughs = list(
        TroughLevel.objects.filter(pk__in=trough_ids)
        .select_related("patient")
        .order_by("patient__mrn", "collected_at")
    )
    return patients, troughs


def _log(request: HttpRequest, job: ImportJob, patient_ids: set[int]) -> None:
    AccessLog.objects.create(
        user=request.user,
        username=request.user.get_username(),
        view_name="import job",
        detail=f"job {job.pk}: {job.status}",
        path=rules.visible(request.path)[:200],
        ip=client_ip(request),
    )
    log_bulk_access(request, sorted(patient_ids), "import job")


@require_GET
@permission_required(PERMISSION, raise_exception=True)
@vary_on_headers("HX-Request")
def import_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_for(request, pk)
    patients, troughs = _links(job) if job.status == "succeeded" else ([], [])
    result = job.result or {}
    context = {
        "job": job,
        "kind_label": KIND_LABELS.get(job.kind, job.kind),
        "progress": job_progress(job),
        "poll_ms": settings.IMPORT_JOB_POLL_MS,
        "patients": patients,
        "more_patients": max(0, len(result.get("patients", [])) - len(patients)),
        "troughs": troughs,
        "more_troughs": max(0, len(result.get("unknown_timing", [])) - len(troughs)),
        "counts": list((result.get("counts") or {}).items()),
        "problems": result.get("problems", []),
        "more_problems": max(0, result.get("problem_count", 0) - len(result.get("problems", []))),
    }
    template = f"{TEMPLATE}#job-status" if request.htmx else TEMPLATE
    response = render(request, template, context)
    if job.finished:
        _log(request, job, {p.pk for p in patients} | {t.patient_id for t in troughs})
    return response
