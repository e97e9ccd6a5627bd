"""HL7 v2 ORU^R01 lab results (docs/data-formats.md, "HL7 v2 ORU^R01").

The wire format is read by python-hl7 (``hl7``); what a result means is decided by the same
code as the CSV import: every tacrolimus result becomes a ``levels`` row and every kidney
lab (and hematocrit or body weight, covariates of the PK models) a ``labs`` row, handed to
``LevelImporter`` / ``LabImporter`` (kinds.py). So the value,
unit, plausibility, future-date and idempotency rules (accession key, "corrected"
supersedes, entered-in-error is never brought back) are those of the CSV import, with the
same messages.

Each message is its own transaction: a message with any bad result writes nothing of itself,
and the others go on. Each gets a ``MessageResult`` (accepted / error / rejected) that
``ack_for`` turns into the HL7 acknowledgement (AA / AE / AR).

Decisions of this module (HL7 semantics the CSV has no word for):
- OBX-7 (the lab's generic reference range) and OBX-8 (its abnormal flag) are never read:
  the target is the patient's LN target.
- Levels arrive without a last-dose time (timing ``unknown``), source ``hl7``.
- A final result replaces the preliminary one it follows even when the value changed; a
  preliminary that arrives after the final (or corrected) result is ignored (never downgrades).
- Preliminary kidney labs are not stored (a lab result has no preliminary status, and it would
  drive the nephrotoxicity flag); censored labs (e.g. eGFR ``>90``) are not stored either.
  Both are counted as ignored, with a note.
- Result statuses other than F, C and P (e.g. X, W, D) on a monitored observation are an
  application error: staff should look, and mark a result in error by hand if need be.
- OBX-17 empty → assay unknown (blank, as in the CSV); an unrecognised method → ``OTHER``.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import hl7
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from .. import config, rules, validation
from ..log_filters import database_refusal
from ..models import Assay, LabTest, LevelStatus, Patient, Source
from ..services import Refit, patients_reassess
from .kinds import (
    CREATED,
    UPDATED,
    Context,
    LabImporter,
    LevelImporter,
    RowErrors,
)

ACCEPTED, ERROR, REJECTED = "accepted", "error", "rejected"
ACK_CODES = {ACCEPTED: "AA", ERROR: "AE", REJECTED: "AR"}

TACROLIMUS_LOINC = frozenset({"11253-2", "77348-1"})
LAB_LOINC = {
    "2160-0": LabTest.CREATININE,
    "14682-9": LabTest.CREATININE,
    "98979-8": LabTest.EGFR,
    "2890-2": LabTest.UPCR,
    "4544-3": LabTest.HCT,
    "29463-7": LabTest.WEIGHT,
}
LOINC_SYSTEMS = frozenset({"", "LN", "LOINC"})
RESULT_STATUS = {"F": LevelStatus.FINAL, "C": LevelStatus.CORRECTED, "P": LevelStatus.PRELIMINARY}

# HL7 table 0357 (message error condition codes) used in ERR-3.
ERR_SEGMENT_SEQUENCE = "100"
ERR_REQUIRED_FIELD = "101"
ERR_DATA_TYPE = "102"
ERR_TABLE_VALUE = "103"
ERR_UNSUPPORTED_TYPE = "200"
ERR_UNKNOWN_KEY = "204"
ERR_APPLICATION = "207"
ERR_TEXT = {
    ERR_SEGMENT_SEQUENCE: "Segment sequence error",
    ERR_REQUIRED_FIELD: "Required field missing",
    ERR_DATA_TYPE: "Data type error",
    ERR_TABLE_VALUE: "Table value not found",
    ERR_UNSUPPORTED_TYPE: "Unsupported message type",
    ERR_UNKNOWN_KEY: "Unknown key identifier",
    ERR_APPLICATION: "Application internal error",
}

COUNT_KEYS = (
    "levels_created",
    "levels_updated",
    "levels_unchanged",
    "labs_created",
    "labs_updated",
    "labs_unchanged",
    "ignored",
)

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_MLLP_FRAMING = str.maketrans("", "", "\x0b\x1c\ufeff")
_BATCH_SEGMENTS = frozenset({"FHS", "FTS", "BHS", "BTS"})
_UCUM_ANNOTATION = re.compile(r"\{[^}]*\}")
_TS_DIGITS = re.compile(r"^(\d{12,14})(\.\d{1,4})?([+-]\d{4})?$")


@dataclass
class Header:
    """What the acknowledgement needs from the incoming MSH (components, unescaped)."""

    sending_application: list[str] = field(default_factory=list)
    sending_facility: list[str] = field(default_factory=list)
    receiving_application: list[str] = field(default_factory=list)
    receiving_facility: list[str] = field(default_factory=list)
    trigger: str = "R01"
    processing_id: str = "P"
    version: str = "2.5.1"


@dataclass
class ResultValues:
    """One monitored observation as the message gives it, shown in the import preview so
    that a user checks values and not only counts before confirming."""

    label: str  # "OBX 1 (77348-1)"
    test: str  # "tacrolimus" or the lab test code
    mrn: str
    collected_at: str
    value: str
    unit: str
    assay: str
    status: str


@dataclass
class MessageResult:
    index: int  # 1-based position of the message in the file
    control_id: str = ""  # MSH-10, echoed in MSA-2
    status: str = ACCEPTED
    reasons: list[str] = field(default_factory=list)
    error_code: str = ""  # HL7 table 0357, for ERR-3
    mrn: str = ""
    counts: Counter = field(default_factory=lambda: Counter(dict.fromkeys(COUNT_KEYS, 0)))
    notes: list[str] = field(default_factory=list)  # why an observation was ignored
    header: Header = field(default_factory=Header)
    values: list[ResultValues] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def written(self) -> bool:
        c = self.counts
        return self.accepted and bool(
            c["levels_created"] + c["levels_updated"] + c["labs_created"] + c["labs_updated"]
        )

    def summary(self) -> str:
        if not self.accepted:
            return self.reason
        c = self.counts
        return (
            f"levels {c['levels_created']} created, {c['levels_updated']} updated, "
            f"{c['levels_unchanged']} unchanged; labs {c['labs_created']} created, "
            f"{c['labs_updated']} updated, {c['labs_unchanged']} unchanged; "
            f"{c['ignored']} ignored"
        )


class _Reject(Exception):
    """The message cannot be read as an ORU^R01: acknowledged with AR."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


