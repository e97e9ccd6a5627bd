"""Benchmarks of the performance budget: pages, flag computation, import and export, on SQLite
and PostgreSQL.

    python -m bench.run [--sizes 50,500,5000] [--databases sqlite,postgres] [--quick]
    make bench          # everything, writes docs/performance.md
    make bench-quick    # 50 and 500 patients on SQLite, prints the table only

For each database and size a worker subprocess (``--worker``, its own DATABASE_URL, so the
settings pick the database up exactly as in production) does this:

1. a fresh database: an SQLite file under /tmp/tdm_bench, or the PostgreSQL database
   ``tdm_bench`` on 127.0.0.1:5432 as user postgres (dropped and created; override the
   server with BENCH_POSTGRES_URL); ``migrate``;
2. ``seed_synthetic --patients N --years 6`` (about 60 troughs each), plus one patient with
   10 years of weekly troughs (about 500, MRN ``SYNL-000001``) for the patient page;
   ``ANALYZE`` (planner statistics, as autovacuum keeps them in production);
3. with the Django test client, in process, logged in as a superuser: each page requested
   twice to warm up, then ``--reps`` times (median and 95th percentile of the wall time of
   ``client.get``: middleware, view, queries and template, no network), then once more
   under ``CaptureQueriesContext`` for the query count; the patient page's ``json_script``
   blocks are measured (the figure JSON);
4. flag computation: ``services.patients_reassess`` on up to 500 patients whose stored
   flags were blanked (a full re-judge, as after a threshold change);
5. import: a levels CSV (new accessions, spread over the synthetic patients) through
   ``run_csv_import("levels", data)``, the web upload's path, including the flag
   computation that follows it (the touched patients' flags and summaries are part of the
   timed call): ``--import-rows`` (100,000) rows at the largest size on both databases,
   ``--import-rows-other`` (5,000) elsewhere; ``python -m bench.imports`` measures the
   import alone (and the preview of a 200,000-row file) without the rest;
6. export of every level (``exports.csv_lines("levels", today)``) streamed to a file, once
   timed and once under tracemalloc for the peak of Python allocations (skipped on SQLite's
   largest run when PostgreSQL is measured too: tracemalloc makes it five times slower).

The parent prints a Markdown table and (except with ``--quick``) writes docs/performance.md
with the machine, the targets and a verdict per target. Text after the line
``<!-- bench:end -->`` in that file is kept (hand-written analysis).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import pk as pk_bench

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("BENCH_WORKDIR") or Path(tempfile.gettempdir()) / "tdm_bench")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/tdm_bench")
END_MARKER = "<!-- bench:end -->"
YEARS = 6.0
LONG_PREFIX = "SYNL-"
PAGES = [
    # key, label
    ("floor", "Bare view (floor)"),
    ("worklist", "Worklist, first page"),
    ("worklist_alert", "Worklist, `?alert=trough_below_range`"),
    ("worklist_search", "Worklist, search `?q=SYN-0001`"),
    ("patient", "Patient page (~60 levels)"),
    ("patient_long", "Patient page, 10 years"),
    ("report", "Report"),
]
REFIT_PATIENTS = 50  # forecasts refitted in the bench (patients per second)
# The forecast check runs at this size only: it fits every trough of every patient from the
# earlier ones, and with six years of history 500 patients took over 20 minutes per database.
FORECAST_CHECK_SIZE = 50

TARGETS = {
    "worklist_ms": 150.0,
    "worklist_ratio": 1.5,
    "patient_ms": 100.0,
    "figure_kb": 150.0,
    "queries": 12,
    # Levels import, flags included, 100,000 rows at the largest size.
    "import_per_s": {"postgres": 10_000.0, "sqlite": 5_000.0},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- worker: one database, one size ---------------------------------------------------------


def _database_url(database: str, size: int) -> str:
    if database == "sqlite":
        return f"sqlite:///{WORK / f'bench-{size}.sqlite3'}"
    if database == "postgres":
        return POSTGRES_URL
    raise SystemExit(f"unknown database {database!r} (sqlite or postgres)")


def bench_env(url: str) -> dict[str, str]:
    """The environment of a measuring subprocess: production settings (DEBUG off) on the
    database at ``url``, without the TLS redirect, secure cookies and static manifest that
    need a proxy or ``collectstatic``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="tdm_site.settings",
        DEBUG="0",
        SECRET_KEY="bench-only-" + "x" * 50,
        ALLOWED_HOSTS="testserver,localhost",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
        STATIC_MANIFEST="0",
        LOG_LEVEL="ERROR",
        PYTHONPATH=str(ROOT),
    )
    return env


