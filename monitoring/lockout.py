"""Login lockout policy on top of django-axes' database handler.

Locks by **username** (``AXES_FAILURE_LIMIT`` failures from any address), and by
**address** only at a higher limit (``LOGIN_ADDRESS_FAILURE_LIMIT`` failures against any
accounts), so a clinic behind one NAT address is not locked out because one person mistyped,
while password spraying from one address is still stopped. A successful login clears only
the failures recorded against the account that signed in: signing into one's own account
between guesses must not reset the count of the account under attack. Every failure is
also kept in axes' ``AccessFailureLog`` (``AXES_ENABLE_ACCESS_FAILURE_LOG``), which the
cool-off clean-up and a success do not touch.
"""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import QuerySet, Sum
from django.http import HttpRequest


def _failures(attempts: QuerySet[AccessAttempt]) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class LoginLockoutHandler(AxesDatabaseHandler):
    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """The count axes compares with ``AXES_FAILURE_LIMIT``: the account's own failures,
        or the limit itself once the address has reached its higher limit."""
        recent = AccessAttempt.objects.all()
        if settings.AXES_COOLOFF_TIME is not None:
            recent = recent.filter(attempt_time__gte=get_cool_off_threshold(request))
        username = get_client_username(request, credentials)
        by_username = _failures(recent.filter(username=username)) if username else 0
        by_address = _failures(recent.filter(ip_address=request.axes_ip_address))
        if by_address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(by_username, settings.AXES_FAILURE_LIMIT)
        return by_username

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """On a successful login: the failures of that account only, from any address."""
        username = get_client_username(request, credentials)
        if not username:
            return 0
        count, _ = AccessAttempt.objects.filter(username=username).delete()
        return count
