"""What the app asks an EHR for and whether a grant is enough (smart/scopes.py, pure)."""

import base64
import hashlib

import pytest

from smart.scopes import missing_scopes, pkce_pair, requested_scopes

V1 = (
    "launch openid fhirUser patient/Patient.read patient/Observation.read"
    " patient/MedicationRequest.read"
)


def test_the_ehr_launch_asks_for_v1_read_scopes():
    assert " ".join(requested_scopes(standalone=False, v2=False)) == V1


def test_v2_servers_are_asked_for_rs_and_standalone_for_a_patient_picker():
    scopes = requested_scopes(standalone=True, v2=True)
    assert scopes[0] == "launch/patient"
    assert "patient/Observation.rs" in scopes and "patient/Observation.read" not in scopes


@pytest.mark.parametrize(
    "granted",
    [
        V1,
        "openid fhirUser patient/*.read",
        "openid fhirUser patient/Patient.rs patient/Observation.rs patient/MedicationRequest.rs",
        "openid fhirUser patient/*.cruds",
        "openid fhirUser user/Patient.read user/Observation.read user/MedicationRequest.read",
        "openid fhirUser patient/Patient.r patient/Patient.s patient/Observation.rs"
        " patient/MedicationRequest.rs patient/Patient.rs",
    ],
)
def test_a_sufficient_grant_misses_nothing(granted):
    assert missing_scopes(granted) == []


@pytest.mark.parametrize(
    "granted, missing",
    [
        (
            "",
            [
                "openid",
                "fhirUser",
                "patient/Patient.read",
                "patient/Observation.read",
                "patient/MedicationRequest.read",
            ],
        ),
        (V1.replace(" patient/Observation.read", ""), ["patient/Observation.read"]),
        (V1.replace("fhirUser ", ""), ["fhirUser"]),
        (
            "openid fhirUser patient/*.write",
            ["patient/Patient.read", "patient/Observation.read", "patient/MedicationRequest.read"],
        ),
        # v2: read without search is not enough to search Observations.
        (
            "openid fhirUser patient/Patient.rs patient/Observation.r patient/MedicationRequest.rs",
            ["patient/Observation.read"],
        ),
        (
            "openid fhirUser patient/Patient.rs patient/Observation.rx"
            " patient/MedicationRequest.rs",
            ["patient/Observation.read"],
        ),
        (
            "openid fhirUser system/*.read",
            ["patient/Patient.read", "patient/Observation.read", "patient/MedicationRequest.read"],
        ),
    ],
)
def test_an_insufficient_grant_names_what_is_missing(granted, missing):
    assert missing_scopes(granted) == missing


def test_pkce_is_s256_of_a_long_random_verifier():
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == expected.decode()
    assert pkce_pair()[0] != verifier
