"""More than one machine (docs/deployment.md), built on this one: PostgreSQL, PgBouncer in
transaction mode, two gunicorn nodes with the same SECRET_KEY, haproxy round-robin in front,
one db_worker. Real processes, real HTTP; the database is read directly to see what is stored.

Not in the default run (marker ``multihost``): `make test-multihost` runs it, after
installing haproxy and pgbouncer when it can. The tests share one topology and run in file
order; the last one kills node A.
"""

from __future__ import annotations

import atexit
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable

import pytest
import requests

from .topology import Topology, missing

pytestmark = pytest.mark.multihost

PASSWORD = "multihost-clerk-password-2026"
PATIENTS = 40
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
IMPORT_TOKEN = re.compile(r'name="token" value="([^"]+)"')
JOB_URL = re.compile(r"/imports/jobs/(\d+)/$")
JOB_STATE = re.compile(
    r'id="job-state"[^>]*data-status="(\w+)"|data-status="(\w+)"[^>]*id="job-state"'
)

# Run once in `manage.py shell` (through PgBouncer, as the nodes): the clerk who imports, the
# lab interface's token, and the patients every result belongs to.
SETUP = f"""
import json
from django.contrib.auth.models import Group, User
from monitoring.importers import run_csv_import
from monitoring.models import InterfaceToken
clerk = User.objects.create_user("clerk", password={PASSWORD!r})
clerk.groups.add(Group.objects.get(name="data_entry"))
_, token = InterfaceToken.issue("lab")
rows = ["mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start,"
        "therapy_end,ln_class"]
rows += [f"MH-{{i:04d}},Test{{i}},Pat,1980-01-01,F,ln_maintenance,2024-01-01,,IV"
         for i in range({PATIENTS})]
report = run_csv_import("patients", ("\\n".join(rows) + "\\n").encode())
assert report.written, report.problems
print(json.dumps({{"token": token}}))
"""


# --- the data ----------------------------------------------------------------------------------


def levels_csv(keys: Iterable[tuple[int, int]]) -> bytes:
    lines = ["mrn,collected_at,last_dose_at,value,unit,assay,accession"]
    for p, k in keys:
        day, minute = 1 + k % 28, k % 60
        lines.append(
            f"MH-{p:04d},2025-{1 + k // 28 % 12:02d}-{day:02d}T08:{minute:02d},,"
            f"{5 + k % 7}.1,ng/mL,LCMSMS,{csv_accession(p, k)}"
        )
    return ("\n".join(lines) + "\n").encode()


def csv_accession(p: int, k: int) -> str:
    return f"CSV-{p:04d}-{k:04d}"


def keys(accessions: Iterable[str]) -> list[tuple[int, int]]:
    return sorted((int(a[4:8]), int(a[9:13])) for a in accessions)


def hl7_message(p: int, k: int) -> str:
    stamp = f"2026{1 + k // 28 % 9:02d}{1 + k % 28:02d}08{k % 60:02d}00"
    return (
        "\r".join(
            [
                f"MSH|^~\\&|LIS|GH|TDM|NEPHRO|{stamp}||ORU^R01|MSG-{p:04d}-{k:04d}|P|2.5.1",
                f"PID|1||MH-{p:04d}^^^GH^MR||Test{p}^Pat||19800101|F",
                f"OBR|1|ORD{p:04d}{k:04d}|HL7-{p:04d}-{k:04d}|77348-1^Tacrolimus trough^LN|||"
                f"{stamp}",
                f"OBX|1|NM|77348-1^Tacrolimus [Mass/volume] in Blood --trough^LN||{5 + k % 7}.2|"
                f"ng/mL^^UCUM|5.0-15.0|N|||F|||{stamp}|||LCMSMS",
            ]
        )
        + "\r"
    )


