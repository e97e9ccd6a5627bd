"""Read a CSV upload into header-keyed rows: encoding, delimiter and header conventions of
docs/data-formats.md, with every problem reported rather than raised."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field


@dataclass
class Problem:
    row: int  # the file's line number as a spreadsheet shows it: the header is row 1
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        if self.row == 0:
            return f"file: {self.message}"
        return f"row {self.row}, column {self.column}: value '{self.value}': {self.message}"


@dataclass
class Table:
    delimiter: str = ","
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def decimal_comma(self) -> bool:
        return self.delimiter == ";"


def detect_delimiter(header_line: str) -> str:
    """csv.Sniffer limited to the two delimiters we accept; on a tie the header decides."""
    try:
        return csv.Sniffer().sniff(header_line, delimiters=",;").delimiter
    except csv.Error:
        return ";" if header_line.count(";") > header_line.count(",") else ","


def read_table(
    data: bytes,
    *,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    aliases: dict[str, str] | None = None,
    derived: tuple[str, ...] = (),
) -> Table:
    """``aliases`` maps another header name to a column (an export's name for it, e.g.
    ``reported_value`` → ``value``), used when the column itself is absent. ``derived`` are
    the computed columns of the matching export: ignored with one warning, not one each."""
    table = Table()
    aliases = aliases or {}
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        table.problems.append(
            Problem(0, "", "", f"is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV")
        )
        return table
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if not first:
        table.problems.append(Problem(0, "", "", "is empty: a header row is required"))
        return table
    table.delimiter = detect_delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=table.delimiter)
    try:
        _read_rows(reader, table, required, optional, aliases, derived or ())
    except csv.Error as exc:  # e.g. a cell longer than csv.field_size_limit()
        table.problems.append(
            Problem(0, "", "", f"cannot be read as CSV near line {reader.line_num}: {exc}")
        )
    return table


def _read_rows(
    reader,
    table: Table,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    aliases: dict[str, str],
    derived,
) -> None:
    header: list[str] | None = None
    for raw in reader:
        line = reader.line_num
        if header is None:
            if not any(cell.strip() for cell in raw):
                continue
            header = [cell.strip().lower() for cell in raw]
            header = [
                aliases[name] if name in aliases and aliases[name] not in header else name
                for name in header
            ]
            known = set(required) | set(optional)
            computed = [name for name in header if name in derived and name not in known]
            for name in header:
                if name and name not in known and name not in computed:
                    table.warnings.append(f"unknown column '{name}' ignored")
            if computed:
                table.warnings.append(
                    "computed columns ignored (they are recalculated): " + ", ".join(computed)
                )
            for name in required:
                if name not in header:
                    table.problems.append(Problem(1, name, "", "required column is missing"))
            continue
        if not any(cell.strip() for cell in raw):
            continue  # blank lines carry no record
        if len(raw) > len(header) and any(c.strip() for c in raw[len(header) :]):
            table.problems.append(
                Problem(
                    line,
                    "-",
                    table.delimiter.join(raw),
                    f"has {len(raw)} cells but the header has {len(header)}",
                )
            )
            continue
        row = {name: (raw[i].strip() if i < len(raw) else "") for i, name in enumerate(header)}
        table.rows.append((line, row))
    if header is None:
        table.problems.append(Problem(0, "", "", "is empty: a header row is required"))