def _fresh_database(database: str, url: str) -> None:
    if database == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"refusing database name {name!r}")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the 95th of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


_JSON_SCRIPT = re.compile(r'<script id="([^"]+)" type="application/json">(.*?)</script>', re.DOTALL)


def _measure_page(client, url: str, reps: int, warmup: int = 2) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    status = None
    for _ in range(warmup):
        status = client.get(url).status_code
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    body = response.content
    scripts = {
        m.group(1): len(m.group(2).encode())
        for m in _JSON_SCRIPT.finditer(body.decode("utf-8", "replace"))
    }
    return {
        "url": url,
        "status": status,
        "median_ms": statistics.median(times),
        "p95_ms": _percentile(times, 0.95),
        "min_ms": min(times),
        "queries": len(queries.captured_queries),
        "bytes": len(body),
        "json_scripts": scripts,
    }


def _measure_batch(client, url: str, reps: int) -> dict:
    """The batch print of a worklist page (50 reports), streamed: seconds to the first
    chunk of the body (head, toolbar, page-margin rules), to the first report, and to the
    end. A response that is not streamed has its whole body at once (first byte = total)."""
    marker = b'class="report report--'
    rows = []
    for rep in range(reps + 1):  # the first is a warm-up
        started = time.perf_counter()
        response = client.get(url)
        first = first_report = None
        size = reports = 0
        chunks = response.streaming_content if response.streaming else [response.content]
        for chunk in chunks:
            now = time.perf_counter() - started
            first = now if first is None else first
            if first_report is None and marker in chunk:
                first_report = now
            size += len(chunk)
            reports += chunk.count(marker)
        total = time.perf_counter() - started
        if rep:
            rows.append((first, first_report or total, total))
    return {
        "url": url,
        "status": response.status_code,
        "streaming": response.streaming,
        "reports": reports,
        "bytes": size,
        "first_byte_s": statistics.median(r[0] for r in rows),
        "first_report_s": statistics.median(r[1] for r in rows),
        "total_s": statistics.median(r[2] for r in rows),
    }


def _profiled(enabled: bool, name: str, func, *args, **kwargs):
    if not enabled:
        return func(*args, **kwargs)
    import cProfile
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(func, *args, **kwargs)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(30)
    path = WORK / f"profile-{name}.txt"
    path.write_text(out.getvalue())
    log(f"    profile written to {path}")
    return result


def timed_levels_import(
    data: bytes, profile: bool, name: str, user=None
) -> tuple[object, float, float]:
    """Run ``run_csv_import("levels", data)`` as ``import_csv`` does (no user), or as the
    upload's job does when given its ``user``, profiled as ``name`` when ``profile``; return
    (report, seconds, seconds spent in ``patients_reassess``), the flag computation timed
    on its own. Needs Django set up."""
    from monitoring.importers import runner

    reassess_seconds: list[float] = []
    original = runner.patients_reassess

    def timed_reassess(patients, **options):
        began = time.perf_counter()
        try:
            return original(patients, **options)
        finally:
            reassess_seconds.append(time.perf_counter() - began)

    runner.patients_reassess = timed_reassess
    try:
        started = time.perf_counter()
        report = _profiled(profile, name, runner.run_csv_import, "levels", data, user=user)
        seconds = time.perf_counter() - started
    finally:
        runner.patients_reassess = original
    return report, seconds, sum(reassess_seconds)


def import_result(report, rows: int, seconds: float, flag_seconds: float) -> dict:
    """What the benches record of a timed levels import (``timed_levels_import``)."""
    return {
        "rows": rows,
        "seconds": seconds,
        "levels_per_s": rows / seconds,
        "ok": report.ok,
        "summary": report.summary(),
        "flag_seconds": flag_seconds,
    }


