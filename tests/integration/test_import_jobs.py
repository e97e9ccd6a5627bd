"""The web import as a background job: confirm queues it and sends the user to its page,
which shows the progress and then the result; who may see it; the stale-job sweep.

Tasks run at once here (tests/conftest.py's ImmediateBackend); tests/integration/
test_import_worker.py runs them in real `manage.py db_worker` processes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from monitoring import jobs, worker_duties
from monitoring.importers import run_csv_import
from monitoring.models import AccessLog, ImportJob, JobStatus, Patient, TroughLevel

pytestmark = pytest.mark.django_db

PAGE = reverse("monitoring:import")
CONFIRM = reverse("monitoring:import_confirm")

PATIENTS = (
    "mrn,family_name,given_name,birth_date,sex\n"
    "JOB-1,Doe,Jane,1988-04-12,F\n"
    "JOB-2,Roe,Maria,1975-11-30,F\n"
)
LEVELS = (
    "mrn,collected_at,last_dose_at,value,unit,assay,accession\n"
    "JOB-1,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,LCMSMS,J-1\n"
    "JOB-1,2025-04-03T08:00,,5.0,ng/mL,CMIA,J-2\n"
    "JOB-2,2025-04-04T08:00,,6.1,ng/mL,CMIA,J-3\n"
)
LEVELS_ONE_BAD = LEVELS.replace(",6.1,", ",abc,")
HL7 = (
    "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20250312093000||ORU^R01|MSG1|P|2.5.1\r"
    "PID|1||JOB-1^^^GH^MR||Doe^Jane||19880412|F\r"
    "OBR|1|ORD1|H-1|77348-1^Tacrolimus trough^LN|||20250312073000\r"
    "OBX|1|NM|77348-1^Tacrolimus trough^LN||5.2|ng/mL^^UCUM|5.0-15.0|N|||F|||20250312073000|||"
    "LCMSMS\r"
)


@pytest.fixture
def patients():
    assert run_csv_import("patients", PATIENTS.encode()).ok


def confirm(client, kind: str, text: str, name: str = "file.csv"):
    preview = client.post(PAGE, {"kind": kind, "file": SimpleUploadedFile(name, text.encode())})
    token = preview.context["preview"].token
    return client.post(CONFIRM, {"token": token})


def state(html: str) -> dict[str, str]:
    """The data-* attributes of #job-state: the page's contract with scripts and tests."""
    tag = re.search(r'<p id="job-state"[^>]*>', html).group(0)
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', tag))


def test_confirm_queues_a_job_and_redirects_to_its_page(data_entry_client, patients):
    response = confirm(data_entry_client, "levels", LEVELS, "april levels.csv")

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response.url == f"/imports/jobs/{job.pk}/"
    assert (job.kind, job.file_name, job.created_by) == (
        "levels",
        "april levels.csv",
        data_entry_client.user,
    )
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 1
    assert (job.rows_done, job.rows_total) == (3, 3)
    # The file is not kept once its rows are stored.
    assert bytes(job.data) == b""
    assert TroughLevel.objects.count() == 3


def test_the_finished_page_shows_counts_and_links(data_entry_client, patients):
    url = confirm(data_entry_client, "levels", LEVELS).url

    page = data_entry_client.get(url)

    html = page.content.decode()
    assert page.status_code == 200
    assert state(html) == {
        "status": "succeeded",
        "rows-done": "3",
        "rows-total": "3",
        "attempts": "1",
    }
    assert '<progress id="job-progress" max="3" value="3">' in html
    assert '<label for="job-progress">' in html
    assert "3 of 3 rows" in html
    assert "<strong>3</strong> new" in html
    # Finished: no more polling, no more reloading.
    assert "hx-trigger" not in html
    assert 'http-equiv="refresh"' not in html
    jane, maria = Patient.objects.order_by("mrn")
    assert f'href="/patients/{jane.pk}/"' in html
    assert f'href="/patients/{maria.pk}/"' in html
    # The two results without a last-dose time, each linked to its row on the patient page.
    unknown = TroughLevel.objects.filter(last_dose_at__isnull=True).order_by("accession")
    assert [t.accession for t in unknown] == ["J-2", "J-3"]
    section = html.split('id="job-unknown-timing"', 1)[1].split("</ul>", 1)[0]
    links = re.findall(r'href="([^"]+)"', section)
    assert links == [f"/patients/{t.patient_id}/#level-{t.pk}" for t in unknown]
    assert "New trough results with unknown timing (2)" in html


