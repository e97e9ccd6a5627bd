"""SMART on FHIR launch against the Fake EHR (tests/fake_ehr) over real HTTP: EHR launch and
standalone launch end to end, and every way a launch must be refused."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from monitoring.models import AccessLog
from smart.models import SmartLaunch
from tests.fake_ehr import state
from tests.fake_ehr.fixtures import FakeEhr, fake_ehr_fixture  # noqa: F401 - the fixture

# The live server needs committed data; serialized_rollback puts back the migrations'
# reference data (target profiles, groups) that a transactional test flushes.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_an_ehr_launch_opens_the_matched_patient_for_the_linked_account(fake_ehr: FakeEhr):
    response = fake_ehr.launch()
    assert response.status_code == 200, response.text
    assert response.url == f"{fake_ehr.app_url}/smart/"
    assert "Launched from Fake EHR" in response.text
    assert "MRN SMART-1" in response.text
    launch = SmartLaunch.objects.get()
    assert launch.user == fake_ehr.user
    assert launch.patient == fake_ehr.patient
    assert launch.ehr_patient_id == "pat-1"
    assert launch.fhir_user == "Practitioner/dr-1"
    assert launch.access_token and launch.refresh_token and launch.expires_at
    # The access log records the launch, for the linked account.
    row = AccessLog.objects.get(view_name="smart launch")
    assert (row.user, row.patient) == (fake_ehr.user, fake_ehr.patient)
    # The page that follows shows the patient too: a visit of its own.
    assert AccessLog.objects.filter(view_name="smart", patient=fake_ehr.patient).count() == 1


def _to_callback(fake_ehr: FakeEhr, browser, **params) -> str:
    """Launch and let the EHR authorise, stopping before the browser returns to the app:
    the callback URL with its code and state."""
    query = {"iss": fake_ehr.fhir_base, "launch": "launch-ctx-1", **params}
    response = browser.get(
        f"{fake_ehr.app_url}/smart/launch", params=query, allow_redirects=False, timeout=30
    )
    assert response.status_code == 302, response.text
    authorize = response.headers["Location"]
    response = browser.get(authorize, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def _assert_refused(response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert "EHR launch refused" in response.text
    assert message in response.text


def _assert_nothing_granted(fake_ehr: FakeEhr, browser) -> None:
    """Not signed in, nothing in the access log, the app's pages still ask for a login."""
    assert not AccessLog.objects.exists()
    page = browser.get(f"{fake_ehr.app_url}/smart/", allow_redirects=False, timeout=30)
    assert page.status_code == 302 and "/accounts/login/" in page.headers["Location"]


@pytest.fixture
def smart_log(caplog):
    caplog.set_level(logging.INFO, logger="smart")
    return caplog


def _assert_log_without_patient_data(caplog, code: str) -> None:
    lines = [r.getMessage() for r in caplog.records if r.name == "smart"]
    assert any(code in line for line in lines), lines
    for line in lines:
        for secret in ("SMART-1", "Ehrlich", "Eva", "pat-1", "1990-05-01"):
            assert secret not in line, line


def test_the_app_asks_with_pkce_s256_state_and_aud_equal_to_iss(fake_ehr: FakeEhr):
    browser = fake_ehr.browser()
    response = browser.get(
        f"{fake_ehr.app_url}/smart/launch",
        params={"iss": fake_ehr.fhir_base, "launch": "ctx"},
        allow_redirects=False,
        timeout=30,
    )
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["aud"] == [fake_ehr.fhir_base]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["launch"] == ["ctx"]
    assert query["scope"][0].split() == [
        "launch",
        "openid",
        "fhirUser",
        "patient/Patient.read",
        "patient/Observation.read",
        "patient/MedicationRequest.read",
    ]
    launch = SmartLaunch.objects.get()
    assert query["state"] == [launch.state]
    # The verifier never travels through the browser.
    assert launch.code_verifier not in response.headers["Location"]
    assert launch.code_verifier not in str(response.cookies.get_dict())


def test_v2_scopes_are_asked_for_when_the_server_advertises_permission_v2(fake_ehr: FakeEhr):
    state.BEHAVIOUR["permission_v2"] = True
    response = fake_ehr.launch()
    assert response.status_code == 200, response.text
    launch = SmartLaunch.objects.get()
    assert "patient/Observation.rs" in launch.requested_scope.split()
    assert "patient/Observation.read" not in launch.requested_scope
    assert "patient/Observation.rs" in launch.granted_scope.split()


