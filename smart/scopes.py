"""Which scopes to ask for and whether what the EHR granted is enough. Pure: no Django."""

from __future__ import annotations

import base64
import hashlib
import secrets

RESOURCES = ("Patient", "Observation", "MedicationRequest")


def requested_scopes(*, standalone: bool, v2: bool) -> list[str]:
    """SMART v1 ``.read`` names, or the v2 ``.rs`` forms when the server advertises
    ``permission-v2``. A standalone launch asks the EHR to pick the patient."""
    suffix = "rs" if v2 else "read"
    context = "launch/patient" if standalone else "launch"
    return [context, "openid", "fhirUser", *(f"patient/{r}.{suffix}" for r in RESOURCES)]


def _grants_read(granted: set[str], resource: str) -> bool:
    for scope in granted:
        if "/" not in scope or "." not in scope:
            continue
        level, rest = scope.split("/", 1)
        name, _, permission = rest.partition(".")
        if level not in ("patient", "user") or name not in (resource, "*"):
            continue
        permission = permission.split("?", 1)[0]
        if permission in ("read", "*"):
            return True
        # v2: c r u d s letters in that order; we need read and search.
        if permission and set(permission) <= set("cruds") and {"r", "s"} <= set(permission):
            return True
    return False


def missing_scopes(granted_text: str) -> list[str]:
    """What the app needs and was not granted: identity (openid, fhirUser) and read of each
    resource it imports. An empty list: enough."""
    granted = set((granted_text or "").split())
    missing = [s for s in ("openid", "fhirUser") if s not in granted]
    missing += [f"patient/{r}.read" for r in RESOURCES if not _grants_read(granted, r)]
    return missing


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): 64 random URL-safe characters, RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
