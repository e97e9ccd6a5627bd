"""Two real ``manage.py db_worker`` processes race for the daily re-judge, on a SQLite file
and on PostgreSQL: the day is run once, by one of them, and the stale summary is re-judged.

The processes run with production settings (DEBUG off, no reloader) on a database of their
own, migrated here: pytest's own test database is invisible to other processes."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.jobs_support import SUITE_DATABASE

ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
PG_NAME = "tdm_schedule_workers"

pytestmark = pytest.mark.worker

SETUP = """
from datetime import date, timedelta
from django.utils import timezone
from monitoring.models import Patient
today = timezone.localdate()
p = Patient.objects.create(mrn="STALE-1", family_name="Stale", given_name="Summary",
    birth_date=date(1990, 5, 1), sex="F", therapy_start=today - timedelta(days=400))
Patient.objects.filter(pk=p.pk).update(assessed_on=today - timedelta(days=1),
    alert_codes="stale_code")
"""


def process_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}  # not a test run
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        TIME_ZONE="UTC",
        DAILY_REFRESH_TIME="00:00",
        WORKER_DUTY_INTERVAL="0.5",
        LOG_LEVEL="DEBUG",
        PK_FORECASTS="0",
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


@pytest.fixture(params=[SUITE_DATABASE])
def database(request, tmp_path):
    """(DATABASE_URL, query function) of a fresh, migrated database."""
    if request.param == "sqlite":
        path = tmp_path / "workers.sqlite3"

        def query(sql: str) -> list[tuple]:
            with sqlite3.connect(path, timeout=20) as conn:
                return conn.execute(sql).fetchall()

        yield f"sqlite:///{path}", query
        return

    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    admin.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {PG_NAME}")

    def query(sql: str) -> list[tuple]:
        with psycopg.connect(f"{PG_SERVER}/{PG_NAME}") as conn:
            return conn.execute(sql).fetchall()

    try:
        yield f"{PG_SERVER}/{PG_NAME}", query
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
        admin.close()


def test_two_workers_run_the_day_once(database, tmp_path):
    url, query = database
    env = process_env(url)
    manage(env, "migrate", "--no-input")
    manage(env, "shell", "-c", SETUP)
    assert query("SELECT alert_codes FROM monitoring_patient") == [("stale_code",)]

    logs = {name: tmp_path / f"{name}.log" for name in ("w1", "w2")}
    workers = []
    for name, log in logs.items():
        with log.open("wb") as out:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "db_worker", "--worker-id", name],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        deadline = time.monotonic() + 120
        while not query("SELECT 1 FROM monitoring_dailyrun WHERE finished_at IS NOT NULL"):
            assert time.monotonic() < deadline, {n: p.read_text() for n, p in logs.items()}
            assert all(w.poll() is None for w in workers), "a worker died"
            time.sleep(0.3)
        # Both workers must have looked at the day (its row is there) more than once.
        deadline = time.monotonic() + 60
        while not all(log.read_text().count("nothing to do") >= 2 for log in logs.values()):
            assert time.monotonic() < deadline, {n: p.read_text() for n, p in logs.items()}
            time.sleep(0.3)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)

    today = datetime.now(UTC).date()
    runs = query("SELECT day, worker_id, attempts, finished_at, error FROM monitoring_dailyrun")
    assert len(runs) == 1, runs
    day, worker_id, attempts, finished_at, error = runs[0]
    assert str(day) == str(today)
    assert worker_id in logs and attempts == 1 and finished_at is not None and error == ""
    # The work was done by exactly one process, the one the row names.
    started = {
        n: p.read_text().count(f"Daily re-judge of {today}: started") for n, p in logs.items()
    }
    assert started == {n: int(n == worker_id) for n in logs}, started
    ((codes, assessed_on),) = query("SELECT alert_codes, assessed_on FROM monitoring_patient")
    assert codes != "stale_code"
    assert str(assessed_on) == str(today)


def test_a_worker_refuses_to_start_with_a_bad_refresh_time(tmp_path):
    env = process_env(f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    env["DAILY_REFRESH_TIME"] = "25:00"

    result = subprocess.run(
        [sys.executable, "manage.py", "db_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "DAILY_REFRESH_TIME='25:00' is not a clock time" in result.stderr
