"""Import jobs run by real `manage.py db_worker` processes, on an SQLite file and on
PostgreSQL: the job completes, its progress as another connection sees it never goes back,
and a worker killed (SIGKILL) in the middle of an import leaves a running job that a second
worker takes over and finishes, with every trough stored once.

Each test has a database of its own (tests/jobs_support.py): pytest's SQLite test database
lives in memory, where no subprocess can see it. PostgreSQL runs skip when the server at
JOBS_TEST_PG (default postgres://postgres@127.0.0.1:5432) does not answer."""

from __future__ import annotations

import time

import pytest

from tests.jobs_support import (
    SUITE_DATABASE,
    drop_postgres,
    levels_files,
    make_postgres,
    make_sqlite,
    manage,
    pg_available,
    queue_import,
    run_job_to_end,
    wait_for,
    wait_job,
    worker,
)

pytestmark = pytest.mark.worker

ROWS_PATIENTS, ROWS_EACH = 100, 30  # 3,000 troughs: a few seconds of import
# The file killed mid-import: 10,000 troughs, long enough (seconds) to be killed inside.
KILL_PATIENTS, KILL_EACH = 200, 50
PG_NAME = "tdm_jobs_worker"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    return make_sqlite(tmp_path_factory.mktemp("jobs-template"))


@pytest.fixture(scope="session")
def pg_template():
    if not pg_available():
        pytest.skip("no PostgreSQL server at JOBS_TEST_PG")
    template = f"{PG_NAME}_template"
    make_postgres(template)
    yield template
    drop_postgres(template)


@pytest.fixture(params=[SUITE_DATABASE])
def database(request, tmp_path):
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        yield make_sqlite(tmp_path, template.url.removeprefix("sqlite:///"))
        return
    template = request.getfixturevalue("pg_template")
    yield make_postgres(PG_NAME, template=template)
    drop_postgres(PG_NAME)


@pytest.fixture
def files():
    return levels_files(ROWS_PATIENTS, ROWS_EACH)


def troughs(db) -> tuple[int, int]:
    return db.query("SELECT COUNT(*), COUNT(DISTINCT accession) FROM monitoring_troughlevel")[0]


def test_a_worker_runs_the_job_and_its_progress_never_goes_back(database, files, tmp_path):
    total = ROWS_PATIENTS * ROWS_EACH
    job = queue_import(database, tmp_path, *files)
    assert database.job(job)[0] == "queued"
    seen: list[tuple[str, int]] = []

    def finished() -> bool:
        status, done, *_ = database.job(job)
        seen.append((status, done))
        return status in ("succeeded", "failed")

    with worker(database, tmp_path / "worker.log"):
        wait_for(finished, timeout=120, what="the job to finish")

    status, done, rows_total, attempts, _ = database.job(job)
    assert (status, done, rows_total, attempts) == ("succeeded", total, total, 1)
    done_values = [d for _, d in seen]
    assert done_values == sorted(done_values), "rows_done went back"
    assert "running" in {s for s, _ in seen}
    assert troughs(database) == (total, total)
    # The file is not kept once imported.
    assert database.query("SELECT LENGTH(data) FROM monitoring_importjob")[0][0] == 0


def test_a_killed_worker_leaves_the_job_to_the_next_worker(database, tmp_path):
    total = KILL_PATIENTS * KILL_EACH
    job = queue_import(database, tmp_path, *levels_files(KILL_PATIENTS, KILL_EACH))

    # The first worker: killed without warning while it imports.
    with worker(database, tmp_path / "first.log") as first:
        wait_job(database, job, ("running",), timeout=60, what="the claim")
        time.sleep(0.3)
        first.kill()
    status, _, _, attempts, _ = database.job(job)
    assert (status, attempts) == ("running", 1), "the first worker should die mid-import"
    assert troughs(database) == (0, 0)  # all or nothing: its transaction died with it

    # The second worker's sweep finds the job silent, queues it again and runs it.
    run_job_to_end(
        database,
        job,
        tmp_path / "second.log",
        timeout=120,
        what="the second attempt",
        IMPORT_JOB_STALE_SECONDS="1",
        WORKER_DUTY_INTERVAL="0.5",
    )

    status, done, rows_total, attempts, _ = database.job(job)
    assert (status, done, rows_total, attempts) == ("succeeded", total, total, 2)
    assert troughs(database) == (total, total)  # every trough once


def test_a_long_import_is_not_taken_over_while_its_worker_lives(database, tmp_path):
    """The worker's own sweep is eager here (silent for 1 s = abandoned), yet the job it is
    running keeps beating (a heartbeat thread, also through the write transaction), so it
    finishes in one attempt."""
    total = KILL_PATIENTS * KILL_EACH
    job = queue_import(database, tmp_path, *levels_files(KILL_PATIENTS, KILL_EACH))

    run_job_to_end(
        database,
        job,
        tmp_path / "worker.log",
        timeout=180,
        what="the job to finish",
        IMPORT_JOB_STALE_SECONDS="1",
        WORKER_DUTY_INTERVAL="0.2",
    )

    status, done, rows_total, attempts, _ = database.job(job)
    assert (status, done, rows_total, attempts) == ("succeeded", total, total, 1)
    assert troughs(database) == (total, total)


def stored_verdicts(db) -> tuple[list, list]:
    levels = db.query(
        "SELECT accession, target_low, target_high, range_flag, timing_flag, timing_reason,"
        " hours_post_dose, steady_state FROM monitoring_troughlevel ORDER BY accession"
    )
    patients = db.query(
        "SELECT mrn, alert_codes, warning_count, latest_level_id, next_action, next_trough_due,"
        " urgency_band, problem_since FROM monitoring_patient ORDER BY mrn"
    )
    return levels, patients


def test_a_worker_judges_a_large_import_in_two_processes_as_one_process_would(
    database, files, tmp_path
):
    """The worker process (with its heartbeat thread) forks its helper for the re-judge
    (monitoring/split_work.py; lowered from 1,000 patients to 2 here): the flags and
    summaries stored are those a re-judge in one process stores."""
    job = queue_import(database, tmp_path, *files)
    log = tmp_path / "worker.log"
    run_job_to_end(database, job, log, timeout=120, what="the job to finish", REJUDGE_SPLIT_MIN="2")
    assert database.job(job)[0] == "succeeded"
    assert f"{ROWS_PATIENTS} items judged in two processes" in log.read_text()
    split = stored_verdicts(database)
    assert sum(1 for level in split[0] if level[3]) == ROWS_PATIENTS * ROWS_EACH  # all judged
    manage(database, "refresh_summaries", "--full", env=database.env(REJUDGE_PROCESSES="1"))
    assert stored_verdicts(database) == split
