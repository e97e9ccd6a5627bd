"""Response headers and cookies: a strict Content-Security-Policy that the pages really keep
(no inline script anywhere), Permissions-Policy, frame denial, referrer policy, HSTS and
secure cookies in production."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.urls import reverse

from monitoring.importers import run_csv_import
from monitoring.models import Patient
from tests.integration.test_site import production_env, run_python

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.fixture
def patient() -> Patient:
    data = b"mrn,family_name,given_name,birth_date,sex\nSEC-1,Doe,Jane,1988-04-12,F\n"
    assert run_csv_import("patients", data).ok
    levels = (
        b"mrn,collected_at,last_dose_at,value,unit,accession\n"
        b"SEC-1,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,A1\n"
    )
    assert run_csv_import("levels", levels).ok
    return Patient.objects.get(mrn="SEC-1")


def test_the_content_security_policy_allows_only_this_sites_own_scripts(client):
    directives = policy(client.get(reverse("login")))

    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["style-src"] == ["'self'", "'unsafe-inline'"]  # plotly's <style> rules
    assert directives["connect-src"] == ["'self'"]  # htmx requests
    assert directives["img-src"] == ["'self'", "data:", "blob:"]  # plotly's PNG download
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert not any(
        "*" in value or "http" in value for values in directives.values() for value in values
    )


@pytest.mark.parametrize(
    "url",
    ["/accounts/login/", "/healthz", "/no-such-page/", "/static/css/app.css"],
)
def test_every_response_carries_the_policy_headers(client, url):
    response = client.get(url)

    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_logged_in_pages_carry_the_policy_headers(client_for, patient):
    response = client_for("viewer").get(reverse("monitoring:patient_history", args=[patient.pk]))

    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    permissions = response["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"):
        assert feature in permissions


def test_a_forbidden_page_carries_the_policy_too(client_for):
    response = client_for("viewer").get(reverse("monitoring:access_log"))

    assert response.status_code == 403
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_htmx_is_configured_not_to_inject_styles_or_evaluate_code(client):
    html = client.get(reverse("login")).content.decode()

    match = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert match, "base.html must configure htmx for the CSP"
    config = json.loads(match.group(1))
    assert config["includeIndicatorStyles"] is False
    assert config["allowEval"] is False


class ScriptAudit(HTMLParser):
    """Everything a strict script-src would block: inline scripts, inline handlers,
    javascript: URLs and scripts from other origins."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False
        self._script_type = ""

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"inline handler {name} on <{tag}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL in {name} of <{tag}>")
            if name in {"hx-on", "hx-vars"} or name.startswith("hx-on"):
                self.problems.append(f"htmx evaluates {name} on <{tag}>")
        if tag == "script":
            self._in_script = "src" not in values
            self._script_type = (values.get("type") or "").lower()
            src = values.get("src") or ""
            if src and (not src.startswith("/") or src.startswith("//")):
                self.problems.append(f"script from elsewhere: {src}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        # json_script's <script type="application/json"> is data, never run.
        if self._in_script and data.strip() and self._script_type != "application/json":
            self.problems.append(f"inline script: {data.strip()[:60]}")


def pages(patient) -> list[str]:
    candidates = [
        ("login", []),
        ("monitoring:worklist", []),
        ("monitoring:patient", [patient.pk]),
        ("monitoring:patient_history", [patient.pk]),
        ("monitoring:access_log", []),
        ("admin:index", []),
        ("admin:monitoring_patient_changelist", []),
        ("admin:monitoring_patient_change", [patient.pk]),
        ("admin:monitoring_troughlevel_add", []),
        ("admin:monitoring_patient_history", [patient.pk]),
        ("password_change", []),
    ]
    urls = []
    for name, args in candidates:
        try:
            urls.append(reverse(name, args=args))
        except Exception:  # noqa: BLE001, S112 - a page another issue has not added yet
            continue
    return urls


def test_no_page_has_an_inline_script_that_the_policy_would_block(client_for, patient):
    client = client_for("superuser")

    for url in pages(patient):
        response = client.get(url)
        assert response.status_code == 200, url
        audit = ScriptAudit()
        audit.feed(response.content.decode())
        assert audit.problems == [], url


def test_cookies_are_http_only_and_same_site(client, user_factory):
    from tests.conftest import TEST_PASSWORD

    user_factory(username="ana")
    client.get(reverse("login"))
    response = client.post(reverse("login"), {"username": "ana", "password": TEST_PASSWORD})

    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"
    assert settings.CSRF_COOKIE_HTTPONLY is True


def test_production_settings_send_hsts_and_secure_cookies():
    env = production_env(
        DEBUG="0",
        SECRET_KEY="k7Qp-2vXz9Lr_Tq8mWc4Ny6Hb1Js3Df5Gh0Kl7Zx2Cv9Bn4Mq8Wr",
        ALLOWED_HOSTS="tdm.example.org",
    )
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ['SECURE_HSTS_SECONDS', "
        "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', "
        "'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_AGE', 'PROXY_COUNT']}))"
    )

    result = run_python(code, env)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_AGE"] == 1800
    assert values["PROXY_COUNT"] == 1


def test_https_responses_carry_hsts(client, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000

    response = client.get("/healthz", secure=True)

    assert response["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains; preload")
