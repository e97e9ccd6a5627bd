"""SMART on FHIR pages. The EHR's browser redirect reaches launch, start and callback without
a session of ours (public); the callback signs in the account linked to the EHR user, and
every later page needs that sign-in and the usual permissions."""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from monitoring.audit import log_access

from . import services
from .errors import SmartError
from .models import SmartLaunch, SmartServer

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


@require_GET
@permission_required("monitoring.view_patient", raise_exception=True)
def context(request: HttpRequest) -> HttpResponse:
    """The launched patient: ours if matched, what the EHR says about them otherwise."""
    try:
        launch = current_launch(request)
    except SmartError as error:
        return _refuse(request, error)
    return render(
        request,
        "smart/context.html",
        {"launch": launch, "ehr_patient": request.session.get("smart_ehr_patient") or {}},
    )
