"""Settings for tdm_site: one file, driven by environment variables.

Defaults are safe for production (DEBUG off, HTTPS-only cookies, HSTS) except where a
development or test run needs otherwise; README.md lists every variable.
"""

import importlib.util
import os
import re
from datetime import time, timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_clock(name: str, default: str) -> time:
    """A local clock time, 24-hour ``HH:MM`` (``2:00`` is read as ``02:00``)."""
    raw = os.environ.get(name, "").strip() or default
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", raw)
    if match is None:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a clock time; use 24-hour HH:MM, for example 02:00."
        )
    return time(int(match[1]), int(match[2]))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

# pytest exports PYTEST_VERSION for the length of every session (pytest >= 8.2, documented
# for exactly this purpose). Under pytest we allow the development key and plain-HTTP
# defaults, so that a bare `pytest` works with no environment set while DEBUG stays off
# (Django forces DEBUG off in tests anyway). A production process never runs inside pytest.
TESTING = "PYTEST_VERSION" in os.environ

# ---------------------------------------------------------------------------------------
# Secret key
DEV_SECRET_KEY = "django-insecure-tdm-development-only-key-not-for-any-real-deployment"  # noqa: S105 - public by design, refused in production
SECRET_KEY = os.environ.get("SECRET_KEY", "").strip()
if not SECRET_KEY or SECRET_KEY == DEV_SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off the SECRET_KEY environment variable must "
            'hold a long random value (for example: python -c "import secrets; '
            'print(secrets.token_urlsafe(50))"). Set DEBUG=1 for local development only.'
        )
    SECRET_KEY = DEV_SECRET_KEY
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

CLINIC_NAME = os.environ.get("CLINIC_NAME", "Nephrology clinic")
# The population PK model for forecasts unless a patient has another (a shipped model's id).
PK_DEFAULT_MODEL = os.environ.get("PK_DEFAULT_MODEL", "woillard2011")
# Model-informed forecasts on or off for the whole site (off: the proportional rule only).
PK_FORECASTS = env_bool("PK_FORECASTS", True)

# ---------------------------------------------------------------------------------------
# Applications
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "simple_history",
    "axes",
    "csp",
    # Before django_tasks_db: of two apps with the same management command, the first listed
    # wins, and `manage.py db_worker` must be monitoring's (the queue plus the worker duties).
    "monitoring",
    "django_tasks",
    "django_tasks_db",
    # SMART on FHIR launch from the hospital record (smart/, docs/smart-on-fhir.md).
    "smart",
]
# The Fake EHR that the SMART tests run against (tests/fake_ehr): an OAuth server built with
# django-oauth-toolkit, a test-only package (requirements-dev.txt). Never in production.
if TESTING and importlib.util.find_spec("oauth2_provider") is not None:
    INSTALLED_APPS += ["oauth2_provider", "tests.fake_ehr"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Pages compressed (a patient page shrinks from ~85 KB to ~12 KB). BREACH: Django pads
    # each compressed response with random bytes and masks the CSRF token per response.
    # Static files come precompressed from whitenoise and are left alone. Django's, but a
    # streamed page marked flush_each_chunk (the batch print) is sent chunk by chunk.
    "monitoring.middleware.GZipMiddleware",
    # Content-Security-Policy and Permissions-Policy on every response, the 503 page included.
    "csp.middleware.CSPMiddleware",
    "monitoring.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Above sessions and auth, which query the database: an unreachable database becomes a
    # plain 503 page, a refused write (IntegrityError) a 409, never a 500 with a traceback.
    "monitoring.middleware.DatabaseErrorMiddleware",
    # SMART pages inside an EHR's iframe: their own Path=/smart/; SameSite=None session and
    # CSRF cookies (smart/embedding.py); the site's cookies stay Lax. Outside sessions/CSRF.
    "smart.embedding.SmartCookieMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Above the CSRF check, which parses the body: an upload declared over the limit is
    # refused before a byte of it is read (monitoring.uploads).
    "monitoring.uploads.UploadSizeMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "monitoring.middleware.SessionIdleMiddleware",
    # Below authentication: answers to a signed-in user are never cached (no-store, private).
    "monitoring.middleware.PrivateResponseMiddleware",
    # Every view requires a logged-in user unless decorated with @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Inside messages and htmx: a login redirect for an htmx request becomes HX-Redirect.
    "monitoring.middleware.SessionEndedMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tdm_site.urls"
WSGI_APPLICATION = "tdm_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        # template_partials' app config swaps APP_DIRS for its own (cached) loader chain.
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tdm_site.context_processors.clinic",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# ---------------------------------------------------------------------------------------
# Database: SQLite by default, PostgreSQL (or anything dj-database-url knows) by URL.
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
_is_postgres = DATABASE_URL.split(":", 1)[0] in {"postgres", "postgresql", "pgsql"}
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=60 if _is_postgres else 0,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes share the file (web server and worker): WAL lets pages read while an
    # import writes; a write transaction takes its lock at BEGIN (IMMEDIATE) instead of failing
    # halfway when it upgrades from read to write; and a writer waits up to SQLITE_BUSY_TIMEOUT
    # seconds for another's short transaction instead of answering "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": float(os.environ.get("SQLITE_BUSY_TIMEOUT", "20")),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# Several web nodes and workers on one PostgreSQL (docs/deployment.md): either Django's own
# connection pool in each process (DATABASE_POOL), or PgBouncer in transaction mode in front
# of the server (DATABASE_PGBOUNCER), never both (a pool of pooled connections only hides
# which one limits). Sessions live in the database (Django's default engine), so any node
# serves any request given the same SECRET_KEY.
DATABASE_POOL = env_bool("DATABASE_POOL", False)
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", False)
if (DATABASE_POOL or DATABASE_PGBOUNCER) and not _is_postgres:
    raise ImproperlyConfigured(
        "DATABASE_POOL and DATABASE_PGBOUNCER need a PostgreSQL DATABASE_URL "
        f"(postgres://...), not {DATABASE_URL.split(':', 1)[0]}://."
    )
if DATABASE_POOL and DATABASE_PGBOUNCER:
    raise ImproperlyConfigured(
        "DATABASE_POOL=1 and DATABASE_PGBOUNCER=1 together: use one. Behind PgBouncer, "
        "PgBouncer is the pool; set DATABASE_POOL=0."
    )
if os.environ.get("DATABASE_POOL_SIZE", "").strip() and not DATABASE_POOL:
    raise ImproperlyConfigured("DATABASE_POOL_SIZE is set but DATABASE_POOL is off.")
if DATABASE_POOL:
    DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 4)
    if DATABASE_POOL_SIZE < 1:
        raise ImproperlyConfigured(f"DATABASE_POOL_SIZE={DATABASE_POOL_SIZE} must be 1 or more.")
    # Per process: a sync gunicorn worker needs one connection, a worker's duty thread one
    # more. The pool keeps the connections, so Django must not (CONN_MAX_AGE 0 is required).
    # A request waits at most 10 s for a free connection, then gets the 503 page (well within
    # gunicorn's 30 s timeout).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": 10,
    }
