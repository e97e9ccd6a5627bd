"""The site shell: login, health check, security headers and production settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError
from django.urls import reverse

from tdm_site import health

BASE_DIR = Path(__file__).resolve().parents[2]


def production_env(**overrides: str) -> dict[str, str]:
    """The current environment minus anything that relaxes the settings for tests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTEST_VERSION", "SECRET_KEY", "DEBUG", "SECURE_SSL_REDIRECT"}
    }
    env["DJANGO_SETTINGS_MODULE"] = "tdm_site.settings"
    env.update(overrides)
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_login_page_renders_labelled_inputs_for_anonymous_users(client):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">' in html
    assert 'id="id_username"' in html
    assert '<label for="id_password">' in html
    assert 'id="id_password"' in html
    assert 'autocomplete="current-password"' in html
    assert '<main id="main"' in html
    assert "/static/css/app.css" in html
    assert "django_htmx/htmx-2.min.js" in html


@pytest.mark.django_db
def test_login_with_a_wrong_password_shows_an_error(client, user_factory):
    user_factory(username="ana")

    response = client.post(reverse("login"), {"username": "ana", "password": "nope"})

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_login_then_logout_by_post(client, user_factory):
    from tests.conftest import TEST_PASSWORD

    user_factory(username="ana")

    response = client.post(reverse("login"), {"username": "ana", "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert response.url == settings.LOGIN_REDIRECT_URL

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response.url == reverse("login")
    assert "_auth_user_id" not in client.session


def test_the_layout_shows_staff_an_admin_link_and_a_logout_form(client_for):
    client = client_for("superuser", first_name="Ana", last_name="Lopez")

    html = client.get(reverse("login")).content.decode()

    assert f'href="{reverse("admin:index")}"' in html
    assert f'action="{reverse("logout")}"' in html
    assert "Ana Lopez" in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_the_layout_hides_the_admin_link_from_non_staff(client_for):
    client = client_for("viewer")

    html = client.get(reverse("login")).content.decode()

    assert f'href="{reverse("admin:index")}"' not in html


@pytest.mark.django_db
def test_anonymous_admin_request_redirects_to_login(client):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert "login" in response.url


@pytest.mark.django_db
def test_healthz_answers_ok_anonymously(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"status": "ok", "database": "ok"}


def test_healthz_answers_503_when_the_database_is_down(client, monkeypatch):
    class BrokenConnection:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(health, "connection", BrokenConnection())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert json.loads(response.content)["database"] == "unavailable"


@pytest.mark.django_db
def test_responses_carry_security_headers(client):
    response = client.get("/healthz")

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_sessions_expire_after_idle_time():
    assert settings.SESSION_COOKIE_AGE == int(os.environ.get("SESSION_IDLE_SECONDS", 1800))
    assert "monitoring.middleware.SessionIdleMiddleware" in settings.MIDDLEWARE


@pytest.mark.django_db
def test_activity_moves_the_session_expiry_at_most_once_a_minute(client, django_user_model):
    from django.contrib.sessions.models import Session

    user = django_user_model.objects.create_user("idle", password="x-long-password-1")
    client.force_login(user)
    client.get("/healthz")
    key = client.session.session_key
    first = Session.objects.get(session_key=key).expire_date
    client.get("/healthz")
    assert Session.objects.get(session_key=key).expire_date == first  # within the minute
    session = client.session
    session["_idle_touch"] -= settings.SESSION_TOUCH_SECONDS  # as if a minute had passed
    session.save()
    saved = Session.objects.get(session_key=key).expire_date
    client.get("/healthz")
    assert Session.objects.get(session_key=key).expire_date > saved


@pytest.mark.parametrize(
    "secret_key",
    [None, "django-insecure-tdm-development-only-key-not-for-any-real-deployment"],
    ids=["missing", "development-key"],
)
def test_settings_refuse_to_load_without_a_real_secret_key_when_debug_is_off(secret_key):
    env = production_env(DEBUG="0")
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key

    result = run_python("import django; django.setup()", env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_check_deploy_is_clean_in_production_mode():
    env = production_env(
        DEBUG="0",
        SECRET_KEY="k7Qp-2vXz9Lr_Tq8mWc4Ny6Hb1Js3Df5Gh0Kl7Zx2Cv9Bn4Mq8Wr",
        ALLOWED_HOSTS="tdm.example.org",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr


def test_pages_are_compressed_for_clients_that_accept_gzip(client_for):
    import gzip

    client = client_for("clinician")
    plain = client.get("/")
    packed = client.get("/", headers={"accept-encoding": "gzip"})
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    body = gzip.decompress(packed.content)
    assert body.rstrip().endswith(b"</html>") and len(packed.content) < len(body) * 0.7