def acks(text: str) -> dict[str, str]:
    """MSA-2 (the message's control id) → MSA-1 (AA, AE, AR) for every ACK in an answer."""
    found = {}
    for segment in re.split(r"[\r\n]+", text):
        fields = segment.split("|")
        if fields[0] == "MSA":
            found[fields[2]] = fields[1]
    return found


# --- the site ----------------------------------------------------------------------------------


class Site:
    def __init__(self, topology: Topology, token: str):
        self.t = topology
        self.token = token

    def sign_in(self, node: str) -> requests.Session:
        base = self.t.node(node)
        session = requests.Session()
        page = session.get(f"{base}/accounts/login/", timeout=15)
        assert page.status_code == 200, page.text[:500]
        response = session.post(
            f"{base}/accounts/login/",
            data={
                "username": "clerk",
                "password": PASSWORD,
                "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
            },
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, response.text[:500]
        return session

    def post_hl7(self, base: str, messages: list[str]) -> requests.Response:
        return requests.post(
            f"{base}/hl7/inbound/",
            data="".join(messages).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "text/plain"},
            timeout=30,
        )

    def preview(
        self, session: requests.Session, base: str, name: str, data: bytes, timeout: int = 60
    ) -> str:
        """Upload a levels file; the signed token of its preview page."""
        page = session.get(f"{base}/imports/", timeout=15)
        assert page.status_code == 200, page.text[:500]
        response = session.post(
            f"{base}/imports/",
            data={"kind": "levels", "csrfmiddlewaretoken": CSRF.search(page.text).group(1)},
            files={"file": (name, data, "text/csv")},
            timeout=timeout,
        )
        assert response.status_code == 200, response.text[:2000]
        assert "error" not in re.findall(r'class="badge[^"]*">(\w+)<', response.text)
        return IMPORT_TOKEN.search(response.text).group(1)

    def confirm(self, session: requests.Session, base: str, token: str) -> str:
        """Confirm a previewed import: the address of the job page it redirects to (the
        confirm only queues the job; the db_worker imports the file)."""
        page = session.get(f"{base}/imports/", timeout=15)
        response = session.post(
            f"{base}/imports/confirm/",
            data={"token": token, "csrfmiddlewaretoken": CSRF.search(page.text).group(1)},
            allow_redirects=False,
            timeout=60,
        )
        assert response.status_code == 302, response.text[:2000]
        location = response.headers["Location"]
        assert JOB_URL.search(location), location
        return location

    def wait_job(self, session: requests.Session, base: str, location: str) -> str:
        """Follow a job page (on whichever node ``base`` is) until the job has ended: its
        final data-status, succeeded or failed."""
        url = f"{base}{location}" if location.startswith("/") else location
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = session.get(url, timeout=15)
            assert page.status_code == 200, page.text[:2000]
            match = JOB_STATE.search(page.text)
            assert match, page.text[:2000]
            status = match.group(1) or match.group(2)
            if status in {"succeeded", "failed"}:
                return status
            assert status in {"queued", "running"}, status
            time.sleep(0.3)
        raise AssertionError(f"the import job at {url} did not end in 60 s\n{self.t.tails()}")

    def import_levels(self, session: requests.Session, base: str, token: str) -> str:
        return self.wait_job(session, base, self.confirm(session, base, token))

    def stored(self, prefix: str) -> list[str]:
        """Accessions stored with this prefix, one entry per stored row."""
        return [
            row[0]
            for row in self.t.sql(
                "SELECT accession FROM monitoring_troughlevel WHERE accession LIKE %s",
                (prefix + "%",),
            )
        ]

    def duplicates(self) -> list[tuple]:
        return self.t.sql(
            "SELECT patient_id, accession, count(*) FROM monitoring_troughlevel "
            "WHERE accession <> '' GROUP BY patient_id, accession HAVING count(*) > 1"
        )


