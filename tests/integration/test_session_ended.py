"""A session that ended while a page was open: htmx requests get a full redirect to the login
page (HX-Redirect), the user returns to the page they were on, and a refused form post says
that nothing was saved."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.contrib.messages import get_messages
from django.urls import reverse

from monitoring.middleware import SESSION_ENDED_MESSAGE

PAGE = "http://testserver/patients/7/?unit=nmol"


def next_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path == reverse("login")
    return parse_qs(parts.query)["next"][0]


def test_an_htmx_fragment_request_gets_a_full_redirect_back_to_the_page(client, db):
    response = client.get(
        "/?alert=trough_above_range",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?q=DEMO"},
    )
    assert response.status_code == 200
    assert response.content == b""  # nothing to swap into the table
    assert next_of(response["HX-Redirect"]) == "/?q=DEMO"


def test_an_htmx_form_post_is_refused_and_the_login_page_says_so(client, db):
    response = client.post(
        reverse("monitoring:level_add", args=[7]),
        {"reported_value": "7.3"},
        headers={"HX-Request": "true", "HX-Current-URL": PAGE},
    )
    assert next_of(response["HX-Redirect"]) == "/patients/7/?unit=nmol"
    login = client.get(response["HX-Redirect"])
    assert SESSION_ENDED_MESSAGE in login.content.decode()


def test_a_plain_form_post_returns_to_the_page_it_came_from(client, db):
    response = client.post(
        reverse("monitoring:level_add", args=[7]),
        {"reported_value": "7.3"},
        headers={"Referer": PAGE},
    )
    assert response.status_code == 302
    assert next_of(response["Location"]) == "/patients/7/?unit=nmol"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [SESSION_ENDED_MESSAGE]


def test_another_sites_address_is_never_the_way_back(client, db):
    response = client.get(
        "/", headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example/x"}
    )
    assert next_of(response["HX-Redirect"]) == "/"


def test_a_plain_page_request_keeps_djangos_redirect(client, db):
    response = client.get("/patients/7/?unit=nmol")
    assert response.status_code == 302
    assert next_of(response["Location"]) == "/patients/7/?unit=nmol"
    assert "HX-Redirect" not in response


def test_a_signed_in_user_is_not_affected(clinician_client):
    response = clinician_client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "HX-Redirect" not in response
