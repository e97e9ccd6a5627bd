"""pytest fixtures that run the Fake EHR beside the app on pytest-django's live server:
the app answers on http://localhost:PORT, the EHR on http://127.0.0.1:PORT/ehr (two hosts, so
two cookie jars, as two sites would have). Every request is real HTTP on the loopback."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import state

CLIENT_ID = "tdm-app"
CLIENT_SECRET = "fake-ehr-client-secret-for-tests-only"


@cache
def rsa_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class FakeEhr:
    app_url: str
    ehr_url: str
    fhir_base: str
    server: object  # smart.models.SmartServer
    user: object  # our account linked to the EHR user
    patient: object  # monitoring.models.Patient matched by MRN

    def browser(self) -> requests.Session:
        return requests.Session()

    def launch(self, browser: requests.Session | None = None, **params) -> requests.Response:
        """The EHR opening the app: ``/smart/launch?iss=…&launch=…``, redirects followed."""
        browser = browser or self.browser()
        query = {"iss": self.fhir_base, "launch": "launch-ctx-1", **params}
        return browser.get(f"{self.app_url}/smart/launch", params=query, timeout=30)


PATIENT_RESOURCE = {
    "resourceType": "Patient",
    "id": "pat-1",
    "identifier": [
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
            "system": "urn:oid:1.2.3.4.mrn",
            "value": "SMART-1",
        },
        {"system": "urn:oid:9.9.9.other", "value": "ZZZ"},
    ],
    "name": [{"family": "Ehrlich", "given": ["Eva"]}],
    "birthDate": "1990-05-01",
    "gender": "female",
}


def build_fake_ehr(settings, user_factory, app_url: str, ehr_url: str) -> FakeEhr:
    """Configure the Fake EHR at ``ehr_url`` and register it with the app at ``app_url``."""
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    from monitoring.importers import run_csv_import
    from monitoring.models import Patient
    from smart.models import SmartServer, SmartUserLink

    from .views import EHR_USERNAME

    fhir_base = f"{ehr_url}/fhir"
    settings.ROOT_URLCONF = "tests.fake_ehr.urls"
    settings.OAUTH2_PROVIDER = {
        "OIDC_ENABLED": True,
        "OIDC_RSA_PRIVATE_KEY": rsa_private_pem(),
        "OIDC_ISS_ENDPOINT": f"{ehr_url}/o",
        "PKCE_REQUIRED": True,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
        "OAUTH2_VALIDATOR_CLASS": "tests.fake_ehr.validator.FakeEhrValidator",
        "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
        "SCOPES": {
            s: s
            for s in (
                "launch launch/patient openid fhirUser offline_access "
                "patient/Patient.read patient/Observation.read patient/MedicationRequest.read "
                "patient/Patient.rs patient/Observation.rs patient/MedicationRequest.rs"
            ).split()
        },
    }
    state.reset()
    state.BEHAVIOUR["aud"] = fhir_base
    state.put(PATIENT_RESOURCE)

    ehr_user = get_user_model().objects.create_user(username=EHR_USERNAME, password="unused-x")
    get_application_model().objects.create(
        name="TDM app",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        client_type="confidential",
        authorization_grant_type="authorization-code",
        redirect_uris=f"{app_url}/smart/callback",
        algorithm="RS256",
        skip_authorization=True,
        user=ehr_user,
    )
    ehr_origin = "/".join(ehr_url.split("/")[:3])
    server = SmartServer.objects.create(
        name="Fake EHR",
        issuer=fhir_base,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        mrn_identifier_system="urn:oid:1.2.3.4.mrn",
        frame_origins=ehr_origin
        if ehr_origin.startswith("https://")
        else "https://ehr.example.org",
    )
    user = user_factory(groups=["clinician", "data_entry"], username="dr_smart")
    SmartUserLink.objects.create(server=server, fhir_user="Practitioner/dr-1", user=user)
    report = run_csv_import(
        "patients",
        b"mrn,family_name,given_name,birth_date,sex\nSMART-1,Ehrlich,Eva,1990-05-01,F\n",
        user=user,
    )
    assert report.written, report.problems
    return FakeEhr(app_url, ehr_url, fhir_base, server, user, Patient.objects.get(mrn="SMART-1"))


@pytest.fixture(name="fake_ehr")
def fake_ehr_fixture(live_server, settings, user_factory) -> FakeEhr:
    port = urlsplit(live_server.url).port
    yield build_fake_ehr(
        settings, user_factory, f"http://localhost:{port}", f"http://127.0.0.1:{port}/ehr"
    )
    state.reset()