if DATABASE_PGBOUNCER:
    # Transaction mode hands the server connection to another client at each COMMIT: a named
    # (server-side) cursor, which .iterator() opens and reads across transactions, would be
    # gone (Django's docs: "Transaction pooling and server-side cursors"). PgBouncer keeps
    # the server connections; Django opens a cheap client connection per request. Prepared
    # statements are already off (Django's psycopg default, prepare_threshold None).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Background jobs: django-tasks with its database backend, so jobs live in the same database
# (no broker). Workers: `manage.py db_worker` (monitoring's own, which also runs the worker
# duties of monitoring/worker_duties.py).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Seconds between two rounds of worker duties (stale-job sweep, daily schedule).
WORKER_DUTY_INTERVAL = float(os.environ.get("WORKER_DUTY_INTERVAL", "15"))
# The daily re-judge (monitoring/schedule.py): once the clinic's local time (TIME_ZONE) has
# passed this, the first worker to look claims the day and re-judges every active patient.
DAILY_REFRESH_TIME = env_clock("DAILY_REFRESH_TIME", "02:00")
# A running import job whose worker has written no progress for this many seconds is given to
# another worker (monitoring.jobs.sweep_stale_jobs). Keep it above the longest write
# transaction of an import: progress written inside it is not seen until it commits.
IMPORT_JOB_STALE_SECONDS = env_int("IMPORT_JOB_STALE_SECONDS", 120)
# How often an open job page asks for the job's state (milliseconds, at least 100).
IMPORT_JOB_POLL_MS = max(100, env_int("IMPORT_JOB_POLL_MS", 1000))
# Re-judging many patients (a large levels import, the daily re-judge) runs half of them in
# a forked helper process on a second core (monitoring/split_work.py) from this many patients
# on; REJUDGE_PROCESSES=1 keeps it in one process.
REJUDGE_PROCESSES = min(2, max(1, env_int("REJUDGE_PROCESSES", 2)))
REJUDGE_SPLIT_MIN = max(2, env_int("REJUDGE_SPLIT_MIN", 1000))

# ---------------------------------------------------------------------------------------
# Authentication
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Login lockout (django-axes, policy in monitoring.lockout): after LOGIN_FAILURE_LIMIT failed
# logins for one username (from any address), or LOGIN_ADDRESS_FAILURE_LIMIT failures from one
# client address (any accounts: a clinic behind one NAT shares it), further attempts are
# refused for LOGIN_COOLOFF_MINUTES (the page says so, with status 429). A successful login
# clears that user's own failures only; every failure stays in axes' AccessFailureLog.
# Staff can lift a lockout at once with `manage.py axes_reset_username NAME` (docs/security.md).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # must be first: refuses locked-out attempts
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "monitoring.lockout.LoginLockoutHandler"
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
# Records are kept per (username, address); the handler counts them per username and per
# address.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "monitoring.views.audit.lockout_response"
# The client address behind PROXY_COUNT trusted reverse proxies (X-Forwarded-For); also
# recorded in the patient access log. Default: one proxy in production, none in development.
PROXY_COUNT = env_int("PROXY_COUNT", 0 if (DEBUG or TESTING) else 1)
AXES_CLIENT_IP_CALLABLE = "monitoring.audit.client_ip"
AXES_USERNAME_CALLABLE = "monitoring.audit.lockout_username"

