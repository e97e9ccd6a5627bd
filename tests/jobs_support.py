"""Real processes for the import-job tests and the bench: a database of their own (an SQLite
file or a PostgreSQL database, migrated once and copied per test), `manage.py` commands and
`manage.py db_worker` workers started as subprocesses, and the job's row read straight from
the database as another machine would (sqlite3 / psycopg, not the test's Django connection,
whose SQLite test database lives in memory where no subprocess can see it)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PG_SERVER = os.environ.get("JOBS_TEST_PG", "postgres://postgres@127.0.0.1:5432")
# The worker-process tests build their own database of the kind the suite runs on: `make test`
# covers SQLite, `make test-postgres` PostgreSQL (both in .ci/run), and neither pays for both.
SUITE_DATABASE = (
    "postgres" if os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql")) else "sqlite"
)

FINISHED = ("succeeded", "failed")

JOB_QUERY = (
    "SELECT status, rows_done, rows_total, attempts, heartbeat_at FROM monitoring_importjob "
    "WHERE id = ?"
)


def levels_files(patients: int, per_patient: int, *, prefix: str = "W") -> tuple[bytes, bytes]:
    """A patients file and a levels file of ``patients * per_patient`` troughs (every fifth
    without a last-dose time), in the contract's format (docs/samples/levels.csv)."""
    people = ["mrn,family_name,given_name,birth_date,sex,therapy_start"]
    rows = ["mrn,collected_at,last_dose_at,value,unit,assay,accession"]
    start = datetime(2023, 1, 2, 8, 0)
    for p in range(patients):
        mrn = f"{prefix}-{p:05d}"
        people.append(f"{mrn},Test{p},Pat,1980-01-01,F,2022-12-01")
        for i in range(per_patient):
            at = start + timedelta(days=3 * i, minutes=p % 50)
            dose = "" if i % 5 == 4 else (at - timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
            value = 4 + (p * 7 + i * 3) % 60 / 10
            rows.append(
                f"{mrn},{at:%Y-%m-%dT%H:%M},{dose},{value:.1f},ng/mL,LCMSMS,{prefix}{p:05d}-{i:04d}"
            )
    return ("\n".join(people) + "\n").encode(), ("\n".join(rows) + "\n").encode()


@dataclass
class Database:
    """A database for subprocesses: its URL, and a way to read the job table."""

    url: str
    kind: str  # "sqlite" | "postgres"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
        env.update(
            DATABASE_URL=self.url,
            DEBUG="1",
            PYTHONUNBUFFERED="1",
            DJANGO_SETTINGS_MODULE="tdm_site.settings",
        )
        env.pop("PYTEST_CURRENT_TEST", None)
        env.update(extra)
        return env

    @contextmanager
    def _cursor(self):
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
            try:
                yield conn.cursor()
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                yield conn.cursor()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.kind == "postgres":
            sql = sql.replace("?", "%s")
        with self._cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def job(self, pk: int) -> tuple:
        return self.query(JOB_QUERY, (pk,))[0]


def manage(db: Database, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env or db.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def migrate(db: Database) -> None:
    manage(db, "migrate", "-v0")


def make_sqlite(directory: Path, template: Path | None = None) -> Database:
    path = directory / "jobs.sqlite3"
    if template is not None:
        shutil.copyfile(template, path)
    db = Database(url=f"sqlite:///{path}", kind="sqlite")
    if template is None:
        migrate(db)
    return db


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def pg_available() -> bool:
    try:
        _pg_admin("SELECT 1")
    except Exception:
        return False
    return True


def make_postgres(name: str, template: str | None = None) -> Database:
    """A fresh PostgreSQL database ``name`` (dropped first if left over), copied from
    ``template`` or migrated."""
    drop_postgres(name)
    _pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    db = Database(url=f"{PG_SERVER}/{name}", kind="postgres")
    if template is None:
        migrate(db)
    return db


def drop_postgres(name: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SETUP = """
import os
import sys
import django
django.setup()
from django.contrib.auth.models import Group, User
from monitoring.importers import run_csv_import
from monitoring.jobs import import_job_create
user, _ = User.objects.get_or_create(username="worker-test")
user.groups.add(Group.objects.get(name="data_entry"))
if os.environ.get("JOB_TEST_PASSWORD"):
    user.set_password(os.environ["JOB_TEST_PASSWORD"])
    user.save()
patients, levels = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
if patients:
    report = run_csv_import("patients", patients)
    assert report.ok, report.problems[:3]
if levels:
    job = import_job_create(kind="levels", name="levels.csv", data=levels, user=user)
    print(job.pk)
"""


def queue_import(
    db: Database, tmp: Path, patients: bytes, levels: bytes, password: str = ""
) -> int | None:
    """Store the patients (at once) and queue the levels file as an import job, as the
    confirm view does, in a subprocess on ``db``; the job's id (None without levels). The
    user is ``worker-test`` (data_entry), with ``password`` when given."""
    (tmp / "patients.csv").write_bytes(patients)
    (tmp / "levels.csv").write_bytes(levels)
    out = subprocess.run(
        [PYTHON, "-c", SETUP, str(tmp / "patients.csv"), str(tmp / "levels.csv")],
        cwd=ROOT,
        env=db.env(JOB_TEST_PASSWORD=password),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    return int(lines[-1]) if lines else None


class Worker:
    """`manage.py db_worker` in its own process group (SIGKILL reaches nothing else)."""

    def __init__(self, db: Database, log: Path, **env: str):
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "manage.py",
                "db_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval",
                "0.2",
            ],
            cwd=ROOT,
            env=db.env(**env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class Server:
    """`manage.py runserver` (DEBUG, no reloader) on 127.0.0.1:``port``."""

    def __init__(self, db: Database, port: int, log: Path, **env: str):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=db.env(**env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._up, timeout=60, interval=0.2, what=f"runserver on {self.url}")

    def _up(self) -> bool:
        import urllib.request

        if self.proc.poll() is not None:
            raise AssertionError(f"runserver exited: see {self.log.name}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):  # noqa: S310
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@contextmanager
def worker(db: Database, log: Path, **env: str) -> Iterator[Worker]:
    w = Worker(db, log, **env)
    try:
        yield w
    finally:
        w.stop()


def wait_for(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_job(
    db: Database, job: int, statuses: tuple[str, ...], *, timeout: float, what: str
) -> None:
    """Wait until the job's status, read as another connection sees it, is one of
    ``statuses``."""
    wait_for(lambda: db.job(job)[0] in statuses, timeout=timeout, what=what)


def run_job_to_end(
    db: Database, job: int, log: Path, *, timeout: float, what: str, **env: str
) -> None:
    """Start a worker on ``db`` (``env`` added to its settings), wait until the job has
    succeeded or failed, and stop the worker."""
    with worker(db, log, **env):
        wait_job(db, job, FINISHED, timeout=timeout, what=what)