class _Rollback(Exception):
    pass


# --- reading the file -----------------------------------------------------------------------


def split_messages(text: str) -> list[list[str]]:
    """Segments (CR, LF or CRLF separated) grouped into messages, each starting at MSH.
    Batch and file envelopes (FHS/BHS/BTS/FTS) and MLLP framing are dropped; lines before the
    first MSH form a group of their own, which is rejected."""
    messages: list[list[str]] = []
    for raw in _LINE_BREAK.split(text.translate(_MLLP_FRAMING)):
        segment = raw.strip()
        if not segment or segment[:3] in _BATCH_SEGMENTS:
            continue
        if segment.startswith("MSH") or not messages:
            messages.append([segment])
        else:
            messages[-1].append(segment)
    return messages


def _fallback_header(first: str) -> tuple[str, Header]:
    """Control id and sender from an MSH the library could not parse, as far as readable."""
    header = Header()
    if not first.startswith("MSH") or len(first) < 4:
        return "", header
    fields = first.split(first[3])
    component = fields[1][:1] if len(fields) > 1 and fields[1][:1] else "^"

    def get(number: int) -> list[str]:  # HL7 numbering: MSH-n is fields[n - 1]
        return fields[number - 1].split(component) if len(fields) >= number else []

    header.sending_application, header.sending_facility = get(3), get(4)
    header.receiving_application, header.receiving_facility = get(5), get(6)
    return (get(10) or [""])[0].strip()[:50], header