# ---------------------------------------------------------------------------------------
# Internationalisation and time: store UTC, show the site's zone.
LANGUAGE_CODE = "en-gb"
# ISO dates everywhere, the admin's widgets and lists included (tdm_site/formats/).
FORMAT_MODULE_PATH = ["tdm_site.formats"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------------------
# Static files, served by WhiteNoise. The hashed manifest storage needs `collectstatic`
# first, so it is on by default only where that has been run: production (DEBUG off,
# outside pytest).
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", not (DEBUG or TESTING))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# In development and tests WhiteNoise serves straight from the finders (no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG or TESTING
WHITENOISE_AUTOREFRESH = DEBUG or TESTING
MEDIA_ROOT = BASE_DIR / "media"

# Uploads (CSV/HL7 files) are small; refuse anything bigger than 5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Files are kept in memory up to UPLOAD_MAX_BYTES and never written to a temporary file; a
# larger one is dropped as it arrives (monitoring.uploads).
UPLOAD_MAX_BYTES = 5 * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["monitoring.uploads.LimitedMemoryUploadHandler"]
# Messages in one POST to the HL7 interface (/hl7/inbound/), refused with 413 before any is
# stored. They are imported inside the request, one after the other, and gunicorn kills a
# request at 30 s (a killed request has stored some messages and acknowledged none).
# The forecast refit is left to a background task (tasks.refit_forecasts), so a message costs
# its write and re-judge only. Measured (python -m bench.hl7, 2-core machine, forecasts on):
# 42 and 27 messages/s on SQLite, 32 and 17 on PostgreSQL (two runs, load 2 and 3); 13/s on
# PostgreSQL under a load of 6 (the same work, measured before with PK_FORECASTS=0). 100
# messages: 3 to 6 s, under 8 s at 13/s, so a capped request keeps over half the timeout
# (docs/data-formats.md A5). Was 10 while each message refitted in the request (0.6/s).
HL7_MAX_MESSAGES_PER_REQUEST = env_int("HL7_MAX_MESSAGES_PER_REQUEST", 100)

# ---------------------------------------------------------------------------------------
# Security. HTTPS is assumed unless DEBUG is on or the run is a test (the Django test client
# and the Playwright live server speak plain HTTP); each switch can be overridden.
_https = not (DEBUG or TESTING)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _https)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", _https)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
# The app runs behind a TLS-terminating reverse proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: htmx sends the token from the page (hx-headers in base.html).
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Idle timeout: a session ends after SESSION_IDLE_SECONDS without activity (shared clinic
# workstations). monitoring.middleware.SessionIdleMiddleware pushes the expiry forward at most
# once a minute, so most pages cost no session write.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_SECONDS", 1800)
SESSION_TOUCH_SECONDS = 60
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Content-Security-Policy (django-csp 4): nothing but this site's own files. Scripts only from
# this site (no inline script, no eval: figure data travels by json_script, code lives in
# static/js/). Styles allow 'unsafe-inline' because plotly.js (4.x) inserts <style> rules for
# its hover labels and mode bar; scripts never do. data:/blob: images are plotly's
# "download as PNG". frame-ancestors 'none' repeats X-Frame-Options DENY for new browsers.
_SELF, _NONE = "'self'", "'none'"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [_NONE],
        "script-src": [_SELF],
        "style-src": [_SELF, "'unsafe-inline'"],
        "img-src": [_SELF, "data:", "blob:"],
        "font-src": [_SELF],
        "connect-src": [_SELF],
        "manifest-src": [_SELF],
        "form-action": [_SELF],
        "frame-ancestors": [_NONE],
        "base-uri": [_NONE],
        "object-src": [_NONE],
    },
}
# Browser features the site never uses are switched off (monitoring.middleware).
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
}

# ---------------------------------------------------------------------------------------
# Logging: console only (the process manager collects it). Django never logs request
# bodies, and no handler here mails or dumps the request (unlike AdminEmailHandler).
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "filters": {
        # A refused write's message can quote the row (patient data): class and constraint only.
        "redact_database_values": {"()": "monitoring.log_filters.RedactDatabaseValues"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_database_values"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "INFO"},
        # django-axes: failed logins and lockouts (WARNING) are kept; its start-up banner and
        # per-login INFO lines (with masked names) are noise.
        "axes": {"level": "WARNING"},
    },
}

# Tests create many users: a fast hasher keeps fixtures cheap (never used outside pytest).
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