def test_discovery_falls_back_to_the_capability_statement(fake_ehr: FakeEhr):
    state.BEHAVIOUR["well_known"] = False
    response = fake_ehr.launch()
    assert response.status_code == 200, response.text
    assert "MRN SMART-1" in response.text
    assert "/ehr/fhir/metadata" in state.REQUESTS


def test_a_standalone_launch_lets_the_ehr_choose_the_patient(fake_ehr: FakeEhr):
    browser = fake_ehr.browser()
    page = browser.get(f"{fake_ehr.app_url}/smart/start", timeout=30)
    assert page.status_code == 200 and "Fake EHR" in page.text
    response = browser.get(
        f"{fake_ehr.app_url}/smart/start", params={"server": fake_ehr.server.pk}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert "MRN SMART-1" in response.text
    launch = SmartLaunch.objects.get()
    assert launch.flow == SmartLaunch.STANDALONE
    assert "launch/patient" in launch.requested_scope.split()
    assert AccessLog.objects.filter(view_name="smart launch").count() == 1


def test_an_unknown_iss_is_refused(fake_ehr: FakeEhr, smart_log):
    browser = fake_ehr.browser()
    response = fake_ehr.launch(browser, iss="https://evil.example.org/fhir")
    _assert_refused(response, 400, "not registered")
    assert not SmartLaunch.objects.exists()
    assert state.REQUESTS == []
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, "unknown_iss")


def test_a_forged_state_is_refused(fake_ehr: FakeEhr, smart_log):
    browser = fake_ehr.browser()
    callback = _to_callback(fake_ehr, browser)
    forged = callback.replace("state=", "state=x")
    _assert_refused(browser.get(forged, timeout=30), 400, "not one the app started")
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, "unknown_state")


def test_a_replayed_state_is_refused(fake_ehr: FakeEhr, smart_log):
    browser = fake_ehr.browser()
    callback = _to_callback(fake_ehr, browser)
    assert browser.get(callback, timeout=30).status_code == 200
    AccessLog.objects.all().delete()
    _assert_refused(browser.get(callback, timeout=30), 400, "already used")
    other = fake_ehr.browser()
    _assert_refused(other.get(callback, timeout=30), 400, "already used")
    _assert_nothing_granted(fake_ehr, other)
    _assert_log_without_patient_data(smart_log, "state_replayed")


def test_a_failed_callback_uses_the_state_up(fake_ehr: FakeEhr, smart_log):
    browser = fake_ehr.browser()
    callback = _to_callback(fake_ehr, browser)
    launch = SmartLaunch.objects.get()
    wrong = callback.split("?")[0] + f"?code=wrong&state={launch.state}"
    _assert_refused(browser.get(wrong, timeout=30), 403, "refused to issue a token")
    _assert_refused(browser.get(callback, timeout=30), 400, "already used")
    _assert_nothing_granted(fake_ehr, browser)


def test_a_state_from_another_browser_is_refused(fake_ehr: FakeEhr, smart_log):
    victim = fake_ehr.browser()
    callback = _to_callback(fake_ehr, victim)
    attacker = fake_ehr.browser()
    _assert_refused(attacker.get(callback, timeout=30), 400, "another browser session")
    _assert_nothing_granted(fake_ehr, attacker)
    _assert_log_without_patient_data(smart_log, "state_not_this_browser")


@pytest.mark.parametrize(
    "verifier", ["", "a-wrong-verifier-of-sufficient-length-0123456789-abcdefgh"]
)
def test_a_missing_or_wrong_pkce_verifier_gets_no_token(fake_ehr: FakeEhr, verifier, smart_log):
    browser = fake_ehr.browser()
    callback = _to_callback(fake_ehr, browser)
    SmartLaunch.objects.update(code_verifier=verifier)
    _assert_refused(browser.get(callback, timeout=30), 403, "refused to issue a token")
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, "token_refused")


def test_a_token_response_without_patient_is_refused(fake_ehr: FakeEhr, smart_log):
    state.BEHAVIOUR["omit_patient"] = True
    browser = fake_ehr.browser()
    _assert_refused(fake_ehr.launch(browser), 403, "did not say which patient")
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, "no_patient_context")


