"""The launch itself: begin (state, PKCE, redirect to the EHR), complete (check state,
exchange the code, check what was granted and who the user is), keep the token fresh."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlencode

from django.db import transaction
from django.utils import timezone

from monitoring.models import Patient

from . import client
from .errors import SmartError

__all__ = ["SmartError"]
from .models import SmartLaunch, SmartServer, SmartUserLink, relative_reference
from .scopes import missing_scopes, pkce_pair, requested_scopes

logger = logging.getLogger("smart")

# Refresh a little before the EHR's expiry, so a read never starts with a dying token.
REFRESH_MARGIN = timedelta(seconds=30)


def launch_begin(
    *, server: SmartServer, flow: str, redirect_uri: str, launch_token: str = ""
) -> tuple[SmartLaunch, str]:
    """A new launch and the EHR authorisation URL to send the browser to."""
    config = client.discover(server)
    v2 = "permission-v2" in (config.get("capabilities") or [])
    scope = " ".join(requested_scopes(standalone=flow == SmartLaunch.STANDALONE, v2=v2))
    verifier, challenge = pkce_pair()
    launch = SmartLaunch.objects.create(
        server=server,
        flow=flow,
        state=SmartLaunch.new_state(),
        code_verifier=verifier,
        launch_token=launch_token[:500],
        requested_scope=scope,
        token_endpoint=config["token_endpoint"],
    )
    query = {
        "response_type": "code",
        "client_id": server.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": launch.state,
        "aud": server.base_url,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if launch_token:
        query["launch"] = launch_token
    separator = "&" if "?" in config["authorization_endpoint"] else "?"
    return launch, config["authorization_endpoint"] + separator + urlencode(query)


def launch_for_callback(*, state: str, session_state: str | None) -> SmartLaunch:
    """The launch this callback belongs to. The state must be one we issued, to this
    browser (the session remembers it), not used before and not stale."""
    launch = SmartLaunch.objects.select_related("server").filter(state=state or "").first()
    if launch is None or not state:
        raise SmartError(
            "unknown_state", "This launch is not one the app started. Launch again from the EHR."
        )
    if launch.completed_at is not None:
        raise SmartError(
            "state_replayed", "This launch was already used. Launch again from the EHR."
        )
    if launch.expired_before_callback:
        raise SmartError("state_expired", "This launch took too long. Launch again from the EHR.")
    if session_state != state:
        raise SmartError(
            "state_not_this_browser",
            "This launch was started in another browser session. Launch again.",
        )
    if not launch.server.active:
        raise SmartError("server_inactive", "This EHR server is no longer registered.", status=403)
    return launch


def launch_complete(*, launch: SmartLaunch, code: str, redirect_uri: str) -> SmartLaunch:
    """Exchange the code (with the PKCE verifier), check the grant and the user, and keep the
    tokens on the launch. The launch is marked used first, so a replay fails even if the
    exchange does."""
    SmartLaunch.objects.filter(pk=launch.pk).update(completed_at=timezone.now())
    launch.completed_at = timezone.now()
    if not code:
        raise SmartError("no_code", "The EHR did not authorise the app.", status=403)
    server = launch.server
    token = client.token_request(
        server,
        launch.token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": launch.code_verifier,
        },
    )
    granted = token.get("scope") if isinstance(token.get("scope"), str) else launch.requested_scope
    missing = missing_scopes(granted)
    if missing:
        raise SmartError(
            "scopes_missing",
            "The EHR granted fewer rights than the app needs (missing: "
            + ", ".join(missing)
            + ").",
            status=403,
        )
    patient_id = token.get("patient")
    if not isinstance(patient_id, str) or not patient_id.strip():
        raise SmartError(
            "no_patient_context", "The EHR did not say which patient is open.", status=403
        )
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SmartError("no_id_token", "The EHR did not say who the user is.", status=403)
    config = client.discover(server)
    claims = client.verify_id_token(server, config, id_token)
    fhir_user = claims.get(server.user_claim)
    if not isinstance(fhir_user, str) or not fhir_user:
        raise SmartError("no_fhir_user", "The EHR did not say who the user is.", status=403)
    reference = relative_reference(server, fhir_user)
    link = (
        SmartUserLink.objects.select_related("user")
        .filter(server=server, fhir_user=reference)
        .first()
    )
    if link is None or not link.user.is_active:
        raise SmartError(
            "user_not_linked",
            "Your EHR account is not linked to an account of this app. Ask the clinic "
            "administrator to link it; no account is created automatically.",
            status=403,
        )
    launch.user = link.user
    launch.fhir_user = reference[:300]
    launch.ehr_patient_id = patient_id.strip()[:64]
    launch.granted_scope = granted[:1000]
    _store_token(launch, token)
    launch.save()
    return launch


def _store_token(launch: SmartLaunch, token: dict) -> None:
    launch.access_token = token["access_token"]
    if isinstance(token.get("refresh_token"), str):
        launch.refresh_token = token["refresh_token"]
    try:
        seconds = int(token.get("expires_in", 300))
    except (TypeError, ValueError):
        seconds = 300
    launch.expires_at = timezone.now() + timedelta(seconds=max(0, min(seconds, 86400)))


def access_token(launch: SmartLaunch) -> str:
    """A live access token for the launch, refreshed when it is (nearly) expired."""
    if not launch.access_token:
        raise SmartError(
            "no_session", "There is no EHR session: launch the app from the EHR.", status=403
        )
    if launch.expires_at and launch.expires_at - REFRESH_MARGIN > timezone.now():
        return launch.access_token
    if not launch.refresh_token:
        raise SmartError(
            "token_expired", "The EHR session has expired: launch the app again.", status=403
        )
    token = client.token_request(
        launch.server,
        launch.token_endpoint,
        {"grant_type": "refresh_token", "refresh_token": launch.refresh_token},
    )
    _store_token(launch, token)
    launch.save(update_fields=["access_token", "refresh_token", "expires_at"])
    return launch.access_token


def read(launch: SmartLaunch, path: str, params: dict | None = None) -> dict:
    return client.fhir_read(launch.server.base_url, access_token(launch), path, params)


def match_patient(launch: SmartLaunch, ehr_patient: dict) -> Patient | None:
    """Our patient with the MRN among the EHR Patient's identifiers: the configured system,
    or else the identifier typed MR. Never by the EHR's resource id."""
    mrn = ehr_mrn(launch.server, ehr_patient)
    return Patient.objects.filter(mrn=mrn).first() if mrn else None


