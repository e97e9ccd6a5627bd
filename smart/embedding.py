"""Letting the SMART pages work inside an EHR's iframe, and nothing else.

Cookies: an iframe on the EHR's site is a third-party context, where the site's own
``SameSite=Lax`` cookies are not sent. Under ``/smart/`` only, a request that carries no
session cookie of the site gets its own pair (``smart_sessionid``, ``smart_csrftoken``)
with ``Path=/smart/; SameSite=None; Secure; Partitioned``: the rest of the site never
receives them, and its own cookies keep ``SameSite=Lax``. A top-level visit that has the
site's cookies keeps using them.

Framing: SMART views are wrapped by ``frameable``: ``X-Frame-Options`` is left off and CSP
``frame-ancestors`` lists the origins registered for the active EHR servers (or ``'none'``).
Every other response keeps ``DENY`` / ``frame-ancestors 'none'``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http.cookies import Morsel

from django.conf import settings
from django.http import HttpRequest, HttpResponse

PREFIX = "/smart/"


def _pairs() -> list[tuple[str, str]]:
    """(the site's cookie name, the SMART routes' cookie name)."""
    return [
        (settings.SESSION_COOKIE_NAME, "smart_sessionid"),
        (settings.CSRF_COOKIE_NAME, "smart_csrftoken"),
    ]


class SmartCookieMiddleware:
    """Sits outside the session and CSRF middleware: renames their cookies on the way in and
    out for ``/smart/`` requests that do not carry the site's own session cookie."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        own = (
            request.path.startswith(PREFIX) and settings.SESSION_COOKIE_NAME not in request.COOKIES
        )
        if own:
            for site_name, smart_name in _pairs():
                request.COOKIES.pop(site_name, None)
                if smart_name in request.COOKIES:
                    request.COOKIES[site_name] = request.COOKIES[smart_name]
        response = self.get_response(request)
        if own:
            secure = settings.SESSION_COOKIE_SECURE
            for site_name, smart_name in _pairs():
                morsel = response.cookies.pop(site_name, None)
                if morsel is None:
                    continue
                response.set_cookie(
                    smart_name,
                    morsel.value,
                    max_age=morsel["max-age"] or None,
                    expires=morsel["expires"] or None,
                    path=PREFIX,
                    secure=secure,
                    httponly=True,
                    # Browsers drop SameSite=None without Secure: plain-HTTP development
                    # keeps Lax (top-level launches still work there).
                    samesite="None" if secure else "Lax",
                )
                if secure:
                    response.cookies[smart_name] = _partitioned(response.cookies[smart_name])
        return response


class _PartitionedMorsel(Morsel):
    """A cookie with CHIPS' ``Partitioned`` attribute (Python's Morsel learns it only in
    3.14): browsers that block third-party cookies (Chrome's incognito, and by default in
    more and more browsers) still keep a partitioned one, for this EHR's site only."""

    def OutputString(self, attrs=None) -> str:  # noqa: N802 - the base class's name
        return super().OutputString(attrs) + "; Partitioned"


def _partitioned(morsel: Morsel) -> Morsel:
    copy = _PartitionedMorsel()
    copy.update(morsel)
    copy.set(morsel.key, morsel.value, morsel.coded_value)
    return copy


def frame_ancestors() -> list[str]:
    from .models import SmartServer

    origins: list[str] = []
    for server in SmartServer.objects.filter(active=True).only("frame_origins"):
        origins += [o for o in server.origins() if o not in origins]
    return origins


def frameable(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let the registered EHR origins frame this view's responses (and only those)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        origins = frame_ancestors()
        response.xframe_options_exempt = bool(origins)
        response._csp_replace = {"frame-ancestors": ["'self'", *origins] if origins else ["'none'"]}
        return response

    return wrapper
