"""Browser tests: Playwright driving Debian's chromium against pytest-django's live server.

Run them with the rest of the suite (`make test`), or alone with `pytest -m browser`. They
skip, saying how to enable them, when /usr/bin/chromium (Debian package `chromium`) or the
Playwright package is missing; `make test` installs chromium when it can.

A test module using the live server marks itself
`pytest.mark.django_db(transaction=True, serialized_rollback=True)`: the live server needs
committed data, and serialized_rollback restores the migrations' reference data (groups,
target profiles, thresholds) that the flush after each test removes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import TEST_PASSWORD

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# No sandbox as root in a container; the rest keep Chromium off the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def browser(monkeypatch) -> Iterator:
    """A fresh headless Chromium per test (the sync API's event loop must not outlive it)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (make test does)"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install "
            "chromium) or set CHROMIUM=/path/to/chromium"
        )
    # Playwright's sync API runs an event loop in this thread while the test's own ORM calls
    # stay synchronous, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # expect() waits as long as the pages' own default (15 s): on the loaded 2-core machine
    # (CI runs worker processes beside these tests) an htmx swap can outlast its 5 s default.
    sync_api.expect.set_options(timeout=15_000)
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
    # ORM calls made while the event loop ran opened their own connection; close it, or
    # PostgreSQL cannot drop the test database at the end of the run.
    connections.close_all()


@pytest.fixture
def page_for(browser, live_server, user_factory) -> Callable:
    """`page_for("clinician")` → a signed-in page on the live server. The page records
    console messages and CSP violations in `page.console_messages`."""
    contexts = []

    def sign_in(role: str = "clinician", **user_fields):
        if role == "superuser":
            user = user_factory(is_staff=True, is_superuser=True, **user_fields)
        else:
            user = user_factory(groups=[role], **user_fields)
        context = browser.new_context(
            base_url=live_server.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.console_messages = []
        page.on("console", lambda msg: page.console_messages.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: page.console_messages.append(f"pageerror: {exc}"))
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(TEST_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
        page.user = user
        return page

    yield sign_in
    for context in contexts:
        context.close()
    # The sign-in created its user while Playwright's loop ran: close that connection too.
    connections.close_all()


@pytest.fixture
def docs_dir() -> Path:
    DOCS.mkdir(exist_ok=True)
    return DOCS
