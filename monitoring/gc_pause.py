"""Python's cyclic garbage collector held off while bulk work builds many long-lived
objects (an import's rows and snapshots, a re-judge's plain records).

Why: the collector runs a full pass whenever the objects that survived earlier passes have
grown by a quarter, and each full pass walks every object in the process. A 100,000-row
levels import creates over a million objects that all live until its end, so the collector
walked the whole heap over a dozen times and found almost nothing to free (measured: ~3 s of
a 16 s import on PostgreSQL, and peak memory the same with it off). Nothing here makes
cycles worth collecting before the work ends; reference counting still frees everything
else at once, and the collector resumes, on its usual schedule, when the work is done.

Before a fork (``split_work``) the objects are also frozen: a helper that walks them would
write to every page it shares with its parent, which then copies them all.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off inside (nested uses and threads count: it resumes when the last
    one leaves), as it was before once they all have."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


@contextmanager
def frozen_for_fork() -> Iterator[None]:
    """Every object this process holds kept out of the collector's walks (``gc.freeze``)
    in here, so a process forked inside never touches their pages for the collector; thawed
    on leaving, unless something had frozen objects before (then they stay as it left them)."""
    already = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not already:
            gc.unfreeze()