def _get(segment, number: int, component: int = 1, repeat: int = 1) -> str:
    try:
        return str(segment.extract_field(1, number, repeat, component, 1)).strip()
    except (IndexError, KeyError, TypeError):
        return ""


def _components(segment, number: int) -> list[str]:
    out = []
    for component in range(1, 10):
        out.append(_get(segment, number, component))
    while out and not out[-1]:
        out.pop()
    return out


def _repeats(segment, number: int) -> int:
    if number >= len(segment):
        return 0
    value = segment(number)
    return len(value) if isinstance(value, hl7.Field) else 1


def _parse(segments: list[str]) -> hl7.Message:
    first = segments[0]
    if not first.startswith("MSH"):
        raise _Reject(ERR_SEGMENT_SEQUENCE, f"segments before any MSH segment: '{first[:40]}'")
    separator = first[3:4]
    encoding = first[4:8]
    if (
        not separator
        or separator.isalnum()
        or separator.isspace()
        or len(set(separator + encoding)) < 5
        or any(c.isalnum() for c in encoding)
    ):
        raise _Reject(
            ERR_SEGMENT_SEQUENCE, "MSH-1/MSH-2 (separator and encoding characters) cannot be read"
        )
    for segment in segments[1:]:
        if not _SEGMENT_ID.match(segment[:3]) or segment[3:4] not in ("", separator):
            raise _Reject(ERR_SEGMENT_SEQUENCE, f"not an HL7 segment: '{segment[:40]}'")
    try:
        return hl7.parse("\r".join(segments))
    except Exception as exc:  # the library raises several types on garbage
        raise _Reject(ERR_SEGMENT_SEQUENCE, f"cannot be parsed as HL7: {exc}") from exc


def _read_header(message: hl7.Message) -> tuple[str, Header]:
    msh = message.segment("MSH")
    header = Header(
        sending_application=_components(msh, 3),
        sending_facility=_components(msh, 4),
        receiving_application=_components(msh, 5),
        receiving_facility=_components(msh, 6),
        trigger=_get(msh, 9, 2) or "R01",
        processing_id=_get(msh, 11) or "P",
        version=_get(msh, 12) or "2.5.1",
    )
    return _get(msh, 10)[:50], header


# --- field conversions ------------------------------------------------------------------------


def hl7_timestamp(text: str, field_name: str) -> str:
    """HL7 TS ``YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]`` → ISO 8601 text for ``validation.
    parse_datetime`` (which applies the site's zone to a time without an offset and rejects
    one the clocks skipped). Less than minute precision cannot time a trough: rejected."""
    if not _TS_DIGITS.match(text):
        raise rules.RuleError(
            field_name, text, "is not an HL7 date-time (expected YYYYMMDDHHMM[SS][+/-ZZZZ])"
        )
    try:
        moment = hl7.parse_datetime(text)
    except (ValueError, OverflowError) as exc:
        raise rules.RuleError(field_name, text, "is not a valid date-time") from exc
    iso = moment.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")
    try:
        offset = moment.utcoffset()
    except ValueError as exc:  # python-hl7 accepts +9999; the offset must be under 24 h
        raise rules.RuleError(field_name, text, "has an impossible UTC offset") from exc
    if offset is not None:
        minutes = int(offset / timedelta(minutes=1))
        sign = "-" if minutes < 0 else "+"
        iso += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return iso


