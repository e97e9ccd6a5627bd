"""CSV that is safe to open in a spreadsheet (data contract, "Safe for spreadsheets").

A spreadsheet runs a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a formula (and
treats a leading tab or carriage return the same way), so free text from patients' records
or uploaded files could run commands or send data away when an export is opened. Such a
text cell is written with a leading apostrophe, which spreadsheets take as "this is text".
A number (``-5``, ``+3.0``, ``-1e-3``) is written as it is, so values keep their meaning.
Every CSV the site or a command writes goes through ``SafeCsvWriter``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """The cell as written: text a spreadsheet would run gets a leading apostrophe."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeCsvWriter:
    """``csv.writer`` whose every row passes through ``spreadsheet_safe``."""

    def __init__(self, out: Any, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([spreadsheet_safe(cell) for cell in row])
