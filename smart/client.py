"""Talking to an EHR: discovery, the token endpoint (code exchange, refresh), the id_token's
signature, and FHIR reads. Every failure becomes a ``SmartError`` with a message for the
user; responses are never logged (they hold patient data)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import requests

from .errors import SmartError
from .models import AuthMethod, SmartServer

TIMEOUT = 10  # seconds: an EHR that does not answer must not hold the page forever
MAX_BYTES = 5 * 1024 * 1024
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise SmartError(
            "ehr_http_error",
            f"The EHR answered {response.status_code} to the {what} request.",
            status=502,
        )
    if len(response.content) > MAX_BYTES:
        raise SmartError("ehr_too_large", f"The EHR's {what} answer is too large.", status=502)
    try:
        data = response.json()
    except ValueError:
        raise SmartError(
            "ehr_garbage", f"The EHR's {what} answer is not JSON.", status=502
        ) from None
    if not isinstance(data, dict):
        raise SmartError(
            "ehr_garbage", f"The EHR's {what} answer is not a JSON object.", status=502
        )
    return data


def _get(url: str, what: str, **kwargs) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
    except requests.RequestException:
        raise SmartError(
            "ehr_unreachable", f"The EHR could not be reached ({what}).", status=502
        ) from None
    return _json(response, what)


def discover(server: SmartServer) -> dict[str, Any]:
    """The server's SMART configuration: ``.well-known/smart-configuration``, or, for older
    servers, the OAuth URIs extension of the CapabilityStatement."""
    headers = {"Accept": "application/json"}
    try:
        config = _get(
            f"{server.base_url}/.well-known/smart-configuration", "discovery", headers=headers
        )
    except SmartError:
        config = None
    if config is None or not config.get("authorization_endpoint"):
        metadata = _get(
            f"{server.base_url}/metadata",
            "CapabilityStatement",
            headers={"Accept": "application/fhir+json"},
        )
        config = _from_capability_statement(metadata)
    for key in ("authorization_endpoint", "token_endpoint"):
        value = config.get(key)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise SmartError(
                "discovery_incomplete", f"The EHR's configuration has no {key}.", status=502
            )
    return config


def _from_capability_statement(metadata: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"capabilities": []}
    try:
        for rest in metadata.get("rest", []):
            for ext in rest.get("security", {}).get("extension", []):
                if ext.get("url") != OAUTH_URIS:
                    continue
                for inner in ext.get("extension", []):
                    if inner.get("url") == "authorize":
                        config["authorization_endpoint"] = inner.get("valueUri")
                    elif inner.get("url") == "token":
                        config["token_endpoint"] = inner.get("valueUri")
    except AttributeError:
        raise SmartError(
            "ehr_garbage", "The EHR's CapabilityStatement is malformed.", status=502
        ) from None
    return config


def _client_auth(server: SmartServer, token_endpoint: str) -> tuple[dict, Any]:
    """(extra form fields, requests auth) for the configured client authentication."""
    if server.auth_method == AuthMethod.PRIVATE_KEY_JWT:
        return {
            "client_id": server.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(server, token_endpoint),
        }, None
    return {}, (server.client_id, server.client_secret)


def client_assertion(server: SmartServer, token_endpoint: str) -> str:
    """SMART Backend/asymmetric client authentication: a short-lived JWT signed with our key."""
    now = int(time.time())
    claims = {
        "iss": server.client_id,
        "sub": server.client_id,
        "aud": token_endpoint,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 300,
    }
    headers = {"kid": server.key_id} if server.key_id else None
    try:
        return jwt.encode(claims, server.private_key_pem, algorithm="RS384", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError):
        raise SmartError(
            "bad_private_key",
            "This EHR server's private key is not usable: check its registration.",
            status=500,
        ) from None


def token_request(server: SmartServer, token_endpoint: str, form: dict[str, str]) -> dict[str, Any]:
    extra, auth = _client_auth(server, token_endpoint)
    try:
        response = requests.post(
            token_endpoint,
            data={**form, **extra},
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException:
        raise SmartError(
            "ehr_unreachable", "The EHR's token endpoint could not be reached.", status=502
        ) from None
    if response.status_code in (400, 401):
        raise SmartError("token_refused", "The EHR refused to issue a token.", status=403)
    data = _json(response, "token")
    if not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise SmartError("token_garbage", "The EHR's token answer has no access token.", status=502)
    return data


def verify_id_token(server: SmartServer, config: dict[str, Any], id_token: str) -> dict[str, Any]:
    """The id_token's claims, once its signature (the server's JWKS), audience (our client id),
    expiry and, when the server names one, issuer are checked."""
    jwks_uri = config.get("jwks_uri")
    if not jwks_uri:
        # SMART v1 servers found through the CapabilityStatement publish their OpenID keys
        # in the OpenID configuration beside it.
        try:
            openid = _get(
                f"{server.base_url}/.well-known/openid-configuration",
                "OpenID configuration",
                headers={"Accept": "application/json"},
            )
        except SmartError:
            openid = {}
        jwks_uri = openid.get("jwks_uri") if isinstance(openid.get("jwks_uri"), str) else None
        config = {**config, "issuer": openid.get("issuer") or config.get("issuer")}
    if not jwks_uri:
        raise SmartError(
            "no_jwks", "The EHR publishes no keys to check the user's identity.", status=502
        )
    try:
        keys = jwt.PyJWKSet.from_dict(
            _get(jwks_uri, "keys", headers={"Accept": "application/json"})
        )
        kid = jwt.get_unverified_header(id_token).get("kid")
        candidates = [k for k in keys.keys if kid is None or k.key_id == kid]
        if not candidates:
            raise jwt.InvalidTokenError("no key with this kid")
        return jwt.decode(
            id_token,
            candidates[0].key,
            algorithms=["RS256", "RS384", "ES256", "ES384"],
            audience=server.client_id,
            issuer=config.get("issuer") or None,
            options={"require": ["exp", "iat", "aud"]},
            leeway=60,
        )
    except (jwt.PyJWTError, SmartError):
        raise SmartError(
            "bad_id_token", "The EHR's identity token could not be verified.", status=403
        ) from None


def fhir_read(
    base_url: str, access_token: str, path: str, params: dict | None = None
) -> dict[str, Any]:
    """GET a FHIR resource or search Bundle with the launch's access token."""
    try:
        response = requests.get(
            f"{base_url}/{path}",
            params=params,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/fhir+json"},
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException:
        raise SmartError(
            "ehr_unreachable", "The EHR's FHIR API could not be reached.", status=502
        ) from None
    if response.status_code == 401:
        raise SmartError(
            "fhir_unauthorised", "The EHR no longer accepts this session: launch again.", status=403
        )
    data = _json(response, "FHIR")
    if not isinstance(data.get("resourceType"), str):
        raise SmartError("ehr_garbage", "The EHR's FHIR answer is not a FHIR resource.", status=502)
    return data
