"""DATABASE_POOL, DATABASE_POOL_SIZE and DATABASE_PGBOUNCER (tdm_site/settings.py): the
settings are loaded in a fresh interpreter with only the environment given here, as a
production process loads them, and the resulting DATABASES entry is read back as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgres://tdm:secret@db.example.org:5432/tdm"
PRINT_DATABASE = (
    "import json, tdm_site.settings as s; print(json.dumps(s.DATABASES['default'], default=str))"
)
# Every variable the block reads, removed from the inherited environment so that a developer's
# own DATABASE_URL or DATABASE_POOL cannot change the outcome.
OURS = {"DATABASE_URL", "DATABASE_POOL", "DATABASE_POOL_SIZE", "DATABASE_PGBOUNCER"}


def load(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in OURS | {"PYTEST_VERSION", "DEBUG"}}
    base.update(
        SECRET_KEY="k7Qp-2vXz9Lr_Tq8mWc4Ny6Hb1Js3Df5Gh0Kl7Zx2Cv9Bn4Mq8Wr-test-only",
        ALLOWED_HOSTS="tdm.example.org",
        DJANGO_SETTINGS_MODULE="tdm_site.settings",
    )
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", PRINT_DATABASE],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def database(**env: str) -> dict:
    result = load(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(**env: str) -> str:
    result = load(**env)
    assert result.returncode != 0, f"settings loaded: {result.stdout}"
    assert "ImproperlyConfigured" in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_postgres_without_either_switch_keeps_persistent_connections_and_no_pool():
    db = database(DATABASE_URL=PG_URL)

    assert db["CONN_MAX_AGE"] == 60
    assert "pool" not in db.get("OPTIONS", {})
    assert not db.get("DISABLE_SERVER_SIDE_CURSORS")


def test_database_pool_uses_djangos_pool_with_the_default_size_and_no_persistent_connection():
    db = database(DATABASE_URL=PG_URL, DATABASE_POOL="1")

    assert db["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 4, "timeout": 10}
    # Django refuses a pool together with persistent connections.
    assert db["CONN_MAX_AGE"] == 0
    assert db["ENGINE"] == "django.db.backends.postgresql"


def test_database_pool_size_sets_the_largest_pool():
    db = database(DATABASE_URL=PG_URL, DATABASE_POOL="yes", DATABASE_POOL_SIZE="12")

    assert db["OPTIONS"]["pool"]["max_size"] == 12


def test_pgbouncer_mode_turns_server_side_cursors_and_persistent_connections_off():
    db = database(DATABASE_URL=PG_URL, DATABASE_PGBOUNCER="1")

    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert db["CONN_MAX_AGE"] == 0
    assert "pool" not in db.get("OPTIONS", {})


def test_pool_and_pgbouncer_together_are_refused_naming_both():
    message = refusal(DATABASE_URL=PG_URL, DATABASE_POOL="1", DATABASE_PGBOUNCER="1")

    assert "DATABASE_POOL=1" in message
    assert "DATABASE_PGBOUNCER=1" in message


@pytest.mark.parametrize("switch", ["DATABASE_POOL", "DATABASE_PGBOUNCER"])
def test_the_switches_are_refused_on_sqlite(switch):
    message = refusal(DATABASE_URL="sqlite:////tmp/tdm-settings-test.sqlite3", **{switch: "1"})

    assert switch in message
    assert "PostgreSQL" in message
    assert "sqlite://" in message


def test_a_pool_size_without_the_pool_is_refused():
    message = refusal(DATABASE_URL=PG_URL, DATABASE_POOL_SIZE="8")

    assert "DATABASE_POOL_SIZE" in message
    assert "DATABASE_POOL is off" in message


@pytest.mark.parametrize(
    ("size", "expected"),
    [("0", "DATABASE_POOL_SIZE=0 must be 1 or more"), ("many", "DATABASE_POOL_SIZE='many'")],
)
def test_a_bad_pool_size_is_refused_naming_the_value(size, expected):
    message = refusal(DATABASE_URL=PG_URL, DATABASE_POOL="1", DATABASE_POOL_SIZE=size)

    assert expected in message


def test_a_bad_switch_value_is_refused_naming_it():
    message = refusal(DATABASE_URL=PG_URL, DATABASE_PGBOUNCER="maybe")

    assert "DATABASE_PGBOUNCER='maybe'" in message


def test_sessions_live_in_the_database_so_every_node_sees_them():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tdm_site.settings as s; "
            "print(getattr(s, 'SESSION_ENGINE', 'django.contrib.sessions.backends.db'))",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tdm_site.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout.strip() == "django.contrib.sessions.backends.db"
