"""Import confirm → first progress visible: how long a user looks at an empty progress bar.

    python -m bench.jobs [--databases sqlite,postgres] [--rows 20000]

Per database, in a process of its own (``--worker``, DATABASE_URL set as in production):
a fresh database (SQLite file /tmp/tdm_bench/jobs.sqlite3, or PostgreSQL ``tdm_bench_jobs``
on the server of BENCH_POSTGRES_URL), migrated; ``--rows`` / 50 patients; a real
``manage.py db_worker`` subprocess (default 1 s queue interval, as deployed), started and
idle. Then, in process with the Django test client as a data-entry user: the levels file
(``--rows`` new troughs, every fifth without a last-dose time) is previewed, and the
confirm POST is timed from its start until another read of the job's row shows
``rows_done > 0`` (polled every 10 ms), then until the job has finished. The confirm
response time is the part the user waits in the request itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import POSTGRES_URL, WORK, _fresh_database, log  # noqa: E402

PG_URL = POSTGRES_URL.rsplit("/", 1)[0] + "/tdm_bench_jobs"


def _url(database: str) -> str:
    return f"sqlite:///{WORK / 'jobs.sqlite3'}" if database == "sqlite" else PG_URL


def worker(database: str, rows: int, result_path: Path) -> int:
    """One database: set up, measure, write the result as JSON."""
    url = os.environ["DATABASE_URL"]
    _fresh_database(database, url)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client

    from monitoring.importers import run_csv_import
    from monitoring.models import ImportJob
    from tests.jobs_support import levels_files

    call_command("migrate", verbosity=0)
    patients, levels = levels_files(max(1, rows // 50), 50 if rows >= 50 else rows, prefix="J")
    assert run_csv_import("patients", patients).ok
    user = User.objects.create_user("bench-jobs")
    user.groups.add(Group.objects.get(name="data_entry"))
    client = Client()
    client.force_login(user)
    worker_log = (WORK / f"jobs-worker-{database}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3)  # started and idle, as a deployed worker is
        preview = client.post(
            "/imports/",
            {"kind": "levels", "file": SimpleUploadedFile("levels.csv", levels)},
        )
        # No test environment here, so no response.context: the token from the page.
        token = re.search(r'name="token" value="([^"]+)"', preview.content.decode()).group(1)
        started = time.perf_counter()
        response = client.post("/imports/confirm/", {"token": token})
        confirm_s = time.perf_counter() - started
        assert response.status_code == 302, response.status_code
        job = ImportJob.objects.get()
        first = finished = None
        while time.perf_counter() - started < 600:
            status, done = ImportJob.objects.filter(pk=job.pk).values_list("status", "rows_done")[0]
            now = time.perf_counter() - started
            if first is None and done > 0:
                first = now
            if status in ("succeeded", "failed"):
                finished = now
                break
            time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        worker_log.close()
    result = {
        "database": database,
        "rows": rows,
        "confirm_s": confirm_s,
        "first_progress_s": first,
        "finished_s": finished,
        "status": status,
        "first_before_end": first is not None and finished is not None and first < finished,
    }
    result_path.write_text(json.dumps(result))
    return 0


def measure(databases: list[str], rows: int) -> list[dict]:
    results = []
    WORK.mkdir(parents=True, exist_ok=True)
    for database in databases:
        path = WORK / f"jobs-{database}.json"
        path.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
        env.update(
            DATABASE_URL=_url(database),
            DJANGO_SETTINGS_MODULE="tdm_site.settings",
            DEBUG="1",
            ALLOWED_HOSTS="testserver,localhost",
            LOG_LEVEL="ERROR",
            PYTHONPATH=str(ROOT),
        )
        log(f"[jobs {database}] import confirm → first progress, {rows:,} rows")
        command = [sys.executable, "-m", "bench.jobs", "--worker", database, "--rows", str(rows)]
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=1800, check=False)
        if done.returncode == 0 and path.exists():
            results.append(json.loads(path.read_text()))
            log(f"[jobs {database}] {results[-1]}")
        else:
            log(f"[jobs {database}] failed (exit {done.returncode})")
    return results


def render(results: list[dict]) -> list[str]:
    lines = [
        "## Import jobs: confirm → first progress visible",
        "",
        "`python -m bench.jobs` (bench/jobs.py): a levels file confirmed on the import page "
        "with a real `db_worker` idle beside it (1 s queue interval); seconds from the start "
        "of the confirm POST until another read of the job sees `rows_done > 0`, and until "
        "the job has finished.",
        "",
        "| Database | Rows | Confirm response | First progress visible | Finished |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        first = "—" if r["first_progress_s"] is None else f"{r['first_progress_s']:.1f} s"
        if r["first_progress_s"] is not None and not r["first_before_end"]:
            first += " (at the end)"
        finished = "—" if r["finished_s"] is None else f"{r['finished_s']:.1f} s"
        lines.append(
            f"| {r['database']} | {r['rows']:,} | {r['confirm_s'] * 1000:.0f} ms | {first} | "
            f"{finished} ({r['status']}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.rows, WORK / f"jobs-{args.worker}.json")
    results = measure([d.strip() for d in args.databases.split(",") if d.strip()], args.rows)
    print("\n".join(render(results)))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