def test_the_finished_page_is_in_the_access_log(data_entry_client, patients):
    url = confirm(data_entry_client, "levels", LEVELS).url
    job = ImportJob.objects.get()
    AccessLog.objects.all().delete()

    data_entry_client.get(url)

    rows = AccessLog.objects.filter(user=data_entry_client.user, view_name="import job")
    assert {r.patient_id for r in rows} == {None, *Patient.objects.values_list("pk", flat=True)}
    job_row = rows.get(patient=None)
    assert job_row.detail == f"job {job.pk}: succeeded"
    assert job_row.path == url


def test_a_file_with_a_bad_row_ends_as_a_failed_job_that_wrote_nothing(data_entry_client, patients):
    # The preview already refuses the file; a job gets it only if the data changed between
    # the preview and the run (here: a forged confirm of the bad file's own token).
    preview = data_entry_client.post(
        PAGE, {"kind": "levels", "file": SimpleUploadedFile("bad.csv", LEVELS_ONE_BAD.encode())}
    )
    assert not preview.context["preview"].ok
    response = data_entry_client.post(CONFIRM, {"token": preview.context["preview"].token})

    job = ImportJob.objects.get()
    assert job.status == JobStatus.FAILED
    assert TroughLevel.objects.count() == 0
    assert TroughLevel.history.count() == 0
    assert bytes(job.data) == b""
    page = data_entry_client.get(response.url).content.decode()
    assert state(page)["status"] == "failed"
    assert "Nothing was imported" in page
    assert "row 4, column value: value &#x27;abc&#x27;: is not a number" in page
    assert 'href="/imports/"' in page


def test_an_hl7_file_runs_as_a_job_too(data_entry_client, patients):
    url = confirm(data_entry_client, "hl7", HL7, "results.hl7").url

    job = ImportJob.objects.get()
    assert job.status == JobStatus.SUCCEEDED
    level = TroughLevel.objects.get()
    assert level.accession == "H-1"
    assert job.result["unknown_timing"] == [level.pk]
    assert job.result["patients"] == [level.patient_id]
    html = data_entry_client.get(url).content.decode()
    assert f"/patients/{level.patient_id}/#level-{level.pk}" in html


def test_the_history_names_the_file_and_the_user(data_entry_client):
    confirm(data_entry_client, "patients", PATIENTS, "patients.csv")

    record = Patient.history.get(mrn="JOB-1")
    assert record.history_change_reason == "web import (patients): patients.csv"
    assert record.history_user == data_entry_client.user


# --- who may see a job ---------------------------------------------------------------------


def test_another_importer_gets_a_404(client_for, patients):
    alice, bob = client_for("data_entry"), client_for("data_entry")
    url = confirm(alice, "levels", LEVELS).url
    AccessLog.objects.all().delete()

    assert bob.get(url).status_code == 404
    assert bob.get(url, headers={"HX-Request": "true"}).status_code == 404
    assert not AccessLog.objects.exists()


def test_a_superuser_may_see_anyones_job(client_for, patients):
    url = confirm(client_for("data_entry"), "levels", LEVELS).url

    assert client_for("superuser").get(url).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "clinician"])
def test_roles_without_import_are_refused(client_for, role, data_entry_client, patients):
    url = confirm(data_entry_client, "levels", LEVELS).url

    assert client_for(role).get(url).status_code == 403


def test_anonymous_users_are_sent_to_log_in(client, data_entry_client, patients):
    url = confirm(data_entry_client, "levels", LEVELS).url

    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_missing_job_is_a_404(data_entry_client):
    assert data_entry_client.get("/imports/jobs/999999/").status_code == 404


# --- while it runs -------------------------------------------------------------------------


@pytest.fixture
def running_job(data_entry_client):
    now = timezone.now()
    return ImportJob.objects.create(
        kind="levels",
        file_name="big.csv",
        data=LEVELS.encode(),
        created_by=data_entry_client.user,
        status=JobStatus.RUNNING,
        attempts=1,
        rows_total=20_000,
        rows_done=5_000,
        started_at=now - timedelta(seconds=10),
        heartbeat_at=now,
    )


