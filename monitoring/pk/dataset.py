"""NM-TRAN style data sets (the pharmacometrics convention) read into subjects.

Columns are matched case-insensitively: ID, TIME (hours, any origin), EVID (0 observation,
1 dose), AMT, DV, and optionally MDV, CMT, II, ADDL, SS, CENS and one column per model
covariate. A bad row is refused as ``row N, column C: value 'V': message`` with N the line
as a spreadsheet shows it (the header is row 1), like the project's CSV importers.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .modelfile import Model

MISSING = {"", "."}


class DatasetError(ValueError):
    """A data set that cannot be used; ``problems`` lists every bad cell."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Subject:
    """One ID's records in time order (doses before observations at equal times)."""

    id: str
    time: np.ndarray
    evid: np.ndarray
    amt: np.ndarray
    dv: np.ndarray  # NaN where there is no observation
    ii: np.ndarray
    addl: np.ndarray
    ss: np.ndarray
    cens: np.ndarray
    covariates: dict[str, np.ndarray]
    defaulted: list[str] = field(default_factory=list)  # covariates that took the default
    rows: np.ndarray | None = None  # file row of each record
    # Derived from the records (e.g. the dose schedule); records are not changed after reading.
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def observed(self) -> np.ndarray:
        """Indices of the records that are observations."""
        return np.flatnonzero((self.evid == 0) & ~np.isnan(self.dv))

    @property
    def doses(self) -> np.ndarray:
        return np.flatnonzero(self.evid == 1)


def read_dataset(source: str | Path | io.TextIOBase, model: Model) -> list[Subject]:
    """Read a data set for a model; raises DatasetError listing every bad cell."""
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError([f"data set '{path}': cannot be read: {exc}"]) from None
    else:
        text = source.read()
    return parse_dataset(text, model)


def parse_dataset(text: str, model: Model) -> list[Subject]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(["row 1: the data set is empty"]) from None
    columns = {name.strip().upper(): index for index, name in enumerate(header)}
    names = {name.strip().upper(): name.strip() for name in header}
    problems: list[str] = []
    for required in ("ID", "TIME", "AMT", "DV"):
        if required not in columns:
            problems.append(f"row 1, column {required}: missing column")
    if problems:
        raise DatasetError(problems)
    covariate_columns = {name: columns.get(name.upper()) for name in model.covariates}

    parsed: dict[str, list[dict]] = {}
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        record, bad = _parse_row(line, cells, columns, names, covariate_columns)
        problems += bad
        if not bad:
            parsed.setdefault(record["ID"], []).append(record)
    for subject_id, records in parsed.items():
        for previous, record in zip(records, records[1:], strict=False):
            if record["TIME"] < previous["TIME"]:
                problems.append(
                    f"row {record['row']}, column {names['TIME']}: value "
                    f"'{record['raw_time']}': rows out of time order for ID {subject_id} "
                    f"(row {previous['row']} has {previous['raw_time']})"
                )
    if problems:
        raise DatasetError(problems)
    return [_subject(subject_id, records, model) for subject_id, records in parsed.items()]


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()