def ehr_mrn(server: SmartServer, ehr_patient: dict) -> str:
    identifiers = ehr_patient.get("identifier")
    if not isinstance(identifiers, list):
        return ""
    for identifier in identifiers:
        if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
            continue
        if server.mrn_identifier_system:
            if identifier.get("system") == server.mrn_identifier_system:
                return identifier["value"].strip()
            continue
        codings = (identifier.get("type") or {}).get("coding") or []
        if any(isinstance(c, dict) and c.get("code") == "MR" for c in codings):
            return identifier["value"].strip()
    return ""


def log_refusal(error: SmartError, *, server: SmartServer | None = None) -> None:
    """One line per refusal: the code and the server, never patient data or tokens."""
    logger.warning("SMART refused: %s (server %s)", error.code, server.pk if server else "-")


def launch_abandon(launch: SmartLaunch) -> None:
    SmartLaunch.objects.filter(pk=launch.pk).update(completed_at=timezone.now())


def context_patient(launch: SmartLaunch) -> dict:
    """Read the launch's Patient (the id from the token response, never from the URL) and
    match it to ours."""
    resource = read(launch, f"Patient/{launch.ehr_patient_id}")
    if resource.get("resourceType") != "Patient" or resource.get("id") != launch.ehr_patient_id:
        raise SmartError(
            "patient_mismatch", "The EHR returned a different patient than the launch.", status=502
        )
    launch.patient = match_patient(launch, resource)
    launch.save(update_fields=["patient"])
    return resource


def patient_summary(server: SmartServer, resource: dict) -> dict:
    """What the page shows of an EHR Patient we may not have: name, birth date, sex, MRN."""
    names = resource.get("name") if isinstance(resource.get("name"), list) else []
    name = next((n for n in names if isinstance(n, dict)), {})
    given = name.get("given") if isinstance(name.get("given"), list) else []
    return {
        "family_name": str(name.get("family") or "")[:100],
        "given_name": " ".join(str(g) for g in given)[:100],
        "birth_date": str(resource.get("birthDate") or "")[:10],
        "gender": str(resource.get("gender") or "")[:20],
        "mrn": ehr_mrn(server, resource)[:32],
    }


