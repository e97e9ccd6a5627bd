"""A change reason for every history row written inside a block.

The importers save records through one shared path (importers/kinds.py) that knows nothing
of where a file came from. An HL7 interface has no user account (``history_user`` must be a
User, so it stays empty), and yet the history should say which interface wrote a result:
``with change_reason("HL7 interface: LIS")`` puts that text in ``history_change_reason`` of
every historical row created inside the block, through simple-history's
``pre_create_historical_record`` signal. A reason given explicitly (``_change_reason``) wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from simple_history.signals import pre_create_historical_record

# simple-history's default history_change_reason column is a CharField(max_length=100).
MAX_LENGTH = 100

_reason: ContextVar[str] = ContextVar("monitoring_history_change_reason", default="")


@contextmanager
def change_reason(text: str) -> Iterator[None]:
    token = _reason.set(" ".join(text.split())[:MAX_LENGTH])
    try:
        yield
    finally:
        _reason.reset(token)


def current() -> str:
    """The reason of the enclosing block ("" outside one): for history rows written below
    the ORM (a bulk import), which no signal reaches."""
    return _reason.get()


def _apply_reason(sender, history_instance, **kwargs) -> None:
    reason = _reason.get()
    if reason and not getattr(history_instance, "history_change_reason", None):
        history_instance.history_change_reason = reason


pre_create_historical_record.connect(_apply_reason, dispatch_uid="monitoring.history_reason")