def _observation_value(obx) -> str:
    """OBX-5 as the text the CSV would carry: NM as is, SN ``<^1.0`` → ``<1.0``."""
    value_type = _get(obx, 2).upper()
    raw = str(obx(5)) if len(obx) > 5 else ""
    if value_type == "NM":
        return _get(obx, 5)
    if value_type == "SN":
        comparator, number, separator, second = (_get(obx, 5, i) for i in range(1, 5))
        if separator or second:
            raise rules.RuleError("OBX-5", raw, "a range or ratio is not a single result")
        if comparator in ("", "="):
            return number
        if comparator in ("<", ">"):
            return comparator + number
        raise rules.RuleError(
            "OBX-5", raw, f"comparator '{comparator}' is not supported (expected < or >)"
        )
    raise rules.RuleError("OBX-2", value_type, "value type must be NM or SN")


def _assay(obx) -> str:
    for text in (_get(obx, 17, 1), _get(obx, 17, 2)):
        if text:
            try:
                return validation.assay(text)
            except rules.RuleError:
                return Assay.OTHER
    return ""


def _lab_unit(text: str) -> str:
    """UCUM spellings to the project's: ``mL/min/{1.73_m2}`` → ``mL/min/1.73m2``; other
    UCUM annotations (``g/g{creat}``) carry no meaning and are dropped."""
    text = text.replace("{1.73_m2}", "1.73m2")
    return _UCUM_ANNOTATION.sub("", text)


def _loinc_codes(obx) -> set[str]:
    codes = set()
    for code, system in ((_get(obx, 3, 1), _get(obx, 3, 3)), (_get(obx, 3, 4), _get(obx, 3, 6))):
        if code and system.upper() in LOINC_SYSTEMS:
            codes.add(code)
    return codes


# --- writing ----------------------------------------------------------------------------------


# The CSV level rules serve HL7 unchanged (status order included).
HL7LevelImporter = LevelImporter


@dataclass
class _Observation:
    kind: str  # "levels" or "labs"
    label: str  # for messages: "OBX 1 (77348-1)"
    row: dict[str, str]
    fields: dict[str, str]  # importer field name → HL7 location, for messages


def _where(label: str, location: str, error: rules.RuleError) -> str:
    return f"{label}: {location} value '{error.value}': {error.message}"