def _import_file(rows: int, mrns: list[str], today: dt.date) -> bytes:
    """New troughs for existing patients: one per patient per day going back from
    yesterday, each with an accession the seed never uses."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["mrn", "collected_at", "last_dose_at", "value", "unit", "assay", "accession"])
    for i in range(rows):
        day = today - dt.timedelta(days=1 + i // len(mrns))
        collected = dt.datetime.combine(day, dt.time(7, 40))
        value = 2.5 + (i * 37 % 70) / 10
        writer.writerow(
            [
                mrns[i % len(mrns)],
                collected.isoformat(timespec="minutes"),
                (collected - dt.timedelta(hours=12, minutes=10)).isoformat(timespec="minutes"),
                f"{value:.1f}",
                "ng/mL",
                "LCMSMS",
                f"IMP-{i:07d}",
            ]
        )
    return buffer.getvalue().encode()


def worker(args: argparse.Namespace) -> int:
    database, size = args.database, args.size
    tag = f"[{database} {size}]"
    url = os.environ["DATABASE_URL"]
    WORK.mkdir(parents=True, exist_ok=True)
    _fresh_database(database, url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tdm_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import NoReverseMatch, reverse
    from django.utils import timezone

    from monitoring import exports, synthetic
    from monitoring.models import Patient, TroughLevel
    from monitoring.services import patients_reassess

    result: dict = {"database": database, "size": size, "notes": [], "pages": {}}
    # Other processes on the machine skew timings: keep the load average with the numbers.
    result["load"] = [os.getloadavg()[0]]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            result["db_version"] = f"PostgreSQL {cursor.fetchone()[0]}"
            cursor.execute("SHOW shared_buffers")
            result["db_version"] += f" (shared_buffers {cursor.fetchone()[0]})"
        else:
            import sqlite3

            result["db_version"] = f"SQLite {sqlite3.sqlite_version}"

    log(f"{tag} migrate")
    call_command("migrate", verbosity=0)
    today = timezone.localdate()

    log(f"{tag} seed_synthetic --patients {size} --years {YEARS:g} --seed {args.seed}")
    started = time.perf_counter()
    out = io.StringIO()
    call_command(
        "seed_synthetic", patients=size, years=YEARS, seed=args.seed, force=True, stdout=out
    )
    seconds = time.perf_counter() - started
    log(f"{tag}   {out.getvalue().strip()}")
    long_scenario = synthetic.Scenario(
        patients=1,
        years=10,
        seed=args.seed,
        as_of=today,
        prefix=LONG_PREFIX,
        interval_days=(5, 9),
        recent_share=0.0,
        overdue_share=0.0,
    )
    synthetic.seed(long_scenario)
    long_patient = Patient.objects.get(mrn=long_scenario.mrn(1))
    # Planner statistics, as autovacuum keeps them in production (it may be off here, and
    # without them PostgreSQL plans the worklist for a table of a few hundred patients).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    levels_total = TroughLevel.objects.count()
    result["seed"] = {
        "seconds": seconds,
        "levels": TroughLevel.objects.filter(patient__mrn__startswith="SYN-").count(),
        "levels_total": levels_total,
        "summary": out.getvalue().strip(),
    }
    result["long_levels"] = long_patient.levels.count()
    typical = Patient.objects.filter(mrn__startswith="SYN-", active=True).order_by("mrn").first()

    # The floor page lives in the bench's URLconf only (bench/urls.py).
    from django.conf import settings as django_settings
    from django.urls import clear_url_caches

    django_settings.ROOT_URLCONF = "bench.urls"
    clear_url_caches()

    user = get_user_model().objects.create_superuser(
        "bench", "bench@example.invalid", "bench-password-not-secret"
    )
    client = Client()
    client.force_login(user)

    result["load"].append(os.getloadavg()[0])
    worklist = reverse("monitoring:worklist")
    urls = {
        "floor": "/bench/floor",
        "worklist": worklist,
        "worklist_alert": f"{worklist}?alert=trough_below_range",
        "worklist_search": f"{worklist}?q=SYN-0001",
        "patient": reverse("monitoring:patient", kwargs={"pk": typical.pk}),
        "patient_long": reverse("monitoring:patient", kwargs={"pk": long_patient.pk}),
    }
    for attempt in ({}, {"pk": long_patient.pk}):
        try:
            urls["report"] = reverse("monitoring:report", kwargs=attempt)
            break
        except NoReverseMatch:
            continue
    else:
        result["notes"].append("no URL named monitoring:report yet: report not measured")
    for key, _label in PAGES:
        if key not in urls:
            continue
        log(f"{tag} page {key}: {urls[key]}")
        page = _profiled(
            args.profile and key in ("worklist", "patient_long"),
            f"{database}-{size}-{key}",
            _measure_page,
            client,
            urls[key],
            args.reps,
        )
        if page["status"] != 200:
            result["notes"].append(f"{key} answered {page['status']}")
        result["pages"][key] = page
        log(
            f"{tag}   median {page['median_ms']:.1f} ms, p95 {page['p95_ms']:.1f} ms, "
            f"{page['queries']} queries, {page['bytes'] / 1024:.0f} KB"
        )

    # Batch print of the worklist's first page (50 reports at 50 patients and more).
    log(f"{tag} batch print, first worklist page")
    batch = _measure_batch(client, reverse("monitoring:report_batch"), max(1, args.reps // 10))
    result["batch"] = batch
    log(
        f"{tag}   {batch['reports']} reports: first byte {batch['first_byte_s']:.2f} s, "
        f"first report {batch['first_report_s']:.2f} s, total {batch['total_s']:.2f} s"
    )

    # Model-informed forecasts: refits per second (as after an import marked them stale),
    # and the forecast check over the clinic's patients (at 500 patients only: it fits
    # every trough of every patient from the earlier ones).
    from monitoring.forecast_check import run_check
    from monitoring.models import PatientForecast
    from monitoring.services import patients_refit_stale

    refit_ids = list(
        Patient.objects.filter(mrn__startswith="SYN-", active=True)
        .order_by("mrn")
        .values_list("pk", flat=True)[:REFIT_PATIENTS]
    )
    PatientForecast.objects.all().delete()
    Patient.objects.exclude(pk__in=refit_ids).update(active=False)
    log(f"{tag} refit {len(refit_ids)} stale forecasts")
    started = time.perf_counter()
    refitted = patients_refit_stale()
    seconds = time.perf_counter() - started
    Patient.objects.filter(mrn__startswith="SYN-").update(active=True)
    result["refit"] = {"patients": refitted, "seconds": seconds, "per_s": refitted / seconds}
    log(f"{tag}   {refitted} in {seconds:.1f} s ({refitted / seconds:.1f} patients/s)")
    if size == FORECAST_CHECK_SIZE:
        log(f"{tag} forecast_check over {size} patients")
        started = time.perf_counter()
        check = run_check(Patient.objects.filter(mrn__startswith="SYN-").order_by("mrn"))
        seconds = time.perf_counter() - started
        overall = {r["method"]: r for r in check["rows"] if r["scope"] == "all"}
        result["forecast_check"] = {
            "seconds": seconds,
            "patients": check["patients"],
            **{f"{m}_ape": overall[m]["median_absolute_error"] for m in overall},
        }
        log(f"{tag}   {seconds:.0f} s for {check['patients']} patients")

    # Flag computation: a full re-judge of up to 500 patients whose stored flags are blank.
    chosen = list(Patient.objects.filter(mrn__startswith="SYN-").order_by("mrn")[:500])
    chosen_levels = TroughLevel.objects.filter(patient__in=chosen)
    n_levels = chosen_levels.count()
    chosen_levels.update(range_flag="")
    log(f"{tag} re-judge {len(chosen)} patients ({n_levels} levels)")
    started = time.perf_counter()
    _profiled(args.profile, f"{database}-{size}-reassess", patients_reassess, chosen)
    seconds = time.perf_counter() - started
    result["reassess"] = {
        "patients": len(chosen),
        "levels": n_levels,
        "seconds": seconds,
        "levels_per_s": n_levels / seconds,
    }
    log(f"{tag}   {seconds:.1f} s, {n_levels / seconds:.0f} levels/s")

    # Import: the upload path, flag computation included (timed separately too).
    if args.import_rows:
        mrns = list(
            Patient.objects.filter(mrn__startswith="SYN-")
            .order_by("mrn")
            .values_list("mrn", flat=True)
        )
        data = _import_file(args.import_rows, mrns, today)
        path = WORK / f"levels-import-{args.import_rows}.csv"
        path.write_bytes(data)
        log(f"{tag} import {args.import_rows} levels ({len(data) / 1e6:.1f} MB, {path})")
        report, seconds, flag_seconds = timed_levels_import(
            data, args.profile, f"{database}-{size}-import"
        )
        result["import"] = import_result(report, args.import_rows, seconds, flag_seconds)
        if not report.ok:
            result["notes"].append(f"import failed: {[str(p) for p in report.problems[:3]]}")
        log(
            f"{tag}   {report.summary()}: {seconds:.1f} s, "
            f"{args.import_rows / seconds:.0f} levels/s (flags {flag_seconds:.1f} s)"
        )

    # Export: every level, streamed to a file; timed, then the peak under tracemalloc.
    def export() -> int:
        rows = 0
        with open(WORK / "levels-export.csv", "w", encoding="utf-8") as handle:
            for line in exports.csv_lines("levels", today):
                handle.write(line)
                rows += 1
        return rows - 1

    log(f"{tag} export all levels")
    started = time.perf_counter()
    rows = _profiled(args.profile, f"{database}-{size}-export", export)
    seconds = time.perf_counter() - started
    result["export"] = {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}
    if not args.no_tracemalloc:
        import tracemalloc

        tracemalloc.start()
        started = time.perf_counter()
        export()
        traced = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["export"].update(peak_mb=peak / 1e6, traced_seconds=traced)
    log(
        f"{tag}   {rows} rows in {seconds:.1f} s ({rows / seconds:.0f} rows/s), "
        f"peak {result['export'].get('peak_mb', float('nan')):.1f} MB"
    )

    result["load"].append(os.getloadavg()[0])
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))
    return 0


# --- parent: run the workers, write the table -----------------------------------------------


def _run_worker(
    database: str, size: int, args: argparse.Namespace, import_rows: int, trace: bool = True
) -> dict | None:
    WORK.mkdir(parents=True, exist_ok=True)
    result_path = WORK / f"result-{database}-{size}.json"
    result_path.unlink(missing_ok=True)
    env = bench_env(_database_url(database, size))
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--worker",
        "--database",
        database,
        "--size",
        str(size),
        "--seed",
        str(args.seed),
        "--reps",
        str(args.reps),
        "--import-rows",
        str(import_rows),
        "--result",
        str(result_path),
    ]
    if args.profile:
        command.append("--profile")
    if args.no_tracemalloc or not trace:
        command.append("--no-tracemalloc")
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        log(f"[{database} {size}] timed out after {args.timeout} s")
        return None
    if done.returncode != 0 or not result_path.exists():
        log(f"[{database} {size}] failed (exit {done.returncode})")
        return None
    result = json.loads(result_path.read_text())
    result["wall_seconds"] = time.perf_counter() - started
    log(f"[{database} {size}] done in {result['wall_seconds']:.0f} s")
    return result


def _machine(results: list[dict]) -> list[str]:
    import django

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory = f"{int(first.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    uname = platform.uname()
    versions = sorted({r["db_version"] for r in results})
    return [
        f"- Date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- Machine: `{uname.system} {uname.release} {uname.machine}` ({uname.node})",
        f"- CPU: {cpu or 'unknown'}, {os.cpu_count()} logical CPUs; memory {memory or '?'}",
        f"- Python {platform.python_version()}, Django {django.get_version()}",
        f"- Databases: {', '.join(versions)} (PostgreSQL on the same machine, over TCP "
        "127.0.0.1; SQLite file on local disk)",
    ]


def _cell(page: dict | None, floor: dict | None = None) -> str:
    if not page:
        return "—"
    flag = "" if page["status"] == 200 else f" ({page['status']})"
    flag = f" (min {page['min_ms']:.0f}){flag}"
    multiple = ""
    if floor and page is not floor and floor["median_ms"] > 0:
        multiple = f" · **{page['median_ms'] / floor['median_ms']:.1f}×**"
    return (
        f"{page['median_ms']:.0f} / {page['p95_ms']:.0f} ms · {page['queries']} q{multiple}{flag}"
    )


def _find(results: list[dict], database: str, size: int | None = None) -> dict | None:
    chosen = [
        r for r in results if r["database"] == database and (size is None or r["size"] == size)
    ]
    return chosen[0] if chosen else None


def _figure_kb(page: dict | None) -> float | None:
    if not page or not page["json_scripts"]:
        return None
    scripts = page["json_scripts"]
    size = scripts.get("trough-figure", max(scripts.values()))
    return size / 1024


def _verdicts(results: list[dict]) -> list[str]:
    """One row per target of the issue, judged on PostgreSQL when it was measured."""
    database = "postgres" if _find(results, "postgres") else "sqlite"
    mine = sorted((r for r in results if r["database"] == database), key=lambda r: r["size"])
    note = "" if database == "postgres" else " (SQLite: PostgreSQL not measured)"
    rows = ["| Target (performance budget) | Measured | Verdict |", "|---|---|---|"]

    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("**met**" if ok else "**missed**")

    if not mine:
        return rows
    small, large = mine[0], mine[-1]
    first = (large["pages"].get("worklist") or {}).get("median_ms")
    base = (small["pages"].get("worklist") or {}).get("median_ms")
    rows.append(
        f"| Worklist first page at {large['size']:,} patients, median ≤ "
        f"{TARGETS['worklist_ms']:.0f} ms | "
        + (f"{first:.0f} ms{note}" if first is not None else "not measured")
        + f" | {verdict(first <= TARGETS['worklist_ms'] if first is not None else None)} |"
    )
    if first is not None and base and large is not small:
        ratio = first / base
        rows.append(
            f"| … and ≤ {TARGETS['worklist_ratio']}× its time at {small['size']:,} patients | "
            f"{ratio:.2f}× ({base:.0f} → {first:.0f} ms) | "
            f"{verdict(ratio <= TARGETS['worklist_ratio'])} |"
        )
    long_page = large["pages"].get("patient_long")
    if long_page:
        rows.append(
            f"| Patient page with 10 years ({large['long_levels']} levels), median ≤ "
            f"{TARGETS['patient_ms']:.0f} ms | {long_page['median_ms']:.0f} ms{note} | "
            f"{verdict(long_page['median_ms'] <= TARGETS['patient_ms'])} |"
        )
        kb = _figure_kb(long_page)
        rows.append(
            f"| Figure JSON ≤ {TARGETS['figure_kb']:.0f} KB | "
            + (f"{kb:.0f} KB" if kb is not None else "no json_script found")
            + f" | {verdict(kb <= TARGETS['figure_kb'] if kb is not None else None)} |"
        )
    counts = [
        (p["queries"], r["database"], r["size"], key)
        for r in results
        for key, p in r["pages"].items()
    ]
    if counts:
        worst = max(counts)
        rows.append(
            f"| Query count ≤ {TARGETS['queries']} per page | at most {worst[0]} "
            f"({worst[3]}, {worst[1]}, {worst[2]:,} patients) | "
            f"{verdict(worst[0] <= TARGETS['queries'])} |"
        )
    for db, target in TARGETS["import_per_s"].items():
        biggest = _find(results, db, max(r["size"] for r in results))
        imported = (biggest or {}).get("import")
        if imported:
            rows.append(
                f"| Import ≥ {target:,.0f} levels/s including flags ({db}) | "
                f"{imported['levels_per_s']:,.0f} levels/s ({imported['rows']:,} rows at "
                f"{biggest['size']:,} patients) | "
                f"{verdict(imported['levels_per_s'] >= target)} |"
            )
    peaks = [
        (r["export"]["rows"], r["export"]["peak_mb"])
        for r in mine
        if "peak_mb" in r.get("export", {})
    ]
    if len(peaks) >= 2:
        # The export works in batches of exports.BATCH patients: below one batch the peak
        # grows with the data, above it must stay flat. Judge the two largest runs.
        (few_rows, few_mb), (many_rows, many_mb) = peaks[-2], peaks[-1]
        growth = many_mb / few_mb if few_mb else float("inf")
        series = ", ".join(f"{mb:.0f} MB at {n:,} rows" for n, mb in peaks)
        rows.append(
            f"| Export streams (peak memory does not grow with rows) | {series}: "
            f"{many_rows / few_rows:.0f}× the rows, {growth:.2f}× the memory | "
            f"{verdict(growth <= 1.25)} |"
        )
    return rows


def render(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`python -m bench.run`, see bench/run.py for the method). "
        "Synthetic data from `manage.py seed_synthetic` (monitoring/synthetic.py).",
        "",
        "## Machine",
        "",
    ]
    lines += _machine(results)
    lines += ["", "## Targets", ""]
    lines += _verdicts(results)
    lines += [
        "",
        "## Pages: server time and queries",
        "",
        f"Median / 95th percentile of {args.reps} requests after 2 warm-up requests, through "
        "the Django test client in process (middleware, view, queries, template; no "
        "network), logged in as a superuser; `q` = queries per request (session and "
        "access log included); **N×** = the page's median as a multiple of the bare view's "
        "(bench/urls.py: login required, one indexed query for 50 patients, a trivial "
        "template) timed in the same run, which this machine's daily speed moves far less.",
        "",
        "| Database | Patients | Levels | " + " | ".join(label for _, label in PAGES) + " |",
        "|---|---:|---:|" + "---|" * len(PAGES),
    ]
    for r in results:
        cells = [_cell(r["pages"].get(key), r["pages"].get("floor")) for key, _ in PAGES]
        lines.append(
            f"| {r['database']} | {r['size']:,} | {r['seed']['levels_total']:,} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Page weight (HTML) and the figure JSON of the patient pages:",
        "",
        "| Database | Patients | Worklist | Patient page | Patient page, 10 years "
        "(levels) | Figure JSON, 10 years |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        pages = r["pages"]

        def kb(key: str, pages: dict = pages) -> str:
            return f"{pages[key]['bytes'] / 1024:.0f} KB" if key in pages else "—"

        figure = _figure_kb(pages.get("patient_long"))
        lines.append(
            f"| {r['database']} | {r['size']:,} | {kb('worklist')} | {kb('patient')} | "
            f"{kb('patient_long')} ({r['long_levels']}) | "
            + (f"{figure:.0f} KB" if figure is not None else "—")
            + " |"
        )
    lines += [
        "",
        "## Data operations",
        "",
        "Seed: `seed_synthetic` (generation, flags, bulk insert with history). Re-judge: "
        "`services.patients_reassess` on up to 500 patients whose stored level flags were "
        'blanked (every level rewritten). Import: `run_csv_import("levels", data)` of new '
        "troughs for existing patients, validated first (reads only), then one write "
        "transaction; flags and the touched patients' summaries included (the part spent in "
        "`patients_reassess`, which now includes the insert of the new troughs with their "
        'flags, in brackets). Export: `exports.csv_lines("levels", today)` '
        "streamed to a file; peak = tracemalloc peak of Python allocations during a second "
        "export (tracemalloc slows it down; the rate is from the first, untraced, export).",
        "",
        "| Database | Patients | Seed | Re-judge | Import | Export | Export peak |",
        "|---|---:|---|---|---|---|---:|",
    ]
    for r in results:
        seed = f"{r['seed']['seconds']:.0f} s ({r['seed']['levels']:,} levels)"
        rj = r.get("reassess")
        rejudge = (
            (
                f"{rj['patients']} patients, {rj['levels']:,} levels: {rj['seconds']:.1f} s "
                f"= {rj['levels_per_s']:,.0f} levels/s"
            )
            if rj
            else "—"
        )
        im = r.get("import")
        imported = (
            (
                f"{im['rows']:,} rows: {im['seconds']:.0f} s = "
                f"{im['levels_per_s']:,.0f} levels/s ({im['flag_seconds']:.0f} s)"
                + ("" if im["ok"] else " FAILED")
            )
            if im
            else "—"
        )
        ex = r["export"]
        exported = f"{ex['rows']:,} rows: {ex['seconds']:.1f} s = {ex['rows_per_s']:,.0f} rows/s"
        peak = f"{ex['peak_mb']:.0f} MB" if "peak_mb" in ex else "—"
        lines.append(
            f"| {r['database']} | {r['size']:,} | {seed} | {rejudge} | {imported} | "
            f"{exported} | {peak} |"
        )
    lines += [
        "",
        "Batch print (`/reports/batch/`, the worklist's first page: 50 reports), streamed: "
        "seconds to the first byte of the body (head, toolbar and page-margin rules), to "
        "the first report, and to the end of the document; median of a few requests after "
        "a warm-up, Django test client in process.",
        "",
        "| Database | Patients | Reports | First byte | First report | Total | Size |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        b = r.get("batch")
        if not b:
            continue
        lines.append(
            f"| {r['database']} | {r['size']:,} | {b['reports']} | {b['first_byte_s']:.2f} s | "
            f"{b['first_report_s']:.2f} s | {b['total_s']:.2f} s | {b['bytes'] / 1024:.0f} KB |"
        )
    lines += [
        "",
        "## Model-informed forecasts",
        "",
        f"Refits: `patients_refit_stale` over {REFIT_PATIENTS} patients whose forecasts were "
        "stale (as after an import): data set, MAP fit, forecast and chart band, stored. "
        f"Forecast check: `forecast_check` over the {FORECAST_CHECK_SIZE} synthetic patients "
        "(every trough of every patient fitted from the earlier ones), with the median "
        "absolute prediction error of each method.",
        "",
        "| Database | Patients | Refits | Forecast check | MAP | Population | Proportional |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for r in results:
        rf, fc = r.get("refit"), r.get("forecast_check")
        refits = f"{rf['per_s']:.1f} patients/s" if rf else "—"
        check = f"{fc['seconds']:.0f} s ({fc['patients']} patients)" if fc else "—"

        def ape(method: str, fc: dict | None = fc) -> str:
            value = fc.get(f"{method}_ape") if fc else None
            return "—" if value is None else f"{value:.1f} %"

        lines.append(
            f"| {r['database']} | {r['size']:,} | {refits} | {check} | {ape('map')} | "
            f"{ape('population')} | {ape('proportional')} |"
        )
    loads = ", ".join(
        f"{r['database']} {r['size']:,}: " + " / ".join(f"{x:.1f}" for x in r.get("load", []))
        for r in results
    )
    lines += [
        "",
        "1-minute load average at the start, before the pages and at the end of each run "
        f"({os.cpu_count()} CPUs; above ~1 other work shared the machine): {loads}.",
    ]
    notes = [f"- {r['database']} {r['size']:,}: {n}" for r in results for n in r["notes"]]
    if notes:
        lines += ["", "Notes:", ""] + notes
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,500,5000")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="50 and 500 patients on SQLite, fewer repetitions and import "
        "rows; prints the table without writing docs/performance.md",
    )
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument(
        "--import-rows",
        type=int,
        default=100_000,
        help="rows of the import file at the largest size (both databases); default 100,000",
    )
    parser.add_argument(
        "--import-rows-other",
        type=int,
        default=5_000,
        help="rows of the import file everywhere else (default 5,000, to keep the whole run short)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the worklist, long patient page, re-judge, import and "
        "export; top functions go to /tmp/tdm_bench/profile-*.txt",
    )
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--timeout", type=int, default=3600, help="per database and size (s)")
    # Internal: one database and size, in its own process.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.sizes, args.databases, args.no_write = "50,500", "sqlite", True
        args.reps = min(args.reps, 10)
        args.import_rows = min(args.import_rows, 5_000)
        args.import_rows_other = min(args.import_rows_other, 2_000)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    results = []
    started = time.perf_counter()
    for database in databases:
        for size in sizes:
            rows = args.import_rows if size == max(sizes) else args.import_rows_other
            # tracemalloc slows the export five-fold; on SQLite's largest run it is skipped
            # when PostgreSQL (which the targets are judged on) is measured too.
            trace = not (database == "sqlite" and size == max(sizes) and "postgres" in databases)
            result = _run_worker(database, size, args, rows, trace)
            if result is not None:
                results.append(result)
    if not results:
        log("no results")
        return 1
    text = render(results, args)
    if not args.quick:
        log("model-informed dosing engine (bench/pk.py)")
        text += "\n" + "\n".join(pk_bench.render(pk_bench.measure())) + "\n"
        from bench import jobs as jobs_bench  # imports this module: not at the top

        text += "\n" + "\n".join(jobs_bench.render(jobs_bench.measure(databases, 20_000))) + "\n"
    print(text)
    if not args.no_write:
        output = Path(args.output)
        kept = ""
        if output.exists() and END_MARKER in output.read_text():
            kept = output.read_text().split(END_MARKER, 1)[1]
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n" + END_MARKER + kept)
        log(f"wrote {output}")
    log(f"bench finished in {(time.perf_counter() - started) / 60:.1f} min")
    return 0 if len(results) == len(sizes) * len(databases) else 1


if __name__ == "__main__":
    sys.exit(main())
