"""SMART on FHIR pages. The EHR's browser redirect reaches launch, start and callback without
a session of ours (public); the callback signs in the account linked to the EHR user, and
every later page needs that sign-in and the usual permissions."""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from monitoring.audit import log_access

from . import fhir_import, services
from .embedding import frameable
from .errors import SmartError
from .models import ProposalStatus, RegimenProposal, SmartLaunch, SmartServer

SESSION_STATE = "smart_state"
SESSION_LAUNCH = "smart_launch"


def _refuse(
    request: HttpRequest, error: SmartError, server: SmartServer | None = None
) -> HttpResponse:
    services.log_refusal(error, server=server)
    return render(request, "smart/refused.html", {"message": error.message}, status=error.status)


def _redirect_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("smart:callback"))


def _begin(
    request: HttpRequest, server: SmartServer, flow: str, launch_token: str = ""
) -> HttpResponse:
    try:
        launch, url = services.launch_begin(
            server=server, flow=flow, redirect_uri=_redirect_uri(request), launch_token=launch_token
        )
    except SmartError as error:
        return _refuse(request, error, server)
    request.session[SESSION_STATE] = launch.state
    return HttpResponseRedirect(url)


@frameable
@require_GET
@login_not_required
def launch(request: HttpRequest) -> HttpResponse:
    """EHR launch: the EHR opens ``/smart/launch?iss=…&launch=…``."""
    iss = request.GET.get("iss", "")
    launch_token = request.GET.get("launch", "")
    server = SmartServer.for_issuer(iss)
    if server is None:
        return _refuse(
            request,
            SmartError("unknown_iss", "This EHR server is not registered with the app."),
        )
    if not launch_token:
        return _refuse(request, SmartError("no_launch", "The EHR sent no launch context."), server)
    return _begin(request, server, SmartLaunch.EHR, launch_token)


@frameable
@require_GET
@login_not_required
def start(request: HttpRequest) -> HttpResponse:
    """Standalone launch: pick a registered EHR, sign in there, choose the patient there."""
    servers = list(SmartServer.objects.filter(active=True))
    chosen = request.GET.get("server", "")
    if not chosen:
        return render(request, "smart/start.html", {"servers": servers})
    server = next((s for s in servers if str(s.pk) == chosen), None)
    if server is None:
        return _refuse(
            request, SmartError("unknown_server", "No such EHR server is registered.", status=404)
        )
    return _begin(request, server, SmartLaunch.STANDALONE)


@frameable
@require_GET
@login_not_required
def callback(request: HttpRequest) -> HttpResponse:
    """The EHR sends the browser back here with ``code`` and ``state``."""
    state = request.GET.get("state", "")
    session_state = request.session.pop(SESSION_STATE, None)
    server = None
    try:
        launch = services.launch_for_callback(state=state, session_state=session_state)
        server = launch.server
        if request.GET.get("error"):
            services.launch_abandon(launch)
            raise SmartError("ehr_error", "The EHR did not authorise the app.", status=403)
        launch = services.launch_complete(
            launch=launch, code=request.GET.get("code", ""), redirect_uri=_redirect_uri(request)
        )
        ehr_patient = services.context_patient(launch)
    except SmartError as error:
        return _refuse(request, error, server)
    login(request, launch.user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_LAUNCH] = launch.pk
    services.log_launch(launch)
    if launch.patient is not None:
        log_access(request, launch.patient, "smart launch")
    request.session["smart_ehr_patient"] = services.patient_summary(launch.server, ehr_patient)
    return HttpResponseRedirect(reverse("smart:context"))


def current_launch(request: HttpRequest) -> SmartLaunch:
    pk = request.session.get(SESSION_LAUNCH)
    launch = (
        SmartLaunch.objects.select_related("server", "patient")
        .filter(pk=pk, user=request.user)
        .first()
        if pk
        else None
    )
    if launch is None:
        raise SmartError("no_session", "There is no EHR session: launch the app from the EHR.")
    return launch


@frameable
@require_GET
@permission_required("monitoring.view_patient", raise_exception=True)
def context(request: HttpRequest) -> HttpResponse:
    """The launched patient: ours if matched (with a preview of what the EHR has that we do
    not), what the EHR says about them otherwise."""
    launch = _launch_or_refuse(request)
    if isinstance(launch, HttpResponse):
        return launch
    report, error = None, ""
    if launch.patient is not None:
        try:
            report = fhir_import.ehr_import(launch, user=request.user, dry_run=True)
        except SmartError as exc:
            services.log_refusal(exc, server=launch.server)
            error = exc.message
        log_access(request, launch.patient, "smart")
    return render(
        request,
        "smart/context.html",
        {
            "launch": launch,
            "ehr_patient": request.session.get("smart_ehr_patient") or {},
            "report": report,
            "error": error,
            "proposals": services.pending_proposals(launch),
        },
    )


def _launch_or_refuse(request: HttpRequest) -> SmartLaunch | HttpResponse:
    try:
        return current_launch(request)
    except SmartError as error:
        return _refuse(request, error)


@frameable
@require_POST
@permission_required("monitoring.import_data", raise_exception=True)
def import_records(request: HttpRequest) -> HttpResponse:
    """Write what the preview showed (all or nothing); refused if the EHR changed since."""
    launch = _launch_or_refuse(request)
    if isinstance(launch, HttpResponse):
        return launch
    try:
        report = fhir_import.ehr_import(
            launch,
            user=request.user,
            dry_run=False,
            fingerprint=request.POST.get("fingerprint", ""),
        )
    except SmartError as error:
        return _refuse(request, error, launch.server)
    log_access(request, launch.patient, "smart import")
    return render(
        request,
        "smart/imported.html",
        {"launch": launch, "report": report},
        status=200 if report.written else 400,
    )


@frameable
@require_POST
@permission_required("monitoring.import_data", raise_exception=True)
def patient_create(request: HttpRequest) -> HttpResponse:
    """Create our patient from the EHR's Patient (read again from the EHR, not from the form)."""
    launch = _launch_or_refuse(request)
    if isinstance(launch, HttpResponse):
        return launch
    try:
        problems = services.patient_create_from_ehr(launch, user=request.user)
    except SmartError as error:
        return _refuse(request, error, launch.server)
    if problems:
        return render(request, "smart/refused.html", {"message": "; ".join(problems)}, status=400)
    log_access(request, launch.patient, "smart launch")
    return HttpResponseRedirect(reverse("smart:context"))


@frameable
@require_POST
@permission_required("smart.confirm_regimenproposal", raise_exception=True)
def proposal_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """A clinician confirms an EHR order as a regimen (with the values they checked) or
    dismisses it."""
    proposal = get_object_or_404(RegimenProposal, pk=pk, status=ProposalStatus.PENDING)
    if request.POST.get("decision") == "dismiss":
        services.proposal_dismiss(proposal, user=request.user)
        return HttpResponseRedirect(reverse("smart:context"))
    problems = services.proposal_confirm(proposal, user=request.user, data=request.POST)
    if problems:
        return render(request, "smart/refused.html", {"message": "; ".join(problems)}, status=400)
    return HttpResponseRedirect(reverse("smart:context"))
