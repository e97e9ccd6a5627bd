"""Clinic staff as locust sees them: sign in, then browse the worklist, open patients and add
troughs, with a few seconds of reading between clicks. Run by ``python -m bench.load``
(``make bench-load``), which starts the server and passes the patients in the environment."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

from locust import HttpUser, between, task

PATIENTS = [int(pk) for pk in os.environ.get("TDM_LOAD_PATIENTS", "").split(",") if pk]
USERNAME = os.environ.get("TDM_LOAD_USER", "load")
PASSWORD = os.environ.get("TDM_LOAD_PASSWORD", "")


class ClinicUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
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