def log_launch(launch: SmartLaunch) -> None:
    logger.info(
        "SMART %s launch: server %s, user %s, patient %s",
        launch.flow,
        launch.server_id,
        launch.user_id,
        launch.patient_id or "not matched",
    )


GENDER_TO_SEX = {"female": "F", "male": "M", "other": "X"}


def patient_create_from_ehr(launch: SmartLaunch, *, user) -> list[str]:
    """Create our patient from the launch's EHR Patient through the patients importer (same
    validation as a CSV row); the problems, or [] once created and attached to the launch."""
    from monitoring.importers import run_csv_import
    from monitoring.models import Source

    if launch.patient is not None:
        return []
    resource = read(launch, f"Patient/{launch.ehr_patient_id}")
    if resource.get("id") != launch.ehr_patient_id:
        raise SmartError(
            "patient_mismatch", "The EHR returned a different patient than the launch.", status=502
        )
    summary = patient_summary(launch.server, resource)
    if not summary["mrn"]:
        return ["The EHR record has no MRN identifier: create the patient in the back office."]
    sex = GENDER_TO_SEX.get(summary["gender"], "")
    rows = [
        summary["mrn"],
        summary["family_name"],
        summary["given_name"],
        summary["birth_date"],
        sex,
    ]
    text = "mrn,family_name,given_name,birth_date,sex\n" + ",".join(
        '"' + value.replace('"', '""') + '"' for value in rows
    )
    report = run_csv_import("patients", text.encode(), user=user, source=Source.FHIR)
    if not report.ok:
        return [f"{p.column} value '{p.value}': {p.message}" for p in report.problems]
    launch.patient = Patient.objects.get(mrn=summary["mrn"])
    launch.save(update_fields=["patient"])
    return []


def pending_proposals(launch: SmartLaunch):
    from .models import ProposalStatus, RegimenProposal

    if launch.patient is None:
        return RegimenProposal.objects.none()
    return RegimenProposal.objects.filter(
        patient=launch.patient, server=launch.server, status=ProposalStatus.PENDING
    )


def proposal_dismiss(proposal, *, user) -> None:
    from .models import ProposalStatus

    proposal.status = ProposalStatus.DISMISSED
    proposal.decided_by = user
    proposal.decided_at = timezone.now()
    proposal.save(update_fields=["status", "decided_by", "decided_at"])


def proposal_confirm(proposal, *, user, data) -> list[str]:
    """The clinician's checked values become a regimen through the regimens importer (same
    validation as a CSV row); the problems, or [] once confirmed."""
    from monitoring import config, validation
    from monitoring.importers.kinds import Context, RegimenImporter, RowErrors
    from monitoring.models import Regimen, Source
    from monitoring.services import patients_reassess

    from .models import ProposalStatus

    row = {
        "mrn": proposal.patient.mrn,
        "effective_at": (data.get("effective_at") or "").strip(),
        "formulation": (data.get("formulation") or "").strip(),
        "frequency": (data.get("frequency") or "").strip(),
        "daily_dose_mg": (data.get("daily_dose_mg") or "").strip(),
    }
    ctx = Context(thresholds=config.load_thresholds(), user=user, source=Source.FHIR)
    try:
        with transaction.atomic():
            RegimenImporter(ctx).import_row(row)
            regimen = Regimen.objects.filter(
                patient=proposal.patient,
                status="active",
                effective_at=validation.parse_datetime(row["effective_at"], "effective_at"),
            ).first()
            proposal.status = ProposalStatus.CONFIRMED
            proposal.decided_by = user
            proposal.decided_at = timezone.now()
            proposal.regimen = regimen
            proposal.save(update_fields=["status", "decided_by", "decided_at", "regimen"])
            patients_reassess(Patient.objects.filter(pk=proposal.patient_id))
    except RowErrors as exc:
        return [f"{e.field} value '{e.value}': {e.message}" for e in exc.errors]
    return []