def _parse_row(line, cells, columns, names, covariate_columns):
    problems: list[str] = []
    record: dict = {"row": line}

    def number(
        column: str, *, required=False, default=None, whole=False, minimum=None, choices=None
    ):
        raw = _cell(cells, columns.get(column))
        where = f"row {line}, column {names.get(column, column)}: value '{raw}'"
        if raw in MISSING:
            if required:
                problems.append(f"{where}: required")
            return default
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{where}: not a number")
            return default
        if not math.isfinite(value):
            problems.append(f"{where}: not a finite number")
            return default
        if whole and value != int(value):
            problems.append(f"{where}: must be a whole number")
            return default
        if choices is not None and value not in choices:
            allowed = " or ".join(str(int(c)) for c in choices)
            problems.append(f"{where}: must be {allowed}")
            return default
        if minimum is not None and value < minimum:
            problems.append(f"{where}: cannot be negative")
            return default
        return value

    subject_id = _cell(cells, columns["ID"])
    if not subject_id:
        problems.append(f"row {line}, column {names['ID']}: value '': required")
    record["ID"] = subject_id
    record["raw_time"] = _cell(cells, columns["TIME"])
    record["TIME"] = number("TIME", required=True, default=0.0)
    amt = number("AMT", default=0.0, minimum=0)
    if "EVID" in columns:
        evid = number("EVID", required=True, default=0, choices=(0, 1))
    else:
        evid = 1 if amt and amt > 0 else 0  # NM-TRAN's rule when EVID is absent
    mdv = number("MDV", default=None, choices=(0, 1))
    record["EVID"] = int(evid or 0)
    record["AMT"] = amt or 0.0
    dv_raw = _cell(cells, columns["DV"])
    record["DV"] = math.nan
    if record["EVID"] == 0 and mdv != 1:
        dv = number("DV", default=None)
        if dv is not None:
            record["DV"] = dv
    if record["EVID"] == 1 and record["AMT"] <= 0:
        problems.append(
            f"row {line}, column {names['AMT']}: value '{_cell(cells, columns['AMT'])}': "
            "a dose (EVID 1) needs a positive AMT"
        )
    record["II"] = number("II", default=0.0, minimum=0)
    record["ADDL"] = number("ADDL", default=0.0, minimum=0, whole=True)
    record["SS"] = number("SS", default=0.0, choices=(0, 1))
    record["CENS"] = number("CENS", default=0.0, choices=(0, 1))
    rate = number("RATE", default=0.0)
    if rate:
        problems.append(
            f"row {line}, column {names['RATE']}: value '{_cell(cells, columns['RATE'])}': "
            "infusions are not supported (oral doses only)"
        )
    if record["EVID"] == 1 and (record["ADDL"] or record["SS"]) and not record["II"]:
        problems.append(
            f"row {line}, column {names.get('II', 'II')}: value "
            f"'{_cell(cells, columns.get('II'))}': ADDL or SS needs an interval II > 0"
        )
    if record["CENS"] and record["EVID"] == 0 and math.isnan(record["DV"]):
        problems.append(
            f"row {line}, column {names['CENS']}: value '1': a censored result "
            f"needs its limit in DV (DV is '{dv_raw}')"
        )
    covariates = {}
    for name, index in covariate_columns.items():
        raw = _cell(cells, index)
        if raw in MISSING:
            covariates[name] = None
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            problems.append(
                f"row {line}, column {names[name.upper()]}: value '{raw}': not a number"
            )
        covariates[name] = value
    record["covariates"] = covariates
    return record, problems


def _subject(subject_id: str, records: list[dict], model: Model) -> Subject:
    # Stable sort: at equal times doses come first, otherwise the file's order.
    records = sorted(records, key=lambda r: (r["TIME"], -r["EVID"]))
    defaulted: list[str] = []
    covariates: dict[str, np.ndarray] = {}
    for name, covariate in model.covariates.items():
        column, last, used_default = [], None, False
        for record in records:
            value = record["covariates"].get(name)
            if value is None:
                value = last  # carried forward within the subject
            if value is None:
                value, used_default = covariate.default, True
            else:
                last = value
            column.append(value)
        covariates[name] = np.array(column, float)
        if used_default:
            defaulted.append(name)

    def column(key: str) -> np.ndarray:
        return np.array([record[key] for record in records], float)

    return Subject(
        id=subject_id,
        time=column("TIME"),
        evid=column("EVID").astype(int),
        amt=column("AMT"),
        dv=column("DV"),
        ii=column("II"),
        addl=column("ADDL").astype(int),
        ss=column("SS").astype(int),
        cens=column("CENS").astype(int),
        covariates=covariates,
        defaulted=defaulted,
        rows=np.array([record["row"] for record in records], int),
    )


def subject_from_arrays(
    model: Model,
    *,
    subject_id: str = "1",
    time,
    evid,
    amt=None,
    dv=None,
    ii=None,
    addl=None,
    ss=None,
    cens=None,
    covariates: dict[str, object] | None = None,
) -> Subject:
    """A subject built in code (forecasts, tests); the same defaults as a data set."""
    time = np.asarray(time, float)
    n = len(time)

    def array(value, fill, kind=float):
        return np.full(n, fill, kind) if value is None else np.asarray(value, kind).reshape(n)

    given = covariates or {}
    values: dict[str, np.ndarray] = {}
    defaulted = []
    for name, covariate in model.covariates.items():
        if name in given and given[name] is not None:
            values[name] = np.broadcast_to(np.asarray(given[name], float), (n,)).copy()
        else:
            values[name] = np.full(n, covariate.default)
            defaulted.append(name)
    evid = array(evid, 0, int)
    order = np.lexsort((-evid, time))
    return Subject(
        id=subject_id,
        time=time[order],
        evid=evid[order],
        amt=array(amt, 0.0)[order],
        dv=array(dv, np.nan)[order],
        ii=array(ii, 0.0)[order],
        addl=array(addl, 0, int)[order],
        ss=array(ss, 0, int)[order],
        cens=array(cens, 0, int)[order],
        covariates={name: column[order] for name, column in values.items()},
        defaulted=defaulted,
        rows=None,
    )