def _observations(
    message: hl7.Message, mrn: str, result: MessageResult
) -> tuple[list[_Observation], list[str]]:
    """The monitored observations of a message as importer rows, and field errors found on
    the way (HL7-level: date-time, value type, result status)."""
    observations: list[_Observation] = []
    errors: list[str] = []
    obr = None
    known = 0
    unknown_codes: list[str] = []
    for segment in message:
        name = str(segment[0])
        if name == "OBR":
            obr = segment
            continue
        if name != "OBX":
            continue
        if obr is None:
            raise _Reject(ERR_SEGMENT_SEQUENCE, "OBX segment before any OBR segment")
        codes = _loinc_codes(segment)
        code = _get(segment, 3, 1) or "?"
        label = f"OBX {_get(segment, 1) or '?'} ({code})"
        level = bool(codes & TACROLIMUS_LOINC)
        test = next((LAB_LOINC[c] for c in sorted(codes) if c in LAB_LOINC), None)
        if not level and test is None:
            result.counts["ignored"] += 1
            unknown_codes.append(_unknown_code(segment))
            continue
        known += 1
        problems: list[rules.RuleError] = []
        status_code = _get(segment, 11).upper()
        status = RESULT_STATUS.get(status_code)
        if status is None:
            problems.append(
                rules.RuleError("OBX-11", status_code, "result status must be F, C or P")
            )
        time_field = "OBX-14" if _get(segment, 14) else "OBR-7"
        time_text = _get(segment, 14) or _get(obr, 7)
        collected = ""
        if not time_text:
            problems.append(rules.RuleError("OBX-14", "", "no collection time (OBX-14 or OBR-7)"))
        else:
            try:
                collected = hl7_timestamp(time_text, time_field)
            except rules.RuleError as exc:
                problems.append(exc)
        try:
            value = _observation_value(segment)
        except rules.RuleError as exc:
            problems.append(exc)
            value = ""
        if problems:
            errors.extend(_where(label, e.field, e) for e in problems)
            continue
        accession = _get(obr, 3)
        unit = _get(segment, 6, 1) or _get(segment, 6, 2)
        fields = {
            "mrn": "PID-3",
            "collected_at": time_field,
            "value": "OBX-5",
            "unit": "OBX-6",
            "accession": "OBR-3",
            "status": "OBX-11",
            "assay": "OBX-17",
            "test": "OBX-3",
        }
        if level:
            row = {
                "mrn": mrn,
                "collected_at": collected,
                "last_dose_at": "",
                "value": value,
                "unit": unit,
                "assay": _assay(segment),
                "accession": accession,
                "status": status,
            }
            observations.append(_Observation("levels", label, row, fields))
            result.values.append(
                ResultValues(label, "tacrolimus", mrn, collected, value, unit, row["assay"], status)
            )
            continue
        if status == LevelStatus.PRELIMINARY:
            result.counts["ignored"] += 1
            result.notes.append(f"{label}: preliminary lab result not stored")
            continue
        if value[:1] in ("<", ">"):
            result.counts["ignored"] += 1
            result.notes.append(f"{label}: censored lab value '{value}' not stored")
            continue
        row = {
            "mrn": mrn,
            "collected_at": collected,
            "test": test,
            "value": value,
            "unit": _lab_unit(unit),
            "accession": accession,
        }
        observations.append(_Observation("labs", label, row, fields))
        result.values.append(
            ResultValues(label, test, mrn, collected, value, row["unit"], "", status)
        )
    if not known:
        # Nothing we know how to store: a lab sending tacrolimus under its local code must
        # hear it, not get AA for a message that stored nothing.
        if unknown_codes:
            result.error_code = ERR_TABLE_VALUE
            errors.append(
                f"{NO_RESULT}: OBX-3 codes not known here: {', '.join(unknown_codes)} "
                f"(tacrolimus is LOINC {' or '.join(sorted(TACROLIMUS_LOINC))})"
            )
        else:
            result.error_code = ERR_REQUIRED_FIELD
            errors.append(f"{NO_RESULT}: the message has no OBX segment")
    return observations, errors


NO_RESULT = "no tacrolimus or kidney result was found"


def _unknown_code(obx) -> str:
    code = _get(obx, 3, 1) or "?"
    system = _get(obx, 3, 3)
    return f"{code}^{system}" if system else code


def _patient_mrn(message: hl7.Message) -> str:
    try:
        pid = message.segment("PID")
    except KeyError as exc:
        raise _Reject(ERR_SEGMENT_SEQUENCE, "no PID segment") from exc
    first = ""
    for repeat in range(1, max(_repeats(pid, 3), 1) + 1):
        identifier = _get(pid, 3, 1, repeat)
        if identifier and _get(pid, 3, 5, repeat).upper() == "MR":
            return identifier
        first = first or identifier
    return first


