"""Load test of the performance budget: gunicorn with 4 workers on PostgreSQL, 50 simulated
clinic users for 60 s (locust, headless), browsing the worklist, opening patients and adding
troughs.

    python -m bench.load [--patients 500] [--users 50] [--seconds 60] [--no-write]
    make bench-load

1. a fresh PostgreSQL database ``tdm_load`` (127.0.0.1:5432, user postgres; override with
   BENCH_LOAD_POSTGRES_URL), ``migrate``, ``seed_synthetic --patients N``, a clinician
   account, ``collectstatic``;
2. gunicorn with production settings (DEBUG off, hashed and compressed static files through
   whitenoise) on 127.0.0.1:8765, 4 sync workers;
3. locust headless (bench/locustfile.py): every user signs in (a warm-up, timed apart),
   then the statistics are reset and browsing is measured for ``--seconds``;
4. the table of locust's statistics is printed and written into docs/performance.md between
   the load markers (the rest of the file is left as ``make bench`` wrote it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.run import ROOT, WORK, _fresh_database, log

POSTGRES_URL = os.environ.get(
    "BENCH_LOAD_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/tdm_load"
)
PORT = 8765
START, END = "<!-- load:start -->", "<!-- load:end -->"
TARGET_P95_MS = 300


def _env(password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    env.update(
        DATABASE_URL=POSTGRES_URL,
        DJANGO_SETTINGS_MODULE="tdm_site.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        TIME_ZONE="UTC",
        SECURE_SSL_REDIRECT="0",  # plain HTTP on loopback: no TLS terminator here
        SECURE_COOKIES="0",
        PROXY_COUNT="0",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        TDM_LOAD_USER="load",
        TDM_LOAD_PASSWORD=password,
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _prepare(env: dict[str, str], patients: int) -> list[int]:
    _fresh_database("postgres", POSTGRES_URL)
    log("migrate")
    _manage(env, "migrate", "--no-input")
    log(f"seed_synthetic --patients {patients}")
    log(
        "  " + _manage(env, "seed_synthetic", "--patients", str(patients), "--seed", "7", "--force")
    )
    log("collectstatic")
    _manage(env, "collectstatic", "--no-input")
    script = (
        "from django.contrib.auth.models import Group, User\n"
        "from monitoring.models import Patient\n"
        "import os\n"
        "u = User.objects.create_user('load', password=os.environ['TDM_LOAD_PASSWORD'])\n"
        "u.groups.add(Group.objects.get(name='clinician'))\n"
        "print(','.join(str(pk) for pk in Patient.objects.filter(active=True)"
        ".values_list('pk', flat=True)))\n"
    )
    out = _manage(env, "shell", "-c", script)
    return [int(pk) for pk in out.splitlines()[-1].split(",")]


def _wait_for_server(seconds: int = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("gunicorn did not answer /healthz in time")


def _transferred(session, url: str) -> tuple[int, str, str]:
    """Bytes on the wire (compressed as sent), the Cache-Control and the decoded text."""
    response = session.get(url, headers={"Accept-Encoding": "br, gzip"}, stream=True)
    response.raise_for_status()
    raw = response.raw.read(decode_content=False)
    text = ""
    if "text/html" in response.headers.get("Content-Type", ""):
        text = session.get(url).text
    return len(raw), response.headers.get("Cache-Control", ""), text


def page_weight(password: str, patient_pk: int) -> dict:
    """A patient page's first visit (page and every static file it names) and a repeat
    visit (the page, plus any static file not cached for a year), as a browser would fetch
    them with ``Accept-Encoding: br, gzip``."""
    import requests

    base = f"http://127.0.0.1:{PORT}"
    session = requests.Session()
    session.get(f"{base}/accounts/login/")
    session.post(
        f"{base}/accounts/login/",
        data={
            "username": "load",
            "password": password,
            "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
        },
    )
    html_bytes, _, html = _transferred(session, f"{base}/patients/{patient_pk}/")
    assets = sorted(set(re.findall(r'(?:src|href)="(/static/[^"]+)"', html)))
    first = repeat = html_bytes
    uncached = []
    for asset in assets:
        size, cache_control, _ = _transferred(session, base + asset)
        first += size
        if "max-age=315360" not in cache_control:  # whitenoise: a year, immutable
            repeat += size
            uncached.append(asset)
    return {
        "html": html_bytes,
        "assets": len(assets),
        "first": first,
        "repeat": repeat,
        "uncached": uncached,
    }


def _stats(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _signins(path: Path) -> list[float]:
    try:
        return sorted(json.loads(path.read_text())["signin_ms"])
    except (OSError, ValueError, KeyError):
        return []


def render(
    rows: list[dict[str, str]],
    args: argparse.Namespace,
    patients: int,
    weight: dict,
    signins: list[float],
) -> str:
    total = next(r for r in rows if r["Name"] == "Aggregated")
    p95 = float(total["95%"])
    failures = int(total["Failure Count"])
    verdict = "met" if p95 <= TARGET_P95_MS and failures == 0 else "missed"
    lines = [
        START,
        "## Load test",
        "",
        f"Written by `make bench-load` (`python -m bench.load`, bench/locustfile.py) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `{platform.node() or 'host'}` "
        f"({os.cpu_count()} CPUs): gunicorn, 4 sync workers, production settings, PostgreSQL "
        f"on the same machine; {patients} synthetic patients; {args.users} locust users "
        f"(1–3 s between clicks, locust on the same machine) browsing for {args.seconds} s once "
        "all had signed in.",
        "",
        (
            f"Sign-ins (the warm-up, not in the table): {len(signins)} users at once, median "
            f"{statistics.median(signins):.0f} ms, slowest {signins[-1]:.0f} ms (login page and "
            "sign-in POST; the password hash costs ~0.5 s of CPU by design and 50 queue on "
            "2 CPUs)."
            if signins
            else "Sign-ins: not recorded."
        ),
        "",
        f"Target: 95th percentile ≤ {TARGET_P95_MS} ms and no errors: **{verdict}** "
        f"(95th percentile {p95:.0f} ms, {failures} failures of {total['Request Count']} "
        "requests).",
        "",
        "Front-end weight of a patient page through gunicorn (whitenoise: hashed static files, "
        "brotli/gzip, cached a year; pages gzip-compressed by Django): first visit "
        f"{weight['first'] / 1024:.0f} KB ({weight['assets']} static files; target ≤ 1,600 KB: "
        f"**{'met' if weight['first'] <= 1600 * 1024 else 'missed'}**), repeat visit "
        f"{weight['repeat'] / 1024:.0f} KB (target ≤ 60 KB: "
        f"**{'met' if weight['repeat'] <= 60 * 1024 else 'missed'}**"
        + (f"; not cached: {', '.join(weight['uncached'])}" if weight["uncached"] else "")
        + ").",
        "",
        "| Request | Count | Failures | Median ms | 95th ms | 99th ms | Max ms | Req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["Request Count"] == "0":
            continue  # the sign-in requests, reset with the warm-up
        lines.append(
            f"| {r['Name']} | {r['Request Count']} | {r['Failure Count']} | "
            f"{r['50%']} | {r['95%']} | {r['99%']} | {float(r['Max Response Time']):.0f} | "
            f"{float(r['Requests/s']):.1f} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def _write(text: str, output: Path) -> None:
    current = output.read_text() if output.exists() else ""
    if START in current and END in current:
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        current = pattern.sub(lambda _m: text, current)
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    output.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--output", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    env = _env(secrets.token_urlsafe(16))
    pks = _prepare(env, args.patients)
    env["TDM_LOAD_PATIENTS"] = ",".join(str(pk) for pk in pks)
    log(f"gunicorn on 127.0.0.1:{PORT}, 4 workers")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "tdm_site.wsgi",
            "--workers",
            "4",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--log-level",
            "warning",
            # The production access-log format (no query strings: searches carry names).
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "--access-logfile",
            str(WORK / "gunicorn-access.log"),
        ],
        cwd=ROOT,
        env=env,
    )
    prefix = WORK / "load"
    signin_file = WORK / "load-signins.json"
    signin_file.unlink(missing_ok=True)
    env["TDM_LOAD_SECONDS"] = str(args.seconds)
    env["TDM_LOAD_SIGNIN_FILE"] = str(signin_file)
    try:
        _wait_for_server()
        weight = page_weight(env["TDM_LOAD_PASSWORD"], pks[0])
        log(f"page weight: {weight}")
        log(f"locust: {args.users} users for {args.seconds} s")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--headless",
                "--users",
                str(args.users),
                "--spawn-rate",
                "10",
                "--run-time",  # a safety net: the locustfile stops after the browsing phase
                f"{args.seconds + 300}s",
                "--host",
                f"http://127.0.0.1:{PORT}",
                "--csv",
                str(prefix),
                "--only-summary",
            ],
            cwd=ROOT,
            env=env,
            check=False,  # locust exits 1 when any request failed: the table says which
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    text = render(_stats(prefix), args, len(pks), weight, _signins(signin_file))
    print(text)
    if not args.no_write:
        _write(text, Path(args.output))
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
