"""Who reaches the patient data: the read trail of the people who open a patient's page,
report or history (``AccessLog``, written by ``monitoring.audit``) and the bearer tokens
with which interface engines post HL7 (``InterfaceToken``, ``views.hl7_endpoint``).

Imported by models.py, which holds the clinical records they point at.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from .models import Patient, TextGuard


class AccessLog(models.Model):
    """Who opened which patient's page, report or history, and when (monitoring.audit).

    Rows are only ever added; the user's name is kept as text too, so the trail survives a
    renamed or removed account. A search is a row of its own, without a patient, whose
    ``detail`` holds what was searched for (it was a look whether or not it found anyone)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    view_name = models.CharField(max_length=40, help_text="What was opened: patient, report…")
    detail = models.CharField(
        max_length=200, blank=True, help_text="The search or filters of a list or export"
    )
    path = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at"], name="accesslog_at"),
            models.Index(fields=["patient", "-at"], name="accesslog_patient_at"),
        ]

    def __str__(self) -> str:
        if self.patient_id is None:
            return f"{self.username} ran {self.view_name} ({self.detail}) at {self.at}"
        return f"{self.username} opened {self.view_name} of patient {self.patient_id} at {self.at}"


class InterfaceToken(TextGuard, models.Model):
    """A bearer token for one interface engine posting HL7 to ``hl7/inbound/``.

    Only the SHA-256 of the token is stored: the admin shows the token once, at creation.
    To rotate, create a new token and deactivate the old one."""

    name = models.CharField(max_length=80, unique=True, help_text="e.g. the lab's LIS feed")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    @classmethod
    def issue(cls, name: str) -> tuple[InterfaceToken, str]:
        """A new active token: (the saved row, the plain token to hand over once)."""
        token = secrets.token_urlsafe(32)
        return cls.objects.create(name=name, token_hash=cls.hash_token(token)), token

    def set_new_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self.token_hash = self.hash_token(token)
        return token

    @classmethod
    def authenticate(cls, token: str) -> InterfaceToken | None:
        """The active interface owning this token, or None. Looked up by hash, so the
        comparison leaks nothing about the token through timing."""
        if not token:
            return None
        return cls.objects.filter(token_hash=cls.hash_token(token), active=True).first()