@pytest.fixture(scope="module")
def site():
    absent = missing()
    if absent:
        pytest.skip(
            f"multihost test needs {', '.join(absent)}. Enable it with `make test-multihost` "
            "(installs haproxy and pgbouncer with apt-get when run as root), or: "
            "sudo apt-get install haproxy pgbouncer; PostgreSQL superuser trusted on "
            "127.0.0.1 (MULTIHOST_POSTGRES_URL to use another server)."
        )
    topology = Topology()
    # Also if the run is interrupted before the fixture's own teardown.
    atexit.register(topology.close)
    try:
        topology.create_database()
        topology.start_pgbouncer()
        topology.start_haproxy()
        # The nodes start (import Django) while the schema is built: they touch the database
        # only when a request comes. Migrations run once, straight to PostgreSQL.
        topology.start_node("a")
        topology.start_node("b")
        topology.start_node("stranger", workers=1, SECRET_KEY=secrets.token_urlsafe(50))
        topology.wait_port(topology.pgbouncer_port)
        topology.manage("migrate", "--no-input", direct=True)
        token = json.loads(topology.manage("shell", "-c", SETUP).strip().splitlines()[-1])
        topology.start_worker()
        for name in ("a", "b", "stranger"):
            topology.wait_http(f"{topology.node(name)}/healthz")
        topology.wait_http(f"{topology.balancer}/healthz")
        yield Site(topology, token["token"])
    finally:
        topology.close()


# --- the scenarios -----------------------------------------------------------------------------


def test_a_session_started_on_node_a_continues_on_node_b(site):
    session = site.sign_in("a")

    page = session.get(f"{site.t.node('b')}/imports/", allow_redirects=False, timeout=15)
    assert page.status_code == 200, page.headers.get("Location")
    assert "Signed in as <strong>clerk</strong>" in page.text
    # The same page without the cookies: B's answer above came from the shared session.
    anonymous = requests.get(f"{site.t.node('b')}/imports/", allow_redirects=False, timeout=15)
    assert anonymous.status_code == 302
    assert "/accounts/login/" in anonymous.headers["Location"]

    # A write on B with B's form token, then A sees the session gone.
    logout = session.post(
        f"{site.t.node('b')}/accounts/logout/",
        data={"csrfmiddlewaretoken": CSRF.search(page.text).group(1)},
        allow_redirects=False,
        timeout=15,
    )
    assert logout.status_code == 302
    after = session.get(f"{site.t.node('a')}/imports/", allow_redirects=False, timeout=15)
    assert after.status_code == 302
    assert "/accounts/login/" in after.headers["Location"]

    # Both nodes reached PostgreSQL through PgBouncer (it logs each client's login).
    assert f"login attempt: db={site.t.database}" in site.t.processes["pgbouncer"].log.read_text()


def test_a_node_with_another_secret_key_accepts_neither_the_session_nor_a_preview(site):
    session = site.sign_in("a")
    token = site.preview(session, site.t.node("a"), "one.csv", levels_csv([(0, 300)]))

    page = session.get(f"{site.t.node('stranger')}/imports/", allow_redirects=False, timeout=15)
    assert page.status_code == 302
    assert "/accounts/login/" in page.headers["Location"]

    # Signed in there too, the preview made on node A still cannot be confirmed.
    elsewhere = site.sign_in("stranger")
    form = elsewhere.get(f"{site.t.node('stranger')}/imports/", timeout=15)
    response = elsewhere.post(
        f"{site.t.node('stranger')}/imports/confirm/",
        data={"token": token, "csrfmiddlewaretoken": CSRF.search(form.text).group(1)},
        timeout=30,
    )
    assert "The uploaded file could not be verified" in response.text
    assert site.stored(csv_accession(0, 300)) == []


