"""The deployment of docs/deployment.md, built on one machine for a test: a fresh PostgreSQL
database, PgBouncer in transaction mode in front of it, two gunicorn instances ("nodes")
using the database through PgBouncer with the same SECRET_KEY, haproxy round-robin in front
of both, and one `manage.py db_worker`. Every process runs in its own session (process
group), so stopping one node kills its master and workers at once, as a dying machine
would; ``Topology.close`` kills whatever is left and drops the database, also after a
failure.

Debian packages provide the servers (haproxy, pgbouncer); ``missing()`` names what is
absent so the test can skip saying how to get it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
GUNICORN = str(VENV_BIN / "gunicorn")
# The server that holds the test's database (superuser, trust on 127.0.0.1 in CI).
POSTGRES_URL = os.environ.get("MULTIHOST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
# haproxy on BASE, node A on BASE+1, node B on BASE+2, PgBouncer on BASE+3.
_server = urlsplit(POSTGRES_URL)
BASE_PORT = int(os.environ.get("MULTIHOST_BASE_PORT", "18300"))
HOST = "127.0.0.1"


def missing() -> list[str]:
    """What the topology needs and this machine lacks, as readable items."""
    absent = []
    for name, path in (("haproxy", HAPROXY), ("pgbouncer", PGBOUNCER)):
        if not os.access(path, os.X_OK):
            absent.append(name)
    if not os.access(GUNICORN, os.X_OK):
        absent.append(f"gunicorn in {VENV_BIN}")
    try:
        psycopg.connect(f"{POSTGRES_URL}/postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        absent.append(f"PostgreSQL at {POSTGRES_URL} ({type(exc).__name__})")
    return absent


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    # Killed on purpose by the test: its exit is not a failure.
    killed: bool = False

    def kill(self) -> None:
        """SIGKILL to the whole process group (a gunicorn master and its workers), also
        when the leader has already gone: a worker it left behind is still in the group."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait(timeout=10)

    def terminate(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"--- {self.name}: no log"
        return f"--- {self.name} ({self.log}):\n" + "\n".join(text)


@dataclass
class Topology:
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tdm-multihost-")))
    database: str = field(default_factory=lambda: f"tdm_multihost_{os.getpid()}")
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))
    processes: dict[str, Process] = field(default_factory=dict)
    created_database: bool = False

    haproxy_port: int = BASE_PORT
    node_ports: dict[str, int] = field(
        default_factory=lambda: {"a": BASE_PORT + 1, "b": BASE_PORT + 2}
    )
    pgbouncer_port: int = BASE_PORT + 3
    # A node outside the balancer with a SECRET_KEY of its own: what a mistake looks like.
    stranger_port: int = BASE_PORT + 4

    # --- addresses -------------------------------------------------------------------------

    @property
    def balancer(self) -> str:
        return f"http://{HOST}:{self.haproxy_port}"

    def port_of(self, name: str) -> int:
        return self.stranger_port if name == "stranger" else self.node_ports[name]

    def node(self, name: str) -> str:
        return f"http://{HOST}:{self.port_of(name)}"

    @property
    def direct_url(self) -> str:
        return f"{POSTGRES_URL}/{self.database}"

    @property
    def pooled_url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.pgbouncer_port}/{self.database}"

    def site_env(self, **extra: str) -> dict[str, str]:
        """A production environment (DEBUG off, no pytest relaxations) except plain HTTP:
        there is no TLS proxy in the test, so the HTTPS redirect and Secure cookies are off,
        and no collectstatic ran, so the hashed manifest is off too."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTEST_VERSION", "DEBUG", "DATABASE_POOL", "DATABASE_POOL_SIZE"}
            and not k.startswith("PYTEST_")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="tdm_site.settings",
            DEBUG="0",
            SECRET_KEY=self.secret_key,
            ALLOWED_HOSTS=HOST,
            DATABASE_URL=self.pooled_url,
            DATABASE_PGBOUNCER="1",
            SECURE_SSL_REDIRECT="0",
            SECURE_COOKIES="0",
            STATIC_MANIFEST="0",
            # haproxy appends X-Forwarded-For; direct requests have none (REMOTE_ADDR then).
            PROXY_COUNT="1",
            # The PK fit on each write is not what this test is about and costs ~0.1 s each.
            PK_FORECASTS="0",
            LOG_LEVEL="WARNING",
            WORKER_DUTY_INTERVAL="2",
        )
        env.update(extra)
        return env

    # --- processes -------------------------------------------------------------------------

    def start(self, name: str, argv: list[str], *, env=None, user: str | None = None) -> Process:
        log = self.tmp / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )
        handle.close()
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def manage(self, *args: str, direct: bool = False, timeout: int = 120, **extra: str) -> str:
        """Run a management command against the test database (through PgBouncer, or
        ``direct`` to PostgreSQL); its stdout, or a failure showing its output."""
        env = self.site_env(**({"DATABASE_URL": self.direct_url} if direct else {}), **extra)
        if direct:
            env.pop("DATABASE_PGBOUNCER")
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stderr[-3000:]}"
        return result.stdout

    def create_database(self) -> None:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.created_database = True

    def start_pgbouncer(self) -> None:
        """PgBouncer refuses to run as root: as root it runs as the postgres user (or nobody),
        from a directory that user can read."""
        folder = self.tmp / "pgbouncer"
        folder.mkdir()
        (folder / "userlist.txt").write_text('"postgres" ""\n')
        (folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{self.database} = host={_server.hostname} port={_server.port or 5432} "
            f"dbname={self.database} user={_server.username or 'postgres'}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\n"
            f"listen_port = {self.pgbouncer_port}\n"
            "unix_socket_dir =\n"
            # 'any': the user is the one in [databases]; the test's PostgreSQL trusts it.
            "auth_type = any\n"
            f"auth_file = {folder / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            "default_pool_size = 8\n"
            "max_client_conn = 200\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        user = None
        if os.geteuid() == 0:
            user = _unprivileged_user()
            os.chmod(self.tmp, 0o755)  # noqa: S103 - PgBouncer's user reads its ini here
            for path in (folder, *folder.iterdir()):
                shutil.chown(path, user=user)
        self.start("pgbouncer", [PGBOUNCER, str(folder / "pgbouncer.ini")], user=user)

    def start_haproxy(self) -> None:
        servers = "\n".join(
            f"    server {name} {HOST}:{port} check inter 300ms fall 2 rise 1"
            for name, port in self.node_ports.items()
        )
        cfg = self.tmp / "haproxy.cfg"
        cfg.write_text(
            "global\n"
            "    maxconn 256\n"
            "defaults\n"
            "    mode http\n"
            "    timeout connect 2s\n"
            "    timeout client 35s\n"
            "    timeout server 35s\n"
            # A refused connection (a dead node) is retried on the other node.
            "    retries 2\n"
            "    option redispatch\n"
            "frontend web\n"
            f"    bind {HOST}:{self.haproxy_port}\n"
            "    option forwardfor\n"
            "    default_backend nodes\n"
            "backend nodes\n"
            "    balance roundrobin\n"
            "    option httpchk\n"
            f"    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host {HOST}\n"
            "    http-check expect status 200\n"
            # Which node answered: the test checks that both did.
            "    http-response set-header X-Served-By %s\n"
            f"{servers}\n"
        )
        self.start("haproxy", [HAPROXY, "-db", "-f", str(cfg)])

    def start_node(self, name: str, workers: int = 2, **env: str) -> None:
        self.start(
            f"node-{name}",
            [
                GUNICORN,
                "tdm_site.wsgi",
                "--config",
                "gunicorn.conf.py",
                "--workers",
                str(workers),
                "--timeout",
                "30",
                "--bind",
                f"{HOST}:{self.port_of(name)}",
            ],
            env=self.site_env(**env),
        )

    def start_worker(self) -> None:
        self.start(
            "db_worker",
            [sys.executable, "manage.py", "db_worker", "--interval", "0.2", "--no-reload"],
            env=self.site_env(),
        )

    def wait_http(self, url: str, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                response = requests.get(url, timeout=2)
                if response.status_code == 200:
                    return
                last = f"status {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            self.assert_running()
            time.sleep(0.2)
        raise AssertionError(
            f"{url} did not answer 200 within {timeout} s ({last})\n{self.tails()}"
        )

    def wait_port(self, port: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((HOST, port)) == 0:
                    return
            self.assert_running()
            time.sleep(0.1)
        raise AssertionError(f"nothing listens on {port} after {timeout} s\n{self.tails()}")

    def assert_running(self, *names: str) -> None:
        for name in names or list(self.processes):
            process = self.processes[name]
            if process.popen.poll() is not None and not process.killed:
                raise AssertionError(
                    f"{name} exited with {process.popen.returncode}\n{process.tail()}"
                )

    def kill_node(self, name: str) -> None:
        process = self.processes[f"node-{name}"]
        process.killed = True
        process.kill()

    def tails(self) -> str:
        return "\n".join(process.tail() for process in self.processes.values())

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Read the test database directly (not through PgBouncer): what is really stored."""
        with psycopg.connect(self.direct_url) as conn:
            return conn.execute(query, params).fetchall()

    def close(self) -> None:
        # SIGTERM to all at once, a short grace together, then SIGKILL to what is left.
        for process in self.processes.values():
            process.terminate()
        deadline = time.monotonic() + 3
        for process in self.processes.values():
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            process.kill()
        if self.created_database:
            with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.created_database = False
        shutil.rmtree(self.tmp, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise AssertionError("running as root, but neither a postgres nor a nobody user exists")