def test_a_running_job_polls_and_reloads_without_javascript(data_entry_client, running_job):
    AccessLog.objects.all().delete()
    url = reverse("monitoring:import_job", args=[running_job.pk])

    html = data_entry_client.get(url).content.decode()

    assert state(html) == {
        "status": "running",
        "rows-done": "5000",
        "rows-total": "20000",
        "attempts": "1",
    }
    assert '<progress id="job-progress" max="20000" value="5000">' in html
    assert "5000 of 20000 rows" in html
    assert "500 rows/s" in html
    assert "about 30 s left" in html
    assert f'hx-get="{url}" hx-trigger="every 1000ms"' in html
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in html
    assert 'role="status" aria-live="polite"' in html
    assert "<script>" not in html and "style=" not in html
    # Counts only, no patient data yet: polling leaves no trace in the access log.
    assert not AccessLog.objects.exists()


def test_htmx_polls_get_only_the_status_block(data_entry_client, running_job):
    url = reverse("monitoring:import_job", args=[running_job.pk])

    response = data_entry_client.get(url, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="job-status"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_progress_never_goes_back(running_job):
    progress = jobs.progress_writer(running_job.pk, attempt=1)

    progress(7_000, 20_000)
    progress(3_000, 20_000)  # a second attempt counting from the start again

    running_job.refresh_from_db()
    assert running_job.rows_done == 7_000


def test_progress_of_a_run_that_lost_its_job_is_ignored(running_job):
    jobs.progress_writer(running_job.pk, attempt=2)(9_000, 20_000)

    running_job.refresh_from_db()
    assert running_job.rows_done == 5_000


def test_a_run_whose_job_was_taken_over_rolls_its_import_back(data_entry_client, patients):
    job = ImportJob.objects.create(
        kind="levels",
        file_name="levels.csv",
        data=LEVELS.encode(),
        created_by=data_entry_client.user,
        status=JobStatus.RUNNING,
        attempts=2,  # the sweep gave it to another worker: this run was attempt 1
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )

    with pytest.raises(jobs._JobTaken):
        jobs._run_csv(job, 1, timezone.now())

    assert TroughLevel.objects.count() == 0
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


# --- the stale-job sweep -------------------------------------------------------------------


def _stale(job: ImportJob, attempts: int, seconds: int = 600) -> None:
    ImportJob.objects.filter(pk=job.pk).update(
        attempts=attempts, heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_the_sweep_is_a_worker_duty():
    assert "monitoring.jobs.sweep_stale_jobs" in worker_duties.DUTIES


def test_a_silent_running_job_is_run_again(running_job, patients, settings):
    settings.IMPORT_JOB_STALE_SECONDS = 120
    _stale(running_job, attempts=1)

    assert jobs.sweep_stale_jobs(timezone.now()) == 1

    # Queued again and (tasks run at once here) run to the end by a second attempt.
    running_job.refresh_from_db()
    assert running_job.status == JobStatus.SUCCEEDED
    assert running_job.attempts == 2
    assert TroughLevel.objects.count() == 3


def test_a_recent_heartbeat_is_left_alone(running_job, settings):
    settings.IMPORT_JOB_STALE_SECONDS = 120
    _stale(running_job, attempts=1, seconds=60)

    assert jobs.sweep_stale_jobs(timezone.now()) == 0

    running_job.refresh_from_db()
    assert running_job.status == JobStatus.RUNNING


def test_after_three_attempts_the_job_fails(running_job, settings):
    settings.IMPORT_JOB_STALE_SECONDS = 120
    _stale(running_job, attempts=3)

    assert jobs.sweep_stale_jobs(timezone.now()) == 1

    running_job.refresh_from_db()
    assert running_job.status == JobStatus.FAILED
    assert "started 3 times" in running_job.error
    assert bytes(running_job.data) == b""
    assert TroughLevel.objects.count() == 0


def test_two_sweeps_racing_handle_a_job_once(running_job, settings):
    settings.IMPORT_JOB_STALE_SECONDS = 120
    _stale(running_job, attempts=3)
    now = timezone.now()

    assert jobs.sweep_stale_jobs(now) + jobs.sweep_stale_jobs(now) == 1


def test_a_job_already_claimed_is_not_run_twice(running_job):
    assert jobs.import_job_run(running_job.pk) == "not queued"

    running_job.refresh_from_db()
    assert running_job.attempts == 1
