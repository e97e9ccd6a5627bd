"""Several processes on one SQLite file (``make run``'s web server and worker): the settings
put the file in WAL mode, so a page reads while an import's transaction is open; and a
transaction that meets another's waits for it (the busy timeout, and the write lock taken
at BEGIN) instead of answering "database is locked", which users saw as 503 pages.

Run in a fresh interpreter with the settings a production process loads, on a file of its
own: pytest's own SQLite test database lives in memory, with other options."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.jobs_support import PYTHON, ROOT, Database

# Another connection (an import's) holds the write lock with a row written and not yet
# committed, for HOLD seconds; meanwhile this process reads, then runs a transaction that
# reads and writes, as a page that logs its access does.
SCRIPT = r"""
import json, sqlite3, sys, threading, time
import django
django.setup()
from django.db import connection, transaction

HOLD = 1.0
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    mode = cursor.fetchone()[0]
    cursor.execute("CREATE TABLE probe (n integer)")

other = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None, check_same_thread=False)
other.execute("BEGIN IMMEDIATE")
other.execute("INSERT INTO probe VALUES (1)")
threading.Timer(HOLD, lambda: other.execute("COMMIT")).start()

started = time.monotonic()
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM probe")
    read = cursor.fetchone()[0]
read_seconds = time.monotonic() - started

started = time.monotonic()
outcome = {}
try:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM probe")
            outcome["seen_in_transaction"] = cursor.fetchone()[0]
            cursor.execute("INSERT INTO probe VALUES (2)")
    outcome["written"] = True
except Exception as exc:
    outcome["error"] = str(exc)
outcome["write_seconds"] = time.monotonic() - started
time.sleep(HOLD)  # the timer has committed by now in every case
print(json.dumps({"mode": mode, "read": read, "read_seconds": read_seconds, **outcome}))
"""


def shared_file_run(tmp_path: Path, **env: str) -> dict:
    path = tmp_path / "shared.sqlite3"
    result = subprocess.run(
        [PYTHON, "-c", SCRIPT, str(path)],
        cwd=ROOT,
        env=Database(url=f"sqlite:///{path}", kind="sqlite").env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_page_reads_and_then_writes_while_another_process_holds_the_write_lock(tmp_path):
    run = shared_file_run(tmp_path)

    assert run["mode"] == "wal"
    # The read does not wait for the other transaction and sees none of its row.
    assert run["read"] == 0
    assert run["read_seconds"] < 0.5
    # The transaction waited for the other's commit at BEGIN, then saw its row and wrote.
    assert run.get("error") is None
    assert run["written"] is True
    assert run["seen_in_transaction"] == 1
    assert run["write_seconds"] >= 0.5


def test_without_the_busy_timeout_the_same_transaction_is_refused(tmp_path):
    """The contrast: what users met before (a 503 page), with the wait cut to 0.1 s."""
    run = shared_file_run(tmp_path, SQLITE_BUSY_TIMEOUT="0.1")

    assert "database is locked" in run["error"]
    assert "written" not in run


@pytest.fixture(autouse=True)
def _sqlite_only():
    if os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql")):
        pytest.skip("the SQLite file's sharing: run by `make test`, on SQLite")
