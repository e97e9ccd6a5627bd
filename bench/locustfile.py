"""Clinic staff as locust sees them: sign in, then browse the worklist, open patients and add
troughs, with a few seconds of reading between clicks. Run by ``python -m bench.load``
(``make bench-load``), which starts the server and passes the patients in the environment.

Signing in is a warm-up, kept out of the browsing statistics: every user signs in at once
(a deliberately slow password hash, ~0.5 s of CPU each, so 50 at once queue for many
seconds on two cores, which a clinic's staff arriving over a morning never do). When the
last user has signed in the statistics are reset, the sign-in times are written to
``TDM_LOAD_SIGNIN_FILE``, and browsing is measured for ``TDM_LOAD_SECONDS``."""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime, timedelta

import gevent
from locust import HttpUser, between, task

PATIENTS = [int(pk) for pk in os.environ.get("TDM_LOAD_PATIENTS", "").split(",") if pk]
USERNAME = os.environ.get("TDM_LOAD_USER", "load")
PASSWORD = os.environ.get("TDM_LOAD_PASSWORD", "")
SECONDS = int(os.environ.get("TDM_LOAD_SECONDS", "60"))
SIGNIN_FILE = os.environ.get("TDM_LOAD_SIGNIN_FILE", "")
SIGNIN_MS: list[float] = []  # this locust process runs every user (one gevent loop)


def _browsing_begins(environment) -> None:
    """All users signed in: record the sign-ins, measure browsing from here for SECONDS."""
    if SIGNIN_FILE:
        with open(SIGNIN_FILE, "w") as handle:
            json.dump({"signin_ms": SIGNIN_MS}, handle)
    environment.runner.stats.reset_all()
    gevent.spawn_later(SECONDS, environment.runner.quit)


class ClinicUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        began = time.perf_counter()
        self.client.get("/accounts/login/", name="login page")
        self.client.post(
            "/accounts/login/",
            {
                "username": USERNAME,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.client.cookies.get("csrftoken", ""),
            },
            name="sign in",
        )
        SIGNIN_MS.append((time.perf_counter() - began) * 1000)
        if len(SIGNIN_MS) == self.environment.runner.target_user_count:
            _browsing_begins(self.environment)

    @task(5)
    def worklist(self) -> None:
        self.client.get("/", name="worklist")

    @task(2)
    def worklist_filtered(self) -> None:
        self.client.get("/?alert=trough_below_range", name="worklist, filtered")

    @task(1)
    def worklist_search(self) -> None:
        self.client.get(f"/?q=SYN-{random.randint(1, 500):06d}", name="worklist, search")

    @task(4)
    def patient(self) -> None:
        self.client.get(f"/patients/{random.choice(PATIENTS)}/", name="patient page")

    @task(1)
    def add_trough(self) -> None:
        # As the page's htmx form sends it (server TIME_ZONE is UTC in the load run); a
        # random past minute keeps every result new.
        collected = datetime.now(UTC) - timedelta(minutes=random.randint(60, 400_000))
        with self.client.post(
            f"/patients/{random.choice(PATIENTS)}/levels/add/",
            {
                "collected_at": collected.strftime("%Y-%m-%dT%H:%M"),
                "last_dose_at": (collected - timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M"),
                "reported_value": f"{random.uniform(2.5, 8.5):.1f}",
                "reported_unit": "ng/mL",
                "assay": "",
                "accession": "",
                "status": "final",
            },
            headers={
                "HX-Request": "true",
                "X-CSRFToken": self.client.cookies.get("csrftoken", ""),
            },
            name="add trough (htmx)",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"answered {response.status_code}")
