"""Site-wide response rules: the Permissions-Policy header, plain answers instead of a
server error when the database is unreachable or refuses a write, and gzip that lets a
streamed page show its beginning at once.

Django turns an exception raised anywhere below a middleware into a 500 response before the
middleware sees it (each layer is wrapped by ``convert_exception_to_response``), and only a
view's own exceptions reach ``process_exception``. So database errors are caught twice: in
``process_exception`` for views, and for the layers in between (the session and user
lookups run in middleware) by a ``got_request_exception`` receiver that marks the request,
so that ``DatabaseErrorMiddleware`` replaces the 500 it gets back.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from gzip import GzipFile
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.core.signals import got_request_exception
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware import gzip
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import StreamingBuffer
from django_htmx.http import HttpResponseClientRedirect

logger = logging.getLogger(__name__)

UNAVAILABLE = (OperationalError, InterfaceError)
REFUSED = (IntegrityError, DataError)
_MARK = "_tdm_database_error"

CONFLICT_PAGE = """<!doctype html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} ({status}) · Tacrolimus TDM</title>
  <link rel="stylesheet" href="/static/css/app.css">
</head>
<body>
  <main id="main" class="error-page">
    <h1>{title}</h1>
    <p>{message}</p>
    <p><a href="/">Return to the start page</a></p>
  </main>
</body>
</html>
"""


FLUSH_EACH_CHUNK = "flush_each_chunk"


def gzip_flushed(chunks: Iterable[bytes], *, max_random_bytes: int) -> Iterator[bytes]:
    """Django's ``compress_sequence`` with a sync flush after every chunk: zlib otherwise
    keeps tens of kilobytes before it emits any, and a page streamed so as to show its
    beginning at once would reach the browser no sooner than unstreamed. A random-length
    file name pads the answer, as Django's does (BREACH)."""
    buf = StreamingBuffer()
    filename = b"a" * secrets.randbelow(max_random_bytes) if max_random_bytes else None
    with GzipFile(filename=filename, mode="wb", compresslevel=6, fileobj=buf, mtime=0) as zfile:
        yield buf.read()
        for chunk in chunks:
            zfile.write(chunk)
            zfile.flush()  # Z_SYNC_FLUSH: everything so far, decodable now
            yield buf.read()
    yield buf.read()


class GZipMiddleware(gzip.GZipMiddleware):
    """Django's, except for a streamed response marked ``flush_each_chunk`` (the batch
    print): each chunk is compressed and sent on its own (``gzip_flushed``). Other streamed
    answers (CSV exports, written line by line) keep Django's buffering, which compresses
    them better."""

    def process_response(self, request: HttpRequest, response):
        if not (getattr(response, FLUSH_EACH_CHUNK, False) and response.streaming):
            return super().process_response(request, response)
        if response.is_async or response.has_header("Content-Encoding"):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if not gzip.re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            return response
        response.streaming_content = gzip_flushed(
            response.streaming_content, max_random_bytes=self.max_random_bytes
        )
        response.headers.pop("Content-Length", None)
        response.headers["Content-Encoding"] = "gzip"
        return response