def test_an_id_token_for_another_audience_is_refused(fake_ehr: FakeEhr, smart_log):
    state.BEHAVIOUR["id_token_aud"] = "some-other-app"
    browser = fake_ehr.browser()
    _assert_refused(fake_ehr.launch(browser), 403, "identity token could not be verified")
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, "bad_id_token")


def test_an_ehr_that_checks_aud_refuses_a_launch_for_another_server(fake_ehr: FakeEhr):
    # The app always sends aud = iss; an EHR seeing another aud refuses (RFC 8707 style),
    # so a token is never minted for a server the app did not name.
    state.BEHAVIOUR["aud"] = "https://another-fhir.example.org/fhir"
    browser = fake_ehr.browser()
    response = fake_ehr.launch(browser)
    assert response.status_code == 400 and "aud" in response.text
    _assert_nothing_granted(fake_ehr, browser)


@pytest.mark.parametrize(
    "dropped, missing",
    [
        ({"patient/Observation.read"}, "patient/Observation.read"),
        ({"fhirUser"}, "fhirUser"),
        ({"patient/MedicationRequest.read", "openid"}, "openid"),
    ],
)
def test_fewer_scopes_granted_than_needed_are_refused(
    fake_ehr: FakeEhr, dropped, missing, smart_log
):
    state.BEHAVIOUR["drop_scopes"] = dropped
    browser = fake_ehr.browser()
    _assert_refused(fake_ehr.launch(browser), 403, missing)
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, "scopes_missing")


@pytest.mark.parametrize("fault, code", [(500, "ehr_http_error"), ("garbage", "ehr_garbage")])
def test_a_token_endpoint_answering_500_or_garbage_is_refused(
    fake_ehr: FakeEhr, fault, code, smart_log
):
    state.BEHAVIOUR["token_fault"] = fault
    browser = fake_ehr.browser()
    _assert_refused(fake_ehr.launch(browser), 502, "The EHR")
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, code)


@pytest.mark.parametrize("fault, code", [(500, "ehr_http_error"), ("garbage", "ehr_garbage")])
def test_a_fhir_api_answering_500_or_garbage_is_refused(fake_ehr: FakeEhr, fault, code, smart_log):
    state.BEHAVIOUR["fhir_fault"] = fault
    browser = fake_ehr.browser()
    _assert_refused(fake_ehr.launch(browser), 502, "The EHR")
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, code)


def test_an_ehr_user_not_linked_to_an_account_is_refused(fake_ehr: FakeEhr, smart_log):
    state.BEHAVIOUR["fhir_user"] = "Practitioner/stranger"
    browser = fake_ehr.browser()
    _assert_refused(fake_ehr.launch(browser), 403, "not linked to an account")
    _assert_nothing_granted(fake_ehr, browser)
    _assert_log_without_patient_data(smart_log, "user_not_linked")


def test_an_expired_token_without_refresh_asks_to_launch_again(fake_ehr: FakeEhr):
    from datetime import timedelta

    from django.utils import timezone

    from smart import services

    browser = fake_ehr.browser()
    assert fake_ehr.launch(browser).status_code == 200
    launch = SmartLaunch.objects.get()
    launch.expires_at = timezone.now() - timedelta(minutes=1)
    launch.refresh_token = ""
    launch.save()
    with pytest.raises(services.SmartError) as refused:
        services.read(launch, "Patient/pat-1")
    assert refused.value.code == "token_expired"


def test_an_expired_token_is_refreshed(fake_ehr: FakeEhr):
    from datetime import timedelta

    from django.utils import timezone

    from smart import services

    assert fake_ehr.launch().status_code == 200
    launch = SmartLaunch.objects.get()
    old_access, old_refresh = launch.access_token, launch.refresh_token
    launch.expires_at = timezone.now() - timedelta(minutes=1)
    launch.save()
    patient = services.read(launch, "Patient/pat-1")
    assert patient["id"] == "pat-1"
    launch.refresh_from_db()
    assert launch.access_token != old_access
    assert launch.refresh_token and launch.refresh_token != old_refresh
    assert launch.expires_at > timezone.now()
