"""SMART on FHIR: the EHR servers the clinic registered us with, the accounts their users
map to, each launch (state, PKCE verifier, tokens: all server-side), what was imported
from them (the idempotency key: server + resource type + id + version) and the dose orders
waiting for a clinician."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone

# A launch not completed within this time is refused (the user went away).
LAUNCH_TTL = timedelta(minutes=10)


class AuthMethod(models.TextChoices):
    SECRET = "client_secret_basic", "Client secret (HTTP Basic)"
    PRIVATE_KEY_JWT = "private_key_jwt", "Private key JWT (RS384)"


class SmartServer(models.Model):
    """One EHR's FHIR server we accept launches from. Its issuer URL is the allowlist: a
    launch naming any other ``iss`` is refused. Secrets are never shown back in the admin."""

    name = models.CharField(max_length=80, unique=True)
    issuer = models.URLField(
        "issuer (FHIR base URL)",
        max_length=300,
        unique=True,
        help_text="Exactly the iss the EHR sends, e.g. https://ehr.example.org/fhir",
    )
    client_id = models.CharField(max_length=200)
    auth_method = models.CharField(
        max_length=20, choices=AuthMethod.choices, default=AuthMethod.SECRET
    )
    client_secret = models.CharField(max_length=300, blank=True)
    private_key_pem = models.TextField(
        "private key (PEM)", blank=True, help_text="RSA key for private_key_jwt"
    )
    key_id = models.CharField("key id (kid)", max_length=100, blank=True)
    mrn_identifier_system = models.CharField(
        max_length=300,
        blank=True,
        help_text="Patient.identifier.system holding our MRN; empty: the identifier typed MR",
    )
    user_claim = models.CharField(
        max_length=40,
        default="fhirUser",
        help_text="id_token claim naming the EHR user (mapped to an account below)",
    )
    frame_origins = models.CharField(
        max_length=600,
        blank=True,
        help_text="Origins of the EHR pages that may frame the app, space separated, "
        "e.g. https://ehr.example.org",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SMART EHR server"

    def __str__(self) -> str:
        return self.name

    @property
    def base_url(self) -> str:
        return self.issuer.rstrip("/")

    def origins(self) -> list[str]:
        return [o for o in self.frame_origins.split() if o.startswith("https://")]

    @classmethod
    def for_issuer(cls, iss: str) -> SmartServer | None:
        iss = (iss or "").strip().rstrip("/")
        if not iss:
            return None
        return cls.objects.filter(active=True, issuer__in=[iss, iss + "/"]).first()


class SmartUserLink(models.Model):
    """The EHR user (its fhirUser reference, e.g. ``Practitioner/123``) that is one of our
    accounts. No link, no entry: a launch never creates an account."""

    server = models.ForeignKey(SmartServer, on_delete=models.CASCADE, related_name="users")
    fhir_user = models.CharField(
        "EHR user", max_length=300, help_text="e.g. Practitioner/123 (relative to the issuer)"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["server", "fhir_user"], name="smart_user_link_unique")
        ]
        verbose_name = "SMART user link"

    def __str__(self) -> str:
        return f"{self.fhir_user} → {self.user}"


def relative_reference(server: SmartServer, reference: str) -> str:
    """``https://ehr/fhir/Practitioner/1`` → ``Practitioner/1`` for this server; other
    servers' absolute URLs are kept whole so they never match a local link."""
    reference = (reference or "").strip()
    base = server.base_url + "/"
    if reference.startswith(base):
        return reference[len(base) :]
    return reference


class SmartLaunch(models.Model):
    """One launch, from redirect to the EHR until its tokens expire. Only the random
    ``state`` travels through the browser; the verifier and the tokens never leave the
    server."""

    EHR, STANDALONE = "ehr", "standalone"

    server = models.ForeignKey(SmartServer, on_delete=models.CASCADE, related_name="launches")
    flow = models.CharField(max_length=12, choices=[(EHR, "EHR"), (STANDALONE, "standalone")])
    state = models.CharField(max_length=64, unique=True)
    code_verifier = models.CharField(max_length=128)
    launch_token = models.CharField(max_length=500, blank=True)
    requested_scope = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_scope = models.CharField(max_length=1000, blank=True)
    access_token = models.TextField(blank=True)
    refresh_token = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    token_endpoint = models.URLField(max_length=500, blank=True)
    ehr_patient_id = models.CharField(max_length=64, blank=True)
    fhir_user = models.CharField(max_length=300, blank=True)
    patient = models.ForeignKey(
        "monitoring.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.flow} launch from {self.server} at {self.created_at:%Y-%m-%d %H:%M}"

    @staticmethod
    def new_state() -> str:
        return secrets.token_urlsafe(32)

    @property
    def expired_before_callback(self) -> bool:
        return timezone.now() - self.created_at > LAUNCH_TTL


class ImportedResource(models.Model):
    """A FHIR resource version already brought in: the same version again is "unchanged"."""

    server = models.ForeignKey(SmartServer, on_delete=models.PROTECT, related_name="+")
    resource_type = models.CharField(max_length=40)
    resource_id = models.CharField(max_length=64)
    version_id = models.CharField(max_length=64, blank=True)
    patient = models.ForeignKey("monitoring.Patient", on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField(default=timezone.now)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["server", "resource_type", "resource_id", "version_id"],
                name="smart_imported_resource_version_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.resource_id} version {self.version_id or '-'}"


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a clinician"
    CONFIRMED = "confirmed", "Confirmed as a regimen"
    DISMISSED = "dismissed", "Dismissed"


class RegimenProposal(models.Model):
    """A tacrolimus order read from the EHR. An order is not a dose taken: it becomes a
    regimen only when a clinician confirms it."""

    server = models.ForeignKey(SmartServer, on_delete=models.PROTECT, related_name="+")
    resource_id = models.CharField(max_length=64)
    version_id = models.CharField(max_length=64, blank=True)
    patient = models.ForeignKey("monitoring.Patient", on_delete=models.PROTECT, related_name="+")
    authored_on = models.DateTimeField(null=True, blank=True)
    effective_at = models.DateTimeField()
    formulation = models.CharField(max_length=3)
    frequency = models.CharField(max_length=3)
    daily_dose_mg = models.DecimalField(max_digits=7, decimal_places=3)
    text = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=12, choices=ProposalStatus.choices, default=ProposalStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    regimen = models.ForeignKey(
        "monitoring.Regimen", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["patient", "effective_at"]
        permissions = [("confirm_regimenproposal", "Can confirm a dose order as a regimen")]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "resource_id", "version_id"],
                name="smart_regimen_proposal_version_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.daily_dose_mg} mg/day {self.formulation} {self.frequency} (EHR order)"


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