class PermissionsPolicyMiddleware:
    """Permissions-Policy from settings.PERMISSIONS_POLICY: ``{feature: [origins]}``; an empty
    list switches the feature off for every origin (``camera=()``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        policy = getattr(settings, "PERMISSIONS_POLICY", {})
        self.header = ", ".join(
            f"{feature}=({' '.join(origins)})" for feature, origins in policy.items()
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.header and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = self.header
        return response


@receiver(got_request_exception, dispatch_uid="monitoring.middleware.mark_database_error")
def _mark_database_error(sender, request: HttpRequest | None = None, **kwargs) -> None:
    # Sent while Django handles the exception, so it is the one in sys.exc_info().
    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, UNAVAILABLE + REFUSED):
        setattr(request, _MARK, exc)


def _page(status: int, title: str, message: str) -> HttpResponse:
    html = CONFLICT_PAGE.format(status=status, title=title, message=message)
    return HttpResponse(html, status=status, content_type="text/html; charset=utf-8")


def database_error_response(exc: BaseException) -> HttpResponse:
    """The answer to a database error: no traceback, no SQL, no values."""
    if isinstance(exc, UNAVAILABLE):
        # Connection trouble is an operator's matter; its text names hosts, not patients.
        logger.error("Database unavailable: %s: %s", type(exc).__name__, exc)
        response = HttpResponse(
            render_to_string("503.html"), status=503, content_type="text/html; charset=utf-8"
        )
        response["Retry-After"] = "30"
        return response
    # A refused write can quote the offending values (e.g. "Key (mrn)=(...) already
    # exists"), which may be patient data: only the constraint class goes to the log.
    logger.warning("Database refused a write: %s", type(exc).__name__)
    if isinstance(exc, IntegrityError):
        return _page(
            409,
            "Not saved: conflicting record",
            "This change conflicts with a record that already exists (for example, a "
            "form sent twice, or someone else saved the same result first). Nothing "
            "was saved. Go back, reload the page and check before trying again.",
        )
    return _page(
        400,
        "Not saved: value out of range",
        "A value was too long or too large to store. Nothing was saved. Go back and "
        "check the values entered.",
    )


class DatabaseErrorMiddleware:
    """Unreachable database → 503 with the plain 503.html; a write the database refuses
    (IntegrityError → 409, DataError → 400) → a plain page saying nothing was saved."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        except UNAVAILABLE + REFUSED as exc:  # pragma: no cover - Django converts these first
            return database_error_response(exc)
        exc = getattr(request, _MARK, None)
        if exc is not None and response.status_code >= 500:
            return database_error_response(exc)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, UNAVAILABLE + REFUSED):
            return database_error_response(exception)
        return None


@receiver(user_logged_in)
def _start_idle_clock(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """Signing in saves the session anyway: start the idle clock there, so the first page
    after it needs no extra session write."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SessionIdleMiddleware.key] = int(time.time())


class SessionIdleMiddleware:
    """The idle timeout without a session write on every request. The session's expiry is
    pushed forward (by saving it) only when SESSION_TOUCH_SECONDS have passed since the last
    push, so a page costs no session UPDATE most of the time and a session still ends after
    SESSION_COOKIE_AGE seconds without activity (give or take the touch interval)."""

    key = "_idle_touch"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.interval = settings.SESSION_TOUCH_SECONDS

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if session is not None and user is not None and user.is_authenticated:
            now = int(time.time())
            if now - session.get(self.key, 0) >= self.interval:
                session[self.key] = now  # modified: SessionMiddleware saves, expiry moves
        return self.get_response(request)


SESSION_ENDED_MESSAGE = (
    "Your session had ended, so what you sent was not saved. Log in, then enter it again."
)


def _same_site_path(request: HttpRequest, url: str) -> str:
    """``url``'s path and query when it points at this site, else ""."""
    if not url or not url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return ""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class SessionEndedMiddleware:
    """What the login redirect of ``LoginRequiredMiddleware`` becomes when the session has
    ended while a page was open.

    - An htmx request would follow the redirect inside the page and swap the login form into
      the table (under a header still saying "Signed in as"): it gets ``HX-Redirect``, a full
      page load of the login page instead.
    - After signing in the user returns to the page they were on (``HX-Current-URL``, or the
      ``Referer`` of a plain form post), not to the fragment or form URL that was refused.
    - A refused POST carried something the user typed: the login page says it was not saved.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 302 or getattr(request, "user", None) is None:
            return response
        if request.user.is_authenticated:
            return response
        login_path = resolve_url(settings.LOGIN_URL)
        if urlsplit(response.get("Location", "")).path != login_path:
            return response
        htmx = bool(getattr(request, "htmx", False))
        was_on = ""
        if htmx:
            was_on = _same_site_path(request, request.headers.get("HX-Current-URL", ""))
        elif request.method == "POST":
            was_on = _same_site_path(request, request.headers.get("Referer", ""))
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            messages.warning(request, SESSION_ENDED_MESSAGE)
        if not was_on and not htmx:
            return response
        login = redirect_to_login(was_on or request.get_full_path(), login_path)
        if htmx:
            return HttpResponseClientRedirect(login["Location"])
        return login


class PrivateResponseMiddleware:
    """Every answer to a signed-in user is ``Cache-Control: no-store, private``: pages,
    htmx fragments, reports, FHIR bundles and CSV files carry patient data, which no browser
    history cache, disk cache or shared proxy may keep. (Static files are served by
    WhiteNoise above this middleware and keep their year-long caching.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, no_store=True, private=True)
        return response
