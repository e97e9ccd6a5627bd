"""bin/devserver (what `make run` ends with): the web server and a worker start together,
both really work, and Ctrl-C (SIGINT to the script) leaves no process of either behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORT = 18510

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)"),
]


def proc_stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, session id, state) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "pid (command name)"
    return int(fields[1]), int(fields[3]), fields[0]


def all_processes() -> dict[int, tuple[int, int, str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def live_in_sessions(sessions: set[int]) -> list[int]:
    # A zombie (Z) has exited: only its parent's reaping is left.
    return [
        pid for pid, (_, sid, state) in all_processes().items() if sid in sessions and state != "Z"
    ]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local http
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_devserver_runs_web_and_worker_and_ctrl_c_stops_both(tmp_path):
    db = tmp_path / "dev.sqlite3"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    env.update(
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{db}",
        PORT=str(PORT),
        DAILY_REFRESH_TIME="00:00",
        WORKER_DUTY_INTERVAL="0.5",
        PK_FORECASTS="0",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    log = tmp_path / "devserver.log"
    with log.open("wb") as out:
        script = subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / "devserver")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sessions: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        # Up when the web server answers and the worker has done its daily duty.
        while not (
            answers(f"http://127.0.0.1:{PORT}/healthz")
            and sqlite3.connect(db)
            .execute("SELECT 1 FROM monitoring_dailyrun WHERE finished_at IS NOT NULL")
            .fetchall()
        ):
            assert script.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        children = [pid for pid, (ppid, _, _) in all_processes().items() if ppid == script.pid]
        assert len(children) == 2, children  # runserver and db_worker
        sessions = set(children)  # each child leads its own session
        # Both run under Django's autoreloader: a reloader and a working process each.
        assert len(live_in_sessions(sessions)) == 4, live_in_sessions(sessions)

        script.send_signal(signal.SIGINT)
        assert script.wait(30) == 0, log.read_text()
        left = live_in_sessions(sessions)  # before the clean-up below hides any survivor
    finally:
        if script.poll() is None:
            script.kill()
        for sid in sessions:  # never leave the test's own processes behind, pass or fail
            for pid in live_in_sessions({sid}):
                os.kill(pid, signal.SIGKILL)

    assert left == [], log.read_text()
    assert not answers(f"http://127.0.0.1:{PORT}/healthz")
    assert "web server and worker stopped" in log.read_text()
