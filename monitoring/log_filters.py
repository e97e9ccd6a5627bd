"""A logging filter that keeps the values of a refused write out of the log.

PostgreSQL explains a constraint violation by quoting the row ("Key (mrn)=(...) already
exists"), and Django logs an unhandled exception with its message. Those values can be
patient data, so for database errors the record keeps the exception's class and the
constraint's name only. Imports nothing from the apps: logging is configured before they load.
"""

from __future__ import annotations

import logging
import re

from django.db import DatabaseError, InterfaceError, OperationalError

_CONSTRAINT = re.compile(
    r'constraint "([^"]+)"|CHECK constraint failed: (\w+)|'
    r"UNIQUE constraint failed: ([\w., ]+)"
)


def database_refusal(exc: BaseException) -> str:
    """What may be said of a refused write: the error's class and the constraint's name,
    never its text (which quotes the row). For logs, import reports and HL7 ACKs alike."""
    found = _CONSTRAINT.search(str(exc))
    name = next((g for g in found.groups() if g), "") if found else ""
    return f"{type(exc).__name__}{f' ({name})' if name else ''}"


class RedactDatabaseValues(logging.Filter):
    """Strip messages and tracebacks of database errors that may quote stored values."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # Connection errors name hosts and ports, which operators need; the rest may quote data.
        if isinstance(exc, DatabaseError) and not isinstance(
            exc, OperationalError | InterfaceError
        ):
            record.msg = f"{record.getMessage()} [{database_refusal(exc)}; details withheld]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True
