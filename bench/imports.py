"""Levels import throughput on its own: a 100,000-row file into a database of 5,000
synthetic patients, on SQLite and PostgreSQL, without the rest of ``bench.run``.

    python -m bench.imports [--databases sqlite,postgres] [--patients 5000] [--rows 100000]
                            [--preview-rows 200000] [--as-user] [--profile]

The seeded database is built once (``seed_synthetic --years 6``, ~2 minutes at 5,000
patients) and kept as a template: an SQLite file under BENCH_WORKDIR (default
/tmp/tdm_bench), a PostgreSQL database ``<name>_seed`` next to BENCH_IMPORT_POSTGRES_URL
(default ``postgres://postgres@127.0.0.1:5432/tdm_bench_import``). Each measurement starts
from a fresh copy of it (file copy; ``CREATE DATABASE ... TEMPLATE``) brought to the current
schema (``migrate``), runs ``ANALYZE``, then times ``run_csv_import("levels", data)`` --
validation, the write and the flags and summaries of the touched patients
(``patients_reassess``), as the web upload and ``import_csv`` run it -- and a dry run (the
web preview) of a ``--preview-rows`` file. ``--as-user``: the import names its user, as the
web upload's job does (``import_csv`` names none): each new trough and history row then
points at the user too, two more foreign keys for the server to check at COMMIT.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.run import ROOT, WORK, YEARS, _import_file, bench_env, log

POSTGRES_URL = os.environ.get(
    "BENCH_IMPORT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/tdm_bench_import"
)
SEED = 7


def _urls(database: str, patients: int) -> tuple[str, str]:
    """(template URL, measured URL)."""
    if database == "sqlite":
        return (
            f"sqlite:///{WORK / f'import-seed-{patients}.sqlite3'}",
            f"sqlite:///{WORK / f'import-run-{patients}.sqlite3'}",
        )
    base, name = POSTGRES_URL.rsplit("/", 1)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"refusing database name {name!r}")
    return f"{base}/{name}_seed_{patients}", f"{base}/{name}"


def _admin(url: str):
    import psycopg

    return psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)


def _exists(url: str) -> bool:
    if url.startswith("sqlite:"):
        return Path(url.removeprefix("sqlite:///")).exists()
    with _admin(url) as conn:
        name = url.rsplit("/", 1)[1]
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone())


def _copy(template: str, target: str) -> None:
    if template.startswith("sqlite:"):
        src, dst = (Path(u.removeprefix("sqlite:///")) for u in (template, target))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{dst}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(src, dst)
        return
    source, name = template.rsplit("/", 1)[1], target.rsplit("/", 1)[1]
    with _admin(target) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {source}")


def _seed(database: str, template: str, patients: int) -> None:
    if template.startswith("sqlite:"):
        path = Path(template.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        name = template.rsplit("/", 1)[1]
        with _admin(template) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    log(f"[{database}] seeding {patients} patients into the template (once)")
    manage = [sys.executable, "manage.py"]
    env = bench_env(template)
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [*manage, "seed_synthetic", f"--patients={patients}", f"--years={YEARS:g}"]
        + [f"--seed={SEED}", "--force"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    if template.startswith("sqlite:"):
        # One file to copy: fold the WAL back in.
        import sqlite3

        with sqlite3.connect(template.removeprefix("sqlite:///")) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")


def measure(
    database: str, patients: int, rows: int, preview_rows: int, profile: bool, as_user: bool
) -> dict:
    template, url = _urls(database, patients)
    if not _exists(template):
        _seed(database, template, patients)
    _copy(template, url)
    # The template is kept between runs: bring its copy to the current schema (nothing to
    # do, a second or two, unless a migration came since it was seeded).
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=bench_env(url), check=True
    )
    result_path = WORK / f"import-result-{database}.json"
    result_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "bench.imports",
        "--worker",
        f"--rows={rows}",
        f"--preview-rows={preview_rows}",
        f"--result={result_path}",
    ]
    if profile:
        command.append("--profile")
    if as_user:
        command.append("--as-user")
    subprocess.run(command, cwd=ROOT, env=bench_env(url), check=True)
    result = json.loads(result_path.read_text())
    result["database"] = database
    result["patients"] = patients
    result["as_user"] = as_user
    return result


def worker(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from bench.run import import_result, timed_levels_import
    from monitoring.importers import runner
    from monitoring.models import Patient, TroughLevel

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    today = timezone.localdate()
    mrns = list(
        Patient.objects.filter(mrn__startswith="SYN-").order_by("mrn").values_list("mrn", flat=True)
    )
    result: dict = {"load": [os.getloadavg()[0]], "stored_levels": TroughLevel.objects.count()}
    if args.preview_rows:
        data = _import_file(args.preview_rows, mrns, today)
        started = time.perf_counter()
        report = runner.run_csv_import("levels", data, dry_run=True)
        seconds = time.perf_counter() - started
        result["preview"] = {
            "rows": args.preview_rows,
            "bytes": len(data),
            "seconds": seconds,
            "ok": report.ok,
            "summary": report.summary(),
        }
        log(f"  preview of {args.preview_rows} rows ({len(data) / 1e6:.1f} MB): {seconds:.1f} s")
    data = _import_file(args.rows, mrns, today)
    user = None
    if args.as_user:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench-importer")
    report, seconds, flag_seconds = timed_levels_import(
        data, args.profile, f"import-{connection.vendor}", user
    )
    flagged = TroughLevel.objects.filter(accession__startswith="IMP-").exclude(range_flag="")
    result["import"] = {
        **import_result(report, args.rows, seconds, flag_seconds),
        "flagged": flagged.count(),
    }
    result["load"].append(os.getloadavg()[0])
    log(
        f"  import {args.rows} rows: {report.summary()}: {seconds:.1f} s = "
        f"{args.rows / seconds:,.0f} levels/s (re-judge {flag_seconds:.1f} s; "
        f"{result['import']['flagged']} flagged)"
    )
    Path(args.result).write_text(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--preview-rows", type=int, default=200_000)
    parser.add_argument("--as-user", action="store_true", help="name a user, as the web job does")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    WORK.mkdir(parents=True, exist_ok=True)
    results = []
    for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
        log(f"[{database}] {args.patients} patients, {args.rows} rows")
        results.append(
            measure(
                database, args.patients, args.rows, args.preview_rows, args.profile, args.as_user
            )
        )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
