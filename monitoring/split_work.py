"""Work over many patients on the machine's second core: half of the items (every other
one) in a forked helper process, half in this one, the answers joined (reads and
computation only: the helper never writes).

Why a fork: re-judging the 5,000 patients of a large import is Python work (reading their
records into plain rows, running the rules) that holds one core while the other idles.
A forked helper starts with everything this process has loaded (code, settings, the
import's unsaved troughs), so nothing but its answer crosses between the processes.

What keeps it safe:
- The helper reads the database through a connection of its own, so it sees committed
  data only. ``usable`` therefore refuses while this process has uncommitted writes the
  helper would miss: callers say whether theirs are (``records_committed``), and any
  enclosing transaction (a caller's, a test's) is taken to have some. An in-memory SQLite
  database cannot be shared at all.
- The helper never touches the connections it inherits: closing one would end this
  process's session (libpq tells the server goodbye), so it keeps them referenced and
  leaves with ``os._exit``, which runs no finaliser.
- It writes nothing: it returns plain values through a pipe, and this process writes them
  in its own transaction.
- This process never depends on it. Should the helper fail (no database connection left,
  say), die, or not answer in time (a fork can copy a lock that another thread of this
  process held at that instant, a heartbeat inside the database driver, and wait on it for
  ever), its half is judged here after all, and the failure is logged. So the answer is
  always the one process's, at worst as slowly.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.conf import settings
from django.db import connection, connections

from . import gc_pause

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)

# Kept referenced in the helper so that no finaliser closes the parent's sessions.
_inherited: list = []


def usable(count: int, *, records_committed: bool) -> bool:
    """Whether ``count`` items are worth a helper process, and one may run here."""
    if (
        settings.REJUDGE_PROCESSES < 2
        or count < max(settings.REJUDGE_SPLIT_MIN, 2)
        or not hasattr(os, "fork")
    ):
        return False
    if not records_committed or len(connection.atomic_blocks) > 1:
        # Writes of this transaction, or of an enclosing one, that a helper could not see.
        return False
    return not (connection.vendor == "sqlite" and connection.is_in_memory_db())


def in_two(func: Callable[[Sequence[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``func(items)``, computed as ``func(every other item) + func(the others)`` with the
    others in a forked helper: the answers of this process's share, then the helper's.
    ``func`` may read the database; it must not write.

    Every other item, not halves: the work per item follows the order the items come in
    (a seed's patients, a file's), and halves by position were measured at 4.9 and 3.9 s,
    the whole waiting on the longer. The garbage collector is off in both processes
    meanwhile (``gc_pause``): measured, a helper whose collector walked the objects it
    shares with this process was a third slower, copying their pages."""
    mine, theirs = items[0::2], items[1::2]
    with gc_pause.collector_paused():
        return _in_two(func, mine, theirs, len(items))


def _in_two(func, mine, theirs, count: int) -> list:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper's coverage is not collected
        _helper(func, theirs, read_end, write_end)
    os.close(write_end)
    logger.info("%s items judged in two processes (helper %s)", count, pid)
    started = time.monotonic()
    ok = False
    try:
        answer = func(mine)
        # The helper has as much to do: give it as long again, and more, before judging
        # its half here.
        patience = max(HELPER_GRACE_SECONDS, 2 * (time.monotonic() - started))
        ok, value = _answer(read_end, patience)
    finally:
        # Always collect the helper, so none is left behind: one without a usable answer
        # (or whose answer is no longer wanted, this half having failed) is stopped first.
        if not ok:
            os.kill(pid, signal.SIGKILL)
        os.close(read_end)
        os.waitpid(pid, 0)
    if ok:
        return answer + value
    logger.warning("the helper process gave no answer (%s): its half is judged here", value)
    return answer + func(theirs)


# How long the helper may take beyond twice this process's own half before its half is
# judged here instead (a helper that hung on a copied lock).
HELPER_GRACE_SECONDS = 30.0


def _answer(read_end: int, patience: float) -> tuple[bool, object]:
    """(True, the helper's answer), or (False, why there is none)."""
    chunks = []
    deadline = time.monotonic() + patience
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
            return False, f"no answer after {patience:.1f} s"
        chunk = os.read(read_end, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    if not chunks:
        return False, "it ended without an answer"
    ok, value = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's, via a pipe
    return (True, value) if ok else (False, f"it failed:\n{value}")


def _helper(func, items, read_end: int, write_end: int) -> None:  # pragma: no cover
    code = 1
    try:
        os.close(read_end)
        _own_connections()
        try:
            payload = pickle.dumps((True, func(items)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - every failure is reported to the parent
            payload = pickle.dumps((False, traceback.format_exc()))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        code = 0
    finally:
        os._exit(code)


def _own_connections() -> None:  # pragma: no cover - runs in the helper
    """Fresh, unopened connections with the same settings (the test database's too) but no
    pool: the inherited pool's connections are the parent's sessions. The inherited
    connections stay referenced and untouched."""
    for alias in connections:
        inherited = connections[alias]
        _inherited.append(inherited)
        options = {k: v for k, v in inherited.settings_dict.get("OPTIONS", {}).items()}
        options.pop("pool", None)
        own = {**inherited.settings_dict, "OPTIONS": options}
        connections[alias] = inherited.__class__(own, alias)