def test_concurrent_overlapping_hl7_posts_through_the_balancer_store_each_result_once(site):
    keys = [(p, k) for p in range(12) for k in range(2)]
    messages = {f"MSG-{p:04d}-{k:04d}": hl7_message(p, k) for p, k in keys}
    ordered = list(messages.values())
    # Every message three times: twice in the same chunk of three, once in chunks shifted by
    # one, all posted at once from 16 threads.
    chunks = [ordered[i : i + 3] for i in range(0, len(ordered), 3)] * 2
    chunks += [ordered[i : i + 3] for i in range(1, len(ordered), 3)]
    answers: list[requests.Response] = []
    errors: list[BaseException] = []

    def post(chunk):
        try:
            answers.append(site.post_hl7(site.t.balancer, chunk))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors, errors
    assert [a.status_code for a in answers] == [200] * len(chunks), [a.text for a in answers]
    verdicts = [acks(a.text) for a in answers]
    assert all(set(v.values()) == {"AA"} for v in verdicts), verdicts
    assert {cid for v in verdicts for cid in v} == set(messages)
    assert {a.headers["X-Served-By"] for a in answers} == {"a", "b"}
    assert sorted(site.stored("HL7-")) == sorted(f"HL7-{p:04d}-{k:04d}" for p, k in keys)
    assert site.duplicates() == []


def test_overlapping_csv_imports_confirmed_on_both_nodes_store_each_row_once(site):
    first = [(p, k) for p in range(12, 24) for k in range(10)]
    second = [(p, k) for p in range(18, 30) for k in range(10)]
    session = site.sign_in("a")
    tokens = {
        "a": site.preview(session, site.t.node("a"), "first.csv", levels_csv(first)),
        "b": site.preview(session, site.t.node("b"), "second.csv", levels_csv(second)),
    }
    outcomes: dict[str, str] = {}
    errors: list[BaseException] = []

    def confirm(node):
        try:
            outcomes[node] = site.import_levels(session, site.t.node(node), tokens[node])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=confirm, args=(node,)) for node in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    # Each job ran on its own: the second file's overlapping rows were found unchanged.
    assert outcomes == {"a": "succeeded", "b": "succeeded"}

    expected = sorted({f"CSV-{p:04d}-{k:04d}" for p, k in first + second})
    assert sorted(site.stored("CSV-")) == expected
    assert site.duplicates() == []