def _import_one(
    index: int,
    segments: list[str],
    thresholds: rules.Thresholds,
    user,
    judge: Context | None = None,
    refit: Refit = "background",
) -> MessageResult:
    """Import one message; with ``judge`` (a validate-only context shared by the file's
    messages) only judge it, writing nothing."""
    result = MessageResult(index)
    try:
        message = _parse(segments)
        result.control_id, result.header = _read_header(message)
        kind, trigger = _get(message.segment("MSH"), 9, 1), _get(message.segment("MSH"), 9, 2)
        if (kind.upper(), trigger.upper()) != ("ORU", "R01"):
            raise _Reject(
                ERR_UNSUPPORTED_TYPE, f"MSH-9 value '{kind}^{trigger}': only ORU^R01 is accepted"
            )
        mrn_text = _patient_mrn(message)
        observations, errors = _observations(message, mrn_text, result)
    except _Reject as exc:
        if not result.control_id:
            result.control_id, result.header = _fallback_header(segments[0])
        result.status, result.error_code, result.reasons = REJECTED, exc.code, [str(exc)]
        return result

    result.mrn = mrn_text
    ctx = judge or Context(thresholds=thresholds, user=user, source=Source.HL7)
    try:
        patient = ctx.patient(validation.mrn(mrn_text, "PID-3"))
    except rules.RuleError as exc:
        unknown = exc.field == "mrn"
        result.status = ERROR
        result.error_code = ERR_UNKNOWN_KEY if unknown else ERR_DATA_TYPE
        result.reasons = [f"PID-3 value '{exc.value}': {exc.message}"]
        return result
    if errors:
        result.status = ERROR
        result.error_code = result.error_code or ERR_DATA_TYPE
        result.reasons = errors
        return result
    if judge is not None:
        counts, errors, error_code = _judge(observations, judge, patient.pk)
        if errors:
            result.status, result.reasons = ERROR, errors
            result.error_code = error_code or ERR_DATA_TYPE
        else:
            result.counts.update(counts)
        return result
    # A concurrent identical message may store the same result between our read and our
    # insert; the constraint refuses ours. Tried again, the message finds the result stored
    # ("unchanged") and is acknowledged AA, as a re-sent message is.
    for _attempt in range(MAX_ATTEMPTS):
        ctx = Context(thresholds=thresholds, user=user, source=Source.HL7, refit=refit)
        counts, errors, error_code, conflict = _store(observations, ctx)
        if not (errors and conflict):
            break
    if errors:
        result.status, result.reasons = ERROR, errors
        result.error_code = error_code or ERR_DATA_TYPE
        return result
    result.counts.update(counts)
    return result


MAX_ATTEMPTS = 3


def _store(observations: list[_Observation], ctx: Context) -> tuple[Counter, list[str], str, bool]:
    """Write one message's observations in one transaction: (counts, errors, HL7 error code,
    whether a uniqueness constraint refused a row). Any error rolls the message back."""

    importers = {"levels": HL7LevelImporter(ctx), "labs": LabImporter(ctx)}
    counts: Counter = Counter()
    errors: list[str] = []
    error_code = ""
    conflict = False
    try:
        with transaction.atomic():
            for obs in observations:
                try:
                    with transaction.atomic():
                        action, _mrn = importers[obs.kind].checked_import(obs.row)
                    counts[f"{obs.kind}_{action}"] += 1
                except RowErrors as exc:
                    errors.extend(
                        _where(obs.label, obs.fields.get(e.field, e.field), e) for e in exc.errors
                    )
                except DatabaseError as exc:
                    # The error's text quotes the row: the ACK names the constraint only.
                    error_code = ERR_APPLICATION
                    conflict = conflict or isinstance(exc, IntegrityError)
                    errors.append(f"{obs.label}: refused by the database: {database_refusal(exc)}")
            if errors:
                raise _Rollback
            if (
                counts[f"levels_{CREATED}"]
                + counts[f"levels_{UPDATED}"]
                + counts[f"labs_{CREATED}"]
                + counts[f"labs_{UPDATED}"]
            ):
                patients_reassess(Patient.objects.filter(pk__in=ctx.affected), refit=ctx.refit)
    except _Rollback:
        counts = Counter()
    return counts, errors, error_code, conflict


