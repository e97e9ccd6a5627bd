"""In a real browser, with a real web server and a real worker: a data-entry user uploads a
20,000-row levels file, confirms, watches the job page's progress bar advance and sees the
result with its links.

Not pytest-django's live server: its SQLite test database lives in memory, shared by
threads of this process only, and the import must run in a worker process as in
production. So this test has its own SQLite file (migrated once), `manage.py runserver` and
`manage.py db_worker` subprocesses on it (tests/jobs_support.py), on port JOB_TEST_PORT
(default 18150)."""

from __future__ import annotations

import os
import time

import pytest

from tests.browser.test_accessibility import blocking_violations
from tests.conftest import TEST_PASSWORD
from tests.jobs_support import Server, levels_files, make_sqlite, queue_import, worker

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PATIENTS, EACH = 400, 50  # 20,000 troughs
PORT = int(os.environ.get("JOB_TEST_PORT", "18150"))


@pytest.fixture
def site(tmp_path_factory, tmp_path):
    template = make_sqlite(tmp_path_factory.mktemp("browser-jobs-template"))
    db = make_sqlite(tmp_path, template.url.removeprefix("sqlite:///"))
    patients, levels = levels_files(PATIENTS, EACH, prefix="B")
    queue_import(db, tmp_path, patients, b"", password=TEST_PASSWORD)
    # The page polls every 150 ms here (1 s by default): judging 20,000 rows takes only a
    # second or two on a quiet machine, and the test must see the bar between 0 and the end.
    server = Server(db, PORT, tmp_path / "server.log", IMPORT_JOB_POLL_MS="150")
    try:
        with worker(db, tmp_path / "worker.log"):
            yield server, levels
    finally:
        server.stop()


def test_a_big_import_shows_its_progress_then_the_result(browser, site):
    server, levels = site
    total = PATIENTS * EACH
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)  # the 20,000-row preview is judged in the request
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("worker-test")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/imports/")
    page.get_by_role("radio", name="Tacrolimus trough levels").check()
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "big levels.csv", "mimeType": "text/csv", "buffer": levels}]
    )
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("button", name="Confirm import").click()
    page.wait_for_url("**/imports/jobs/*/")
    assert page.get_by_role("heading", name="Import of big levels.csv").is_visible()
    # Polling must leave the keyboard focus where the user put it.
    page.get_by_role("link", name="Import", exact=True).first.focus()

    state = page.locator("#job-state")
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = state.get_attribute("data-status")
        seen.append((status, int(state.get_attribute("data-rows-done"))))
        if status in ("succeeded", "failed"):
            break
        time.sleep(0.05)

    assert seen[-1] == ("succeeded", total), seen[-5:]
    done = [d for _, d in seen]
    assert done == sorted(done), "the progress went back"
    assert state.get_attribute("data-rows-total") == str(total)
    assert state.get_attribute("data-attempts") == "1"
    assert page.evaluate("document.activeElement.textContent.trim()") == "Import"
    progress = page.locator("progress#job-progress")
    assert progress.get_attribute("value") == str(total)
    assert page.get_by_text(f"{total} of {total} rows").is_visible()
    assert page.get_by_text("Finished: imported").is_visible()
    assert not blocking_violations(page)

    # The result: counts, the patients, the results with unknown timing (every fifth).
    assert page.locator("#job-result").get_by_text(str(total), exact=True).is_visible()
    assert page.locator("#job-patients a").count() == 100
    assert page.get_by_text(f"and {PATIENTS - 100} more.").is_visible()
    assert page.get_by_text(f"New trough results with unknown timing ({total // 5})").is_visible()
    first = page.locator("#job-unknown-timing a").first
    href = first.get_attribute("href")
    first.click()
    page.wait_for_load_state()
    assert page.url.endswith(href)
    assert page.locator(f"#{href.split('#')[1]}").is_visible()

    assert not [m for m in console if "Content Security Policy" in m or "pageerror" in m]
    # Last, as it depends on the import: the bar moved while the job ran. The levels import
    # must commit its progress outside its write transaction for this (it judges the rows
    # before that transaction begins).
    during = sorted({d for s, d in seen if s == "running" and 0 < d < total})
    assert during, f"no progress seen before the end: {sorted(set(seen))}"
    context.close()