def test_streamed_exports_through_pgbouncer_are_whole_while_other_requests_run(site):
    """The worklist export streams its rows from .iterator(): with PgBouncer in transaction
    mode that must not be a server-side cursor (DATABASE_PGBOUNCER turns them off), whose
    FETCH could reach another server connection than its DECLARE."""
    session = site.sign_in("a")
    answers: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    again = [hl7_message(p, k) for p in range(12) for k in range(2)]

    def export(node):
        try:
            response = session.get(f"{site.t.node(node)}/worklist/export.csv", timeout=30)
            answers.append((response.status_code, response.text))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def resend(chunk):
        # Stored already: unchanged, but each one a transaction of its own on PgBouncer.
        site.post_hl7(site.t.balancer, chunk)

    threads = [threading.Thread(target=export, args=("ab"[i % 2],)) for i in range(8)]
    threads += [threading.Thread(target=resend, args=(again[i : i + 3],)) for i in range(0, 24, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors, errors
    assert [status for status, _ in answers] == [200] * 8
    assert len({text for _, text in answers}) == 1
    assert len(answers[0][1].splitlines()) == PATIENTS + 1


POOL_CHECK = """
import json
from django.db import connection
from monitoring.models import Patient
patients = Patient.objects.count()
connection.close()  # hands the connection back to the pool
pool = connection.pool
print(json.dumps({"pool": type(pool).__name__, "max_size": pool.max_size,
                  "patients": patients, "idle": pool.get_stats()["pool_available"]}))
"""


def test_database_pool_runs_queries_through_djangos_pool(site):
    out = site.t.manage(
        "shell", "-c", POOL_CHECK, direct=True, DATABASE_POOL="1", DATABASE_POOL_SIZE="3"
    )

    result = json.loads(out.strip().splitlines()[-1])
    assert result["pool"] == "ConnectionPool"
    assert result["max_size"] == 3
    assert result["patients"] == PATIENTS
    # Closing Django's connection gave it back to the pool (which may have opened another
    # while the first was being made): open, idle, none beyond the size.
    assert 1 <= result["idle"] <= 3, result


def test_killing_node_a_mid_import_loses_nothing_acknowledged_and_retries_add_no_duplicate(site):
    node_a, balancer = site.t.node("a"), site.t.balancer
    big = {csv_accession(p, k) for p in range(30, 40) for k in range(150)}
    small = {csv_accession(p, k) for p in range(10) for k in range(200, 230)}
    session = site.sign_in("b")
    big_token = site.preview(
        session, site.t.node("b"), "big.csv", levels_csv(keys(big)), timeout=120
    )
    small_token = site.preview(session, site.t.node("b"), "small.csv", levels_csv(keys(small)))
    hl7_keys = [(p, k) for p in range(PATIENTS) for k in (10, 11)]
    hl7 = {f"MSG-{p:04d}-{k:04d}": hl7_message(p, k) for p, k in hl7_keys}
    ids = list(hl7)
    acknowledged: set[str] = set()
    lock = threading.Lock()
    small_job: list[str] = []

    # Acknowledged by node A before it dies: the job is in the database for the worker.
    big_job = site.confirm(session, node_a, big_token)

    def confirm_small_on_a():
        try:
            small_job.append(site.confirm(session, node_a, small_token))
        except requests.RequestException:
            pass  # not acknowledged: retried below

    def post_on_a(chunk_ids: list[str]):
        for i in range(0, len(chunk_ids), 2):
            try:
                answer = site.post_hl7(node_a, [hl7[c] for c in chunk_ids[i : i + 2]])
            except requests.RequestException:
                continue  # not acknowledged: retried below
            if answer.status_code == 200:
                with lock:
                    acknowledged.update(c for c, v in acks(answer.text).items() if v == "AA")

    workers = [threading.Thread(target=post_on_a, args=(ids[i::6],)) for i in range(6)]
    workers.append(threading.Thread(target=confirm_small_on_a))
    for worker in workers:
        worker.start()
    # Node A dies (master and workers, SIGKILL) once about a third of the HL7 results were
    # acknowledged: the rest are in flight or not sent yet.
    deadline = time.monotonic() + 60
    while len(acknowledged) < len(ids) // 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    site.t.kill_node("a")
    for worker in workers:
        worker.join(90)
    assert 0 < len(acknowledged) < len(ids), "the kill did not land mid-stream"

    # Everything acknowledged is stored.
    assert {f"HL7-{c[4:]}" for c in acknowledged} <= set(site.stored("HL7-"))
    # The acknowledged import goes on without node A; its page is served by node B. A file
    # is one transaction: all of its rows or none, at any moment.
    assert len(big & set(site.stored("CSV-"))) in (0, len(big))
    assert site.wait_job(session, balancer, big_job) == "succeeded"

    # Retry, through the balancer (only node B is left), whatever was not acknowledged, in
    # requests of up to ten messages as an interface engine sends them.
    retry = [hl7[c] for c in ids if c not in acknowledged]
    for i in range(0, len(retry), 10):
        answer = site.post_hl7(balancer, retry[i : i + 10])
        assert answer.status_code == 200, answer.text
        assert set(acks(answer.text).values()) == {"AA"}, answer.text
        assert answer.headers["X-Served-By"] == "b"
    job = small_job[0] if small_job else site.confirm(session, balancer, small_token)
    assert site.wait_job(session, balancer, job) == "succeeded"

    stored = site.stored("")
    assert sorted(a for a in stored if a in big | small) == sorted(big | small)
    mine = {f"HL7-{c[4:]}" for c in ids}
    assert sorted(a for a in stored if a in mine) == sorted(mine)
    assert site.duplicates() == []
    print(
        f"HL7 acknowledged by node A before the kill: {len(acknowledged)} of {len(ids)}; "
        f"small import's confirm acknowledged: {bool(small_job)}"
    )