def _judge(
    observations: list[_Observation], ctx: Context, patient_pk: int
) -> tuple[Counter, list[str], str]:
    """``_store`` by reads only (``ctx.validate_only``): the same importers say what each
    observation would do, and what an accepted message would have written is kept in
    ``ctx.unsaved`` for the messages after it. A message in error keeps nothing, as its
    transaction would have been rolled back."""
    importers = {"levels": HL7LevelImporter(ctx), "labs": LabImporter(ctx)}
    # A message is one patient's (PID-3). A row changes a kept record in place (a final
    # result over a preliminary one): the records' fields are saved too, to be put back.
    before = {key: list(kept) for key, kept in ctx.unsaved.items() if key[1] == patient_pk}
    fields = [(record, dict(record.__dict__)) for kept in before.values() for record in kept]
    counts: Counter = Counter()
    errors: list[str] = []
    error_code = ""
    for obs in observations:
        try:
            action, _mrn = importers[obs.kind].checked_import(obs.row)
            counts[f"{obs.kind}_{action}"] += 1
        except RowErrors as exc:
            errors.extend(
                _where(obs.label, obs.fields.get(e.field, e.field), e) for e in exc.errors
            )
        except DatabaseError as exc:  # a read refused: as _store says it
            error_code = ERR_APPLICATION
            errors.append(f"{obs.label}: refused by the database: {database_refusal(exc)}")
    if errors:
        for record, saved in fields:
            record.__dict__.clear()
            record.__dict__.update(saved)
        for key in [key for key in ctx.unsaved if key[1] == patient_pk]:
            del ctx.unsaved[key]
        ctx.unsaved.update(before)
        return Counter(), errors, error_code
    return counts, errors, error_code


def import_hl7_messages(
    text: str, *, user=None, validate_only: bool = False, refit: Refit = "background"
) -> list[MessageResult]:
    """Import every ORU^R01 message of ``text``; one transaction and one result per message.

    ``validate_only`` (the web import's preview): every message judged against the database
    by reads only, with no transaction open, each message seeing what the accepted ones
    before it would have stored; the results are those the import would give.

    ``refit``: every caller is an interface or an import (the endpoint, files, the
    command), so the forecasts of the patients written are refitted by a background task,
    not inside the message (``services.patients_reassess``)."""
    thresholds = config.load_thresholds()
    judge = None
    if validate_only:
        judge = Context(thresholds=thresholds, user=user, source=Source.HL7, validate_only=True)
    return [
        _import_one(index, segments, thresholds, user, judge, refit)
        for index, segments in enumerate(split_messages(text), start=1)
    ]


# --- acknowledgements -------------------------------------------------------------------------

_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


def _escape(text: str) -> str:
    text = " ".join(str(text).split())  # no segment breaks inside a field
    return "".join(_ESCAPES.get(c, c) for c in text)


def _hd(components: list[str]) -> str:
    return "^".join(_escape(c) for c in components)


def ack_for(result: MessageResult, *, control_id: str | None = None) -> str:
    """The original-mode ACK for one message: MSA-1 AA (accepted), AE (application error:
    unknown patient, bad value) or AR (rejected: unreadable, or not an ORU^R01), MSA-2 the
    incoming MSH-10, MSA-3 the reason; one ERR segment per reason. Segments end with CR."""
    h = result.header
    code = ACK_CODES[result.status]
    now = timezone.localtime().strftime("%Y%m%d%H%M%S%z")
    msh = [
        "MSH",
        "^~\\&",
        _hd(h.receiving_application),
        _hd(h.receiving_facility),
        _hd(h.sending_application),
        _hd(h.sending_facility),
        now,
        "",
        f"ACK^{_escape(h.trigger)}^ACK",
        _escape(control_id or uuid.uuid4().hex[:20]),
        _escape(h.processing_id),
        _escape(h.version),
    ]
    msa = ["MSA", code, _escape(result.control_id)]
    if result.reasons:
        msa.append(_escape(result.reason[:80]))
    segments = ["|".join(msh), "|".join(msa)]
    error_code = result.error_code or ERR_APPLICATION
    for reason in result.reasons if not result.accepted else []:
        segments.append(
            "|".join(
                [
                    "ERR",
                    "",
                    "",
                    f"{error_code}^{ERR_TEXT.get(error_code, '')}^HL70357",
                    "E",
                    "",
                    "",
                    "",
                    _escape(reason),
                ]
            )
        )
    return "\r".join(segments) + "\r"
