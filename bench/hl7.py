"""HL7 interface throughput: messages per second through ``POST /hl7/inbound/``, the rate
that sets ``HL7_MAX_MESSAGES_PER_REQUEST`` (settings.py, docs/data-formats.md).

    python -m bench.hl7 [--databases sqlite,postgres] [--patients 50] [--messages 200] [--drain]

Per database a worker subprocess (its own DATABASE_URL, as bench.run): a fresh database,
``migrate``, ``seed_synthetic --patients N --years 6`` (about 60 troughs each, so every
message re-judges a real history), then one POST of ``--messages`` ORU^R01 messages, each a
new tacrolimus trough and a creatinine for one of the patients in turn (as the sample in
docs/samples), with the production settings (PK_FORECASTS on): each message that writes
marks its patient's forecast stale and queues a refit task (django-tasks-db) that a worker
runs, so the request fits nothing. The Django test client, in process: no network, which
gunicorn adds little to next to the import. ``--drain`` then times one worker
(``db_worker --batch``) running the queued refits: a patient queued several times is fitted
once, by its first task that runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time

from bench.run import ROOT, WORK, _database_url, _fresh_database, bench_env, log


def batch(mrns: list[str], count: int, day: str) -> str:
    """``count`` messages, one new trough (new accession) and a creatinine each."""
    out = []
    for n in range(count):
        mrn = mrns[n % len(mrns)]
        minute = f"{n % 60:02d}"
        hour = f"{6 + (n // 60) % 3:02d}"
        at = f"{day}{hour}{minute}00"
        out.append(
            f"MSH|^~\\&|LIS|GH|TDM|NEPHRO|{at}||ORU^R01|BENCH{n:06d}|P|2.5.1\r"
            f"PID|1||{mrn}^^^GH^MR||Doe^Jane||19880412|F\r"
            f"OBR|1|ORD{n}|BENCH-ACC-{n:06d}|77348-1^Tacrolimus trough^LN|||{at}\r"
            f"OBX|1|NM|77348-1^Tacrolimus trough^LN||{5 + n % 7}.{n % 10}|ng/mL^^UCUM|"
            f"5.0-15.0|N|||F|||{at}|||LCMSMS\r"
            f"OBX|2|NM|2160-0^Creatinine^LN||0.9{n % 10}|mg/dL^^UCUM|0.5-1.1|N|||F|||{at}\r"
        )
    return "".join(out)


def worker(args: argparse.Namespace) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    _fresh_database(args.database, os.environ["DATABASE_URL"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tdm_site.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from monitoring.models import InterfaceToken, Patient, PatientForecast, TroughLevel

    call_command("migrate", verbosity=0)
    call_command(
        "seed_synthetic",
        patients=args.patients,
        years=6.0,
        seed=1,
        force=True,
        stdout=io.StringIO(),
    )
    mrns = list(Patient.objects.order_by("mrn").values_list("mrn", flat=True))
    # Yesterday, so that no result is in the future whatever the time of day.
    day = (timezone.localdate() - timezone.timedelta(days=1)).strftime("%Y%m%d")
    _, token = InterfaceToken.issue("bench")
    body = batch(mrns, args.messages, day)
    before = TroughLevel.objects.count()
    client = Client()
    started = time.perf_counter()
    response = client.post(
        reverse("monitoring:hl7_inbound"),
        data=body,
        content_type="x-application/hl7-v2+er7",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    seconds = time.perf_counter() - started
    text = response.content.decode()
    accepted = text.count("MSA|AA|")
    if accepted < args.messages:
        sys.stderr.write(text[:2000].replace("\r", "\n"))
    stored = TroughLevel.objects.count() - before
    queued = DBTaskResult.objects.filter(task_path="monitoring.tasks.refit_forecasts").count()
    stale = PatientForecast.objects.filter(stale=True).count()
    drain: dict = {}
    if args.drain:
        started = time.perf_counter()
        call_command("db_worker", batch=True, startup_delay=False, stdout=io.StringIO())
        drain = {
            "drain_seconds": round(time.perf_counter() - started, 1),
            "stale_after_drain": PatientForecast.objects.filter(stale=True).count(),
        }
    print(
        json.dumps(
            {
                "database": args.database,
                "status": response.status_code,
                "messages": args.messages,
                "accepted": accepted,
                "stored": stored,
                "seconds": round(seconds, 2),
                "per_second": round(args.messages / seconds, 1),
                "refit_tasks_queued": queued,
                "stale_forecasts": stale,
                **drain,
                "pk_forecasts": settings.PK_FORECASTS,
                "load": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--drain", action="store_true", help="time a worker running the refits")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    for database in args.databases.split(","):
        log(f"[{database}] {args.patients} patients, one POST of {args.messages} messages")
        env = bench_env(_database_url(database, args.patients))  # production settings
        # The rate is measured, not the cap it sets: one POST carries every message.
        env["HL7_MAX_MESSAGES_PER_REQUEST"] = str(args.messages)
        command = [sys.executable, "-m", "bench.hl7", "--worker", "--database", database]
        command += ["--patients", str(args.patients), "--messages", str(args.messages)]
        command += ["--drain"] if args.drain else []
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stderr)
            return done.returncode
        print(done.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
