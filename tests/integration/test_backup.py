"""Backup and restore (docs/backup.md): back up, wipe, restore, and every record and every
history row is back as it was. The portable route (dumpdata/loaddata) runs on the test
database, SQLite or PostgreSQL; the native routes run the documented commands on a scratch
database of their own."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from monitoring import services
from monitoring.audit import log_access
from monitoring.importers import run_csv_import
from monitoring.models import AccessLog, Patient, TroughLevel

BASE_DIR = Path(__file__).resolve().parents[2]
DUMP_ARGS = ["monitoring", "auth.user", "auth.group"]
DUMP_OPTIONS = {"natural_foreign": True, "natural_primary": True}


# Django's JSON serializer writes instants to the millisecond and leaves the fraction out when it
# is zero, so a time stored as 17:55:45.000412 dumps as "17:55:45.000Z" before the restore and as
# "17:55:45Z" after it. Both name the same millisecond: compare them in one spelling.
ZERO_MILLISECONDS = re.compile(r"(T\d{2}:\d{2}:\d{2})\.000(?=Z|[+-]\d{2}:\d{2}|$)")


def canonical_instants(text: str) -> str:
    return ZERO_MILLISECONDS.sub(r"\1", text)


def dump() -> list[dict]:
    out = StringIO()
    call_command("dumpdata", *DUMP_ARGS, **DUMP_OPTIONS, stdout=out)
    records = json.loads(canonical_instants(out.getvalue()))
    return sorted(records, key=lambda o: (o["model"], json.dumps(o)))


@pytest.mark.django_db
def test_dumpdata_and_loaddata_restore_every_record_and_its_history(tmp_path, user_factory, rf):
    nurse = user_factory(groups=["data_entry"], username="nurse")
    for kind, text in (
        ("patients", "mrn,family_name,given_name,birth_date,sex\nB-1,Doe,Jane,1988-04-12,F\n"),
        (
            "regimens",
            "mrn,effective_at,formulation,frequency,daily_dose_mg\nB-1,2025-01-10T20:00,IR,BID,3\n",
        ),
        (
            "levels",
            "mrn,collected_at,last_dose_at,value,unit,accession\n"
            "B-1,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,A1\n"
            "B-1,2025-03-03T08:00,,6.22,nmol/L,\n",
        ),
        ("medications", "mrn,drug,started_on\nB-1,fluconazole,2025-01-01\n"),
        ("labs", "mrn,collected_at,test,value,unit\nB-1,2025-02-03T08:00,creatinine,0.9,mg/dL\n"),
    ):
        assert run_csv_import(kind, text.encode(), user=nurse).ok
    patient = Patient.objects.get(mrn="B-1")
    services.record_mark_in_error(
        TroughLevel.objects.get(accession="A1"), reason="wrong patient", user=nurse
    )
    request = rf.get("/")
    request.user = nurse
    log_access(request, patient, "patient")
    before = dump()
    histories = {m["model"] for m in before if m["model"].startswith("monitoring.historical")}
    assert {
        "monitoring.historicalpatient",
        "monitoring.historicaltroughlevel",
        "monitoring.historicalregimen",
        "monitoring.historicallabresult",
        "monitoring.historicalconcomitantdrug",
        "monitoring.historicaltargetassignment",
    } <= histories
    backup = tmp_path / "backup.json"
    call_command("dumpdata", *DUMP_ARGS, **DUMP_OPTIONS, output=str(backup), verbosity=0)

    if connection.vendor == "postgresql":
        # Inside the test's transaction: fire the deferred foreign-key checks first, or
        # PostgreSQL refuses to TRUNCATE tables with pending trigger events.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    call_command("flush", interactive=False, verbosity=0)  # the disaster
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # back to the default, as a fresh session has it
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    assert not Patient.objects.exists() and not TroughLevel.history.exists()
    assert not AccessLog.objects.exists()

    call_command("loaddata", str(backup), verbosity=0)

    assert dump() == before
    restored = Patient.objects.get(mrn="B-1")
    assert restored.latest_level is not None
    level = TroughLevel.objects.get(accession="A1")
    assert level.in_error and level.error_reason == "wrong patient"
    assert [h.status for h in level.history.order_by("history_date")] == [
        "final",
        "entered_in_error",
    ]
    assert level.history.latest().history_user.username == "nurse"
    assert AccessLog.objects.get().username == "nurse"
    assert restored.pk == patient.pk


# --- the native routes, on a scratch database ------------------------------------------------

MARK_IN_ERROR = (
    "from monitoring import services; from monitoring.models import TroughLevel; "
    "level = TroughLevel.objects.order_by('pk').first(); "
    "services.record_mark_in_error(level, reason='backup test')"
)


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def scratch_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="tdm_site.settings")
    return env


def snapshot(env: dict[str, str]) -> list[dict]:
    out = manage(env, "dumpdata", *DUMP_ARGS, "--natural-foreign", "--natural-primary")
    return sorted(json.loads(canonical_instants(out)), key=lambda o: (o["model"], json.dumps(o)))


def populate(env: dict[str, str]) -> list[dict]:
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "seed_demo", "--force")  # DEBUG is off under pytest
    manage(env, "shell", "-c", MARK_IN_ERROR)
    data = snapshot(env)
    assert any(o["model"] == "monitoring.historicaltroughlevel" for o in data)
    assert any(o["fields"].get("error_reason") == "backup test" for o in data)
    return data


def test_sqlite_backup_copy_restores_everything(tmp_path):
    db = tmp_path / "db.sqlite3"
    env = scratch_env(f"sqlite:///{db}")
    before = populate(env)
    copy = tmp_path / "backup.sqlite3"

    if shutil.which("sqlite3"):  # the documented command
        subprocess.run(["sqlite3", str(db), f".backup '{copy}'"], check=True, timeout=60)
    else:  # the documented fallback: the same online-backup API from Python
        source, target = sqlite3.connect(db), sqlite3.connect(copy)
        source.backup(target)
        target.close()
        source.close()
    check = sqlite3.connect(copy)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()

    db.unlink()  # the disaster
    shutil.copy(copy, db)  # the restore

    assert snapshot(env) == before


ON_POSTGRES = connection.vendor == "postgresql"
PG_TOOLS = all(shutil.which(tool) for tool in ("pg_dump", "pg_restore"))


@pytest.mark.skipif(
    not (ON_POSTGRES and PG_TOOLS), reason="needs a PostgreSQL test database and pg_dump/pg_restore"
)
def test_postgres_dump_and_restore_bring_everything_back(tmp_path):
    import psycopg

    params = connection.settings_dict
    name = f"tdm_backup_{uuid.uuid4().hex[:8]}"
    user = params.get("USER") or "postgres"
    auth = f"{user}:{params['PASSWORD']}@" if params.get("PASSWORD") else f"{user}@"
    server = f"postgresql://{auth}{params.get('HOST') or '127.0.0.1'}:{params.get('PORT') or 5432}"
    url = f"{server}/{name}"

    def admin(sql: str) -> None:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(sql)

    admin(f'CREATE DATABASE "{name}"')
    try:
        env = scratch_env(url)
        before = populate(env)
        archive = tmp_path / "tdm.dump"
        subprocess.run(["pg_dump", "-Fc", "-d", url, "-f", str(archive)], check=True, timeout=120)
        listing = subprocess.run(
            ["pg_restore", "--list", str(archive)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "monitoring_historicaltroughlevel" in listing.stdout

        admin(f'DROP DATABASE "{name}" WITH (FORCE)')  # the disaster
        admin(f'CREATE DATABASE "{name}"')
        subprocess.run(
            ["pg_restore", "--no-owner", "-d", url, str(archive)], check=True, timeout=120
        )

        assert snapshot(env) == before
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
