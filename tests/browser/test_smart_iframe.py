"""The EHR embeds the app: a Fake EHR page on another origin, over HTTPS with a self-signed
certificate made here, shows the SMART launch in an iframe; the app opens the matched patient
inside the frame, and an ordinary page of the site refuses to be framed."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.db import connections

from tests.fake_ehr import state
from tests.fake_ehr.fixtures import build_fake_ehr
from tests.fake_ehr.tls import TlsProxy, self_signed_certificate

pytestmark = [
    # The live server needs committed data; serialized_rollback puts back the migrations'
    # reference data.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_ehr_frames_the_launch_and_the_rest_of_the_site_refuses(
    browser, live_server, settings, user_factory, tmp_path, monkeypatch
):
    cert, key = self_signed_certificate(tmp_path)
    # The app's own calls to the EHR (token, keys, FHIR) trust the test's certificate.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    # HTTPS as in production: Secure cookies, and SameSite=None on the SMART routes.
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    with TlsProxy(urlsplit(live_server.url).port, cert, key) as proxy:
        app = f"https://localhost:{proxy.port}"
        ehr = f"https://127.0.0.1:{proxy.port}/ehr"
        fake = build_fake_ehr(settings, user_factory, app, ehr)
        context = browser.new_context(ignore_https_errors=True)
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            messages: list[str] = []
            page.on("console", lambda msg: messages.append(msg.text))
            page.goto(f"{ehr}/chart?app={app}")
            frame = page.frame_locator("#app")
            frame.get_by_text("Launched from Fake EHR").wait_for()
            assert frame.get_by_text("MRN SMART-1").count() == 1
            # The launch signed in the linked account, with cookies only the SMART routes see.
            cookies = {c["name"]: c for c in context.cookies()}
            assert "smart_sessionid" in cookies, cookies
            assert cookies["smart_sessionid"]["sameSite"] == "None"
            assert cookies["smart_sessionid"]["secure"] is True
            assert cookies["smart_sessionid"]["path"] == "/smart/"
            assert "sessionid" not in cookies
            # The ordinary page in the other frame was refused by the browser.
            site = next(f for f in page.frames if f.name == "site")
            assert site.locator("input[name=username]").count() == 0
            assert any("frame-ancestors" in m for m in messages), messages
        finally:
            context.close()
            state.reset()
    assert fake.server.launches.count() == 1
    # The set-up ran while Playwright's loop did: close that connection, or PostgreSQL
    # cannot drop the test database at the end of the run.
    connections.close_all()
