"""SMART pages inside an EHR's iframe: their own SameSite=None cookies under /smart/ only,
framing allowed for the registered EHR origins only; the rest of the site still refuses."""

from __future__ import annotations

import pytest
from django.test import Client

from smart.models import SmartServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    return SmartServer.objects.create(
        name="EHR",
        issuer="https://ehr.example.org/fhir",
        client_id="c",
        client_secret="s",
        frame_origins="https://ehr.example.org https://portal.example.org",
    )


def _frame_ancestors(response) -> str:
    policy = response["Content-Security-Policy"]
    return next(p.strip() for p in policy.split(";") if p.strip().startswith("frame-ancestors"))


def test_smart_pages_may_be_framed_by_the_registered_ehr_origins_only(server):
    response = Client().get("/smart/start")
    assert response.status_code == 200
    assert _frame_ancestors(response) == (
        "frame-ancestors 'self' https://ehr.example.org https://portal.example.org"
    )
    assert "X-Frame-Options" not in response
    refused = Client().get("/smart/launch", {"iss": "https://evil.example.org", "launch": "x"})
    assert _frame_ancestors(refused) == (
        "frame-ancestors 'self' https://ehr.example.org https://portal.example.org"
    )


def test_without_a_registered_origin_smart_pages_refuse_framing_too():
    response = Client().get("/smart/start")
    assert _frame_ancestors(response) == "frame-ancestors 'none'"
    assert response["X-Frame-Options"] == "DENY"


def test_the_rest_of_the_site_keeps_refusing_to_be_framed(server, client_for):
    for response in (Client().get("/accounts/login/"), client_for("viewer").get("/")):
        assert _frame_ancestors(response) == "frame-ancestors 'none'"
        assert response["X-Frame-Options"] == "DENY"


def test_smart_routes_get_their_own_same_site_none_secure_cookies(server, settings, monkeypatch):
    settings.SESSION_COOKIE_SECURE = True
    from smart import client

    monkeypatch.setattr(
        client,
        "discover",
        lambda s: {
            "authorization_endpoint": "https://ehr.example.org/authorize",
            "token_endpoint": "https://ehr.example.org/token",
        },
    )
    browser = Client()
    response = browser.get("/smart/launch", {"iss": "https://ehr.example.org/fhir", "launch": "x"})
    assert response.status_code == 302
    cookie = response.cookies["smart_sessionid"]
    assert cookie["path"] == "/smart/"
    assert cookie["samesite"] == "None"
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie.output().endswith("; Partitioned")  # kept where third-party cookies are not
    assert "sessionid" not in response.cookies
    # The site's pages never see the SMART cookie: the path keeps browsers from sending it,
    # and a request to them without the site's own cookie is anonymous.
    page = Client().get("/", HTTP_COOKIE=f"smart_sessionid={cookie.value}")
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]


def test_a_visit_with_the_sites_own_session_keeps_it(server, client_for):
    viewer = client_for("viewer")
    response = viewer.get("/smart/start")
    assert response.status_code == 200
    assert "smart_sessionid" not in response.cookies
