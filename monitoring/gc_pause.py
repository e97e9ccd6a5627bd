"""Python's cyclic garbage collector held off while work builds many long-lived objects:
a levels file's rows and snapshots (``run_csv_import``), a re-judge's plain records
(``patients_reassess``, for a file or a form alike: for one patient it costs nothing).

Why: the collector runs a full pass whenever the objects that survived earlier passes have
grown by a quarter, and each full pass walks every object in the process. A 100,000-row
levels import creates over a million objects that all live until its end, so the collector
walked the whole heap over a dozen times and found almost nothing to free: measured, 3.4 s
of a 16 s import on PostgreSQL, with the same peak memory without it. A helper process
forked meanwhile (``split_work``) inherits the pause, so it never walks, and so never
copies, the pages it shares with this process.

What it asks of the code inside: no reference cycle per row that turns to garbage while
the work goes on, which only the collector could free (the new results' snapshots point at
themselves, ``origin``, but they live to the end of the file, when the collector resumes).
Reference counting frees everything else at once. The one cycle a bad row used to make, a
caught error keeping its traceback (whose frames hold the row's ``Collector``, which holds
the error), is cut where errors are kept (``importers.kinds.kept``): tests read 20,000 bad
rows with the collector off and check that nothing is left behind. The row-by-row kinds
(patients, regimens, drugs, labs) are not held off: their model saves leave a dozen objects
of cyclic garbage a row.
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
