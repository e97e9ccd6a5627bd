"""Registering an EHR server in the admin: the allowlist, write-only secrets, key checks,
and the private-key JWT the app signs for the token endpoint."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from smart.client import client_assertion
from smart.models import AuthMethod, SmartServer
from tests.fake_ehr.fixtures import rsa_private_pem

pytestmark = pytest.mark.django_db

SECRET = "very-secret-client-secret-123"


def _form(**overrides) -> dict:
    data = {
        "name": "City EHR",
        "issuer": "https://ehr.example.org/fhir",
        "client_id": "tdm",
        "auth_method": AuthMethod.SECRET,
        "client_secret": SECRET,
        "private_key_pem": "",
        "key_id": "",
        "mrn_identifier_system": "",
        "user_claim": "fhirUser",
        "frame_origins": "https://ehr.example.org",
        "active": "on",
        "users-TOTAL_FORMS": "0",
        "users-INITIAL_FORMS": "0",
        "users-MIN_NUM_FORMS": "0",
        "users-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_a_superuser_registers_a_server_and_the_secret_is_never_shown_back(client_for):
    admin = client_for("superuser")
    response = admin.post("/admin/smart/smartserver/add/", _form())
    assert response.status_code == 302, response.content
    server = SmartServer.objects.get()
    assert server.client_secret == SECRET
    page = admin.get(f"/admin/smart/smartserver/{server.pk}/change/")
    assert page.status_code == 200
    assert SECRET not in page.content.decode()
    # Saving again with the secret left empty keeps it.
    response = admin.post(f"/admin/smart/smartserver/{server.pk}/change/", _form(client_secret=""))
    assert response.status_code == 302
    server.refresh_from_db()
    assert server.client_secret == SECRET


def test_the_private_key_is_write_only_and_checked(client_for):
    admin = client_for("superuser")
    bad = admin.post(
        "/admin/smart/smartserver/add/",
        _form(auth_method=AuthMethod.PRIVATE_KEY_JWT, client_secret="", private_key_pem="nonsense"),
    )
    assert bad.status_code == 200 and "not a PEM private key" in bad.content.decode()
    pem = rsa_private_pem()
    good = admin.post(
        "/admin/smart/smartserver/add/",
        _form(auth_method=AuthMethod.PRIVATE_KEY_JWT, client_secret="", private_key_pem=pem),
    )
    assert good.status_code == 302
    server = SmartServer.objects.get()
    page = admin.get(f"/admin/smart/smartserver/{server.pk}/change/").content.decode()
    assert "PRIVATE KEY" not in page


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("frame_origins", "http://ehr.example.org", "an origin is https://host"),
        ("frame_origins", "https://ehr.example.org/path", "an origin is https://host"),
        ("client_secret", "", "required for client secret"),
    ],
)
def test_bad_registrations_are_refused_naming_the_field(client_for, field, value, message):
    response = client_for("superuser").post(
        "/admin/smart/smartserver/add/", _form(**{field: value})
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SmartServer.objects.exists()


def test_data_entry_staff_cannot_see_the_registrations(client_for):
    staff = client_for("data_entry", is_staff=True)
    assert staff.get("/admin/smart/smartserver/").status_code == 403


def test_only_registered_active_issuers_are_found():
    server = SmartServer.objects.create(
        name="A", issuer="https://ehr.example.org/fhir", client_id="c", client_secret="s"
    )
    assert SmartServer.for_issuer("https://ehr.example.org/fhir/") == server
    assert SmartServer.for_issuer("https://ehr.example.org/fhir") == server
    assert SmartServer.for_issuer("https://ehr.example.org/fhir2") is None
    assert SmartServer.for_issuer("https://ehr.example.org") is None
    assert SmartServer.for_issuer("") is None
    server.active = False
    server.save()
    assert SmartServer.for_issuer("https://ehr.example.org/fhir") is None


def test_the_client_assertion_is_an_rs384_jwt_for_the_token_endpoint():
    pem = rsa_private_pem()
    server = SmartServer(
        client_id="tdm", auth_method=AuthMethod.PRIVATE_KEY_JWT, private_key_pem=pem, key_id="k1"
    )
    token = client_assertion(server, "https://ehr.example.org/token")
    public = load_pem_private_key(pem.encode(), None).public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(
        token, public_pem, algorithms=["RS384"], audience="https://ehr.example.org/token"
    )
    assert claims["iss"] == claims["sub"] == "tdm"
    assert claims["exp"] - claims["iat"] <= 300
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    assert client_assertion(server, "https://ehr.example.org/token") != token  # fresh jti
