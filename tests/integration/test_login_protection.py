"""Login protection: lockout after repeated failures (django-axes), password rules, and
sessions that end after the idle time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = settings.AXES_FAILURE_LIMIT
ADDRESS_LIMIT = settings.LOGIN_ADDRESS_FAILURE_LIMIT
NAT = "192.0.2.77"  # a clinic's one public address


def attempt(client, username: str, password: str, ip: str = "192.0.2.10"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_the_limit_and_cool_off_come_from_settings():
    assert LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_repeated_failures_lock_the_account_even_with_the_right_password(client, user_factory):
    user_factory(username="ana")
    for _ in range(LIMIT - 1):
        assert attempt(client, "ana", "wrong").status_code == 200

    locked = attempt(client, "ana", "wrong")
    again = attempt(client, "ana", TEST_PASSWORD)

    for response in (locked, again):
        assert response.status_code == 429
        html = response.content.decode()
        assert "Too many failed logins" in html
        assert "Try again in 15 minutes" in html
        assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "_auth_user_id" not in client.session


def test_the_account_lock_holds_from_another_address(client, user_factory):
    user_factory(username="ana")
    for i in range(LIMIT):
        attempt(client, "ana", "wrong", ip=f"198.51.100.{i + 1}")

    assert attempt(client, "ana", TEST_PASSWORD, ip="203.0.113.50").status_code == 429


def test_one_address_trying_many_accounts_is_locked_at_the_higher_address_limit(
    client, user_factory
):
    user_factory(username="ana")
    for i in range(ADDRESS_LIMIT - 1):
        attempt(client, f"guess{i}", "wrong", ip="192.0.2.99")
    assert attempt(client, "ana", TEST_PASSWORD, ip="192.0.2.99").status_code == 302
    client.post(reverse("logout"))

    for i in range(2):
        attempt(client, f"more{i}", "wrong", ip="192.0.2.99")

    assert attempt(client, "ana", TEST_PASSWORD, ip="192.0.2.99").status_code == 429
    # Another address is not affected.
    assert attempt(client, "ana", TEST_PASSWORD, ip="192.0.2.100").status_code == 302


def test_a_successful_login_clears_earlier_failures(client, user_factory):
    user_factory(username="ana")
    for _ in range(LIMIT - 1):
        attempt(client, "ana", "wrong")
    assert attempt(client, "ana", TEST_PASSWORD).status_code == 302
    client.post(reverse("logout"))

    for _ in range(LIMIT - 1):
        attempt(client, "ana", "wrong")

    assert attempt(client, "ana", TEST_PASSWORD).status_code == 302


def test_a_login_from_the_same_address_does_not_clear_another_accounts_failures(
    client, user_factory
):
    """An attacker with an account of their own signs in between guesses: only their own
    counter is reset, so 16 guesses against bob are still 16, and bob is locked."""
    user_factory(username="bob")
    user_factory(username="eve")
    for _ in range(4):
        for _ in range(LIMIT - 1):
            attempt(client, "bob", "wrong", ip=NAT)
        assert attempt(client, "eve", TEST_PASSWORD, ip=NAT).status_code == 302
        client.post(reverse("logout"))

    assert attempt(client, "bob", TEST_PASSWORD, ip=NAT).status_code == 429


def test_a_success_resets_only_the_counter_of_the_user_who_signed_in(client, user_factory):
    user_factory(username="ana")
    for _ in range(2):
        attempt(client, "ana", "wrong", ip=NAT)
        attempt(client, "bob", "wrong", ip=NAT)

    assert attempt(client, "ana", TEST_PASSWORD, ip=NAT).status_code == 302

    assert not AccessAttempt.objects.filter(username="ana").exists()
    assert AccessAttempt.objects.get(username="bob").failures_since_start == 2


def test_one_mistyping_person_does_not_lock_out_the_clinic_behind_one_address(client, user_factory):
    user_factory(username="ana")
    user_factory(username="ben")
    for _ in range(LIMIT):
        attempt(client, "ana", "wrong", ip=NAT)

    assert attempt(client, "ana", TEST_PASSWORD, ip=NAT).status_code == 429
    assert attempt(client, "ben", TEST_PASSWORD, ip=NAT).status_code == 302


def test_every_failed_login_stays_on_record_after_a_success(client, user_factory):
    user_factory(username="ana")
    for _ in range(3):
        attempt(client, "ana", "wrong", ip=NAT)

    assert attempt(client, "ana", TEST_PASSWORD, ip=NAT).status_code == 302
    AccessAttempt.objects.all().delete()  # the cool-off clean-up, or a staff reset

    failures = AccessFailureLog.objects.filter(username="ana")
    assert failures.count() == 3
    assert {f.ip_address for f in failures} == {NAT}


def test_the_lock_ends_after_the_cool_off(client, user_factory):
    user_factory(username="ana")
    for _ in range(LIMIT):
        attempt(client, "ana", "wrong")
    assert attempt(client, "ana", TEST_PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert attempt(client, "ana", TEST_PASSWORD).status_code == 302


def test_staff_can_lift_a_lock_at_once(client, user_factory):
    user_factory(username="ana")
    for _ in range(LIMIT):
        attempt(client, "ana", "wrong")

    call_command("axes_reset_username", "ana")

    assert attempt(client, "ana", TEST_PASSWORD).status_code == 302


def test_the_lockout_page_does_not_echo_what_was_typed(client):
    for _ in range(LIMIT):
        response = attempt(client, "<b>mallory</b>", "wrong")

    assert response.status_code == 429
    assert "mallory" not in response.content.decode()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pw1", "too short"),
        ("password1234", "too common"),
        ("938472615093", "entirely numeric"),
        ("ana.lopez.clinic", "too similar"),
    ],
)
def test_weak_passwords_are_refused(user_factory, password, reason):
    user = user_factory(username="ana.lopez.clinic")

    with pytest.raises(ValidationError) as error:
        validate_password(password, user)

    assert reason in " ".join(error.value.messages)


def test_password_change_applies_the_rules(client_for):
    client = client_for("viewer")

    response = client.post(
        reverse("password_change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": "123456789012",
            "new_password2": "123456789012",
        },
    )

    assert response.status_code == 200
    assert "entirely numeric" in response.content.decode()


def test_an_idle_session_ends_and_the_next_request_asks_for_login(client_for):
    client = client_for("viewer")
    url = reverse("password_change")
    assert client.get(url).status_code == 200

    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_activity_pushes_the_idle_expiry_forward(client_for):
    client = client_for("viewer")
    session = client.session
    session["_idle_touch"] -= settings.SESSION_TOUCH_SECONDS  # the last push was a minute ago
    session.save()
    Session.objects.update(expire_date=timezone.now() + timedelta(seconds=60))

    client.get(reverse("password_change"))

    expiry = Session.objects.get().expire_date
    assert expiry > timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)


def test_an_absurdly_long_username_is_counted_like_any_other(client):
    name = "x" * 1000
    for _ in range(LIMIT - 1):
        assert attempt(client, name, "wrong").status_code == 200

    assert attempt(client, name, "wrong").status_code == 429
    assert AccessAttempt.objects.get().username == "x" * 150
