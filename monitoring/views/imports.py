"""The web import page (data_entry): choose what the file holds, upload it, see a preview of
every row (new / updated / unchanged / error, with the problem next to the row), confirm.

The same code as the commands judges the file: ``run_csv_import`` (import_csv) for the CSV
kinds, ``import_hl7_messages`` (import_hl7) for HL7. The preview is that import run as a dry
run: the CSV runner judges the rows by reads only (a dry run holds no transaction); the HL7
import judges every message by reads only (``validate_only``: no write, no transaction, so a
preview holds no lock while a clinician saves the same patient's records). Confirm queues the
same import on the same bytes as a background job (jobs.py; its page is views/import_jobs.py),
which keeps it only when nothing is in error: a CSV file in one
transaction (the runner's), an HL7 file likewise (the outer transaction is kept only if every
message is accepted). An HL7 *interface* keeps its per-message semantics: hl7_endpoint.py.

Keeping the upload between preview and confirm: the preview page carries the file in a
hidden field, zlib-compressed and signed with Django's ``TimestampSigner`` (an HMAC keyed by
SECRET_KEY, salted for this one purpose) together with the kind, the file name and the
uploader's user id; it expires after ``MAX_AGE_SECONDS``. Not the session: sessions are saved
on every request here (the idle timeout needs SESSION_SAVE_EVERY_REQUEST), so a 5 MB file
would be rewritten to the session table with every page the user opens afterwards, and the
clinical rows would linger there until the session expires. The signed field keeps no state
on the server (any worker can confirm, nothing to clean up), cannot be altered (one changed
byte breaks the signature), cannot be replayed by another user or as another kind, and only
hands the data back to the browser it came from. Compressed CSV is a fraction of its size, so
it stays under the 5 MB request limit (DATA_UPLOAD_MAX_MEMORY_SIZE); a file that would not is
refused at the preview with a clear message.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import re
import zlib
from dataclasses import dataclass, field

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods, require_POST

from .. import rules, validation
from ..csv_safe import SafeCsvWriter
from ..importers import ImportReport, run_csv_import
from ..importers.csv_reader import detect_delimiter
from ..importers.hl7 import ACCEPTED, ERROR, REJECTED, MessageResult, import_hl7_messages
from ..importers.kinds import CREATED, IMPORTERS, UNCHANGED, UPDATED
from ..jobs import import_job_create
from ..models import Assay, LabTest, LevelStatus

logger = logging.getLogger(__name__)

TEMPLATE = "monitoring/import.html"
PERMISSION = "monitoring.import_data"
HL7 = "hl7"
KIND_CHOICES = [
    ("patients", "Patients"),
    ("regimens", "Tacrolimus regimens (dose changes)"),
    ("levels", "Tacrolimus trough levels"),
    ("medications", "Concomitant drugs"),
    ("labs", "Kidney labs"),
    (HL7, "HL7 v2 lab messages (ORU^R01)"),
]
KIND_LABELS = dict(KIND_CHOICES)
MAX_UPLOAD_BYTES = settings.UPLOAD_MAX_BYTES
MAX_AGE_SECONDS = 60 * 60
SIGNING_SALT = "monitoring.views.imports.upload"
# Rows shown in the preview table besides the error rows (all of which are shown).
ROW_LIMIT = 1000

ACTION_LABELS = {CREATED: "new", UPDATED: "updated", UNCHANGED: "unchanged", "error": "error"}
ACTION_BADGES = {
    CREATED: "badge--ok",
    UPDATED: "badge--info",
    UNCHANGED: "",
    "error": "badge--danger",
}
MESSAGE_BADGES = {ACCEPTED: "badge--ok", ERROR: "badge--warning", REJECTED: "badge--danger"}


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


class UploadForm(forms.Form):
    kind = forms.ChoiceField(
        label="What the file holds", choices=KIND_CHOICES, widget=forms.RadioSelect
    )
    file = forms.FileField(
        label="File",
        help_text="CSV (UTF-8, comma- or semicolon-separated, header row first) or HL7 v2 "
        f"text; up to {_megabytes(MAX_UPLOAD_BYTES)}.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if getattr(upload, "truncated", False):
            raise ValidationError(
                f"The file is over {_megabytes(MAX_UPLOAD_BYTES)}; the limit is "
                f"{_megabytes(MAX_UPLOAD_BYTES)}. Split it into smaller files and upload "
                "them one after the other."
            )
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {_megabytes(upload.size)}; the limit is "
                f"{_megabytes(MAX_UPLOAD_BYTES)}. Split it into smaller files and upload "
                "them one after the other."
            )
        return upload


# --- the upload between preview and confirm ----------------------------------------------------


@dataclass(frozen=True)
class Upload:
    kind: str
    name: str
    data: bytes


class UploadRefused(Exception):
    """The signed upload is missing, altered, expired or someone else's."""


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SIGNING_SALT)


def seal(upload: Upload, user_id: int) -> str:
    header = json.dumps({"kind": upload.kind, "name": upload.name, "user": user_id})
    packed = zlib.compress(header.encode() + b"\n" + upload.data, 6)
    return _signer().sign(base64.urlsafe_b64encode(packed).decode("ascii").rstrip("="))


def unseal(token: str, user_id: int) -> Upload:
    try:
        text = _signer().unsign(token or "", max_age=MAX_AGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise UploadRefused("The preview has expired; upload the file again.") from exc
    except signing.BadSignature as exc:
        raise UploadRefused("The uploaded file could not be verified; upload it again.") from exc
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_UPLOAD_BYTES + 4096)
        if inflater.unconsumed_tail:
            raise ValueError("larger than the upload limit")
        header, _, data = raw.partition(b"\n")
        meta = json.loads(header)
    except (ValueError, zlib.error) as exc:  # signed by us, so only a programming error
        raise UploadRefused("The uploaded file could not be read back; upload it again.") from exc
    if meta.get("user") != user_id or meta.get("kind") not in KIND_LABELS:
        raise UploadRefused("This preview belongs to another upload; upload the file again.")
    return Upload(kind=meta["kind"], name=meta.get("name", ""), data=data)


def _token_fits(token: str) -> bool:
    # The confirm form posts the token url-encoded; leave room for the other fields.
    return len(token) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 16 * 1024


# --- running the import ------------------------------------------------------------------------


def hl7_text(data: bytes) -> str:
    """As import_hl7 reads a file: UTF-8, else Latin-1 (HL7 v2 predates UTF-8 as default)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def judge_hl7(data: bytes, *, user) -> list[MessageResult]:
    """Every message judged as the import would judge it, by reads only (the preview)."""
    return import_hl7_messages(hl7_text(data), user=user, validate_only=True)


def run_hl7(data: bytes, *, user, write: bool) -> list[MessageResult]:
    """Every message judged by the import itself; kept only when ``write`` and every message
    was accepted (the import commits per message, so the outer transaction decides)."""
    with transaction.atomic():
        results = import_hl7_messages(hl7_text(data), user=user)
        if not write or not results or not all(r.accepted for r in results):
            transaction.set_rollback(True)
    return results


# --- what the page shows -----------------------------------------------------------------------


@dataclass
class PreviewRow:
    row: int
    action: str
    label: str
    badge: str
    mrn: str
    cells: list[str]
    problems: list[str]


@dataclass
class ResultRow:
    """One observation of a message as the preview lists it."""

    message: int
    label: str
    test: str
    mrn: str
    collected: str
    value: str
    unit: str
    assay: str
    status: str


@dataclass
class MessageRow:
    index: int
    control_id: str
    mrn: str
    status: str
    badge: str
    summary: str
    reasons: list[str]
    notes: list[str]
    values: list[ResultRow] = field(default_factory=list)


def _collected_text(iso: str) -> str:
    """The parsed collection time in the site's zone, as every page writes it."""
    try:
        moment = validation.parse_datetime(iso, "collected_at")
    except rules.RuleError:
        return iso
    if moment is None:
        return iso
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _result_rows(r: MessageResult) -> list[ResultRow]:
    return [
        ResultRow(
            message=r.index,
            label=v.label,
            test="Tacrolimus trough" if v.test == "tacrolimus" else LabTest(v.test).label,
            mrn=v.mrn,
            collected=_collected_text(v.collected_at),
            value=v.value,
            unit=v.unit,
            assay=Assay(v.assay).label if v.assay in Assay.values else (v.assay or "—"),
            status=LevelStatus(v.status).label if v.status in LevelStatus.values else v.status,
        )
        for v in r.values
    ]


@dataclass
class Preview:
    kind: str
    kind_label: str
    name: str
    token: str
    ok: bool
    counts: list[tuple[str, int]]
    columns: list[str] = field(default_factory=list)
    rows: list[PreviewRow] = field(default_factory=list)
    total_rows: int = 0
    messages: list[MessageRow] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    error_rows: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def is_hl7(self) -> bool:
        return self.kind == HL7

    @property
    def result_rows(self) -> list[ResultRow]:
        return [v for m in self.messages for v in m.values]

    @property
    def hidden_rows(self) -> int:
        return self.total_rows - len(self.rows)


def csv_preview(upload: Upload, report: ImportReport, token: str) -> Preview:
    importer = IMPORTERS[upload.kind]
    known = set(importer.required) | set(importer.optional)
    columns = [name for name in (report.rows[0].values if report.rows else ()) if name in known]
    shown_rows = set()
    rows = []
    for index, result in enumerate(report.rows):
        if result.problems or index < ROW_LIMIT:
            shown_rows.add(result.row)
            rows.append(
                PreviewRow(
                    row=result.row,
                    action=result.action,
                    label=ACTION_LABELS.get(result.action, result.action),
                    badge=ACTION_BADGES.get(result.action, ""),
                    mrn=result.mrn,
                    cells=[result.values.get(name, "") for name in columns],
                    problems=[str(p) for p in result.problems],
                )
            )
    counts = report.counts
    error_rows = {p.row for p in report.problems if p.row > 1}
    return Preview(
        kind=upload.kind,
        kind_label=KIND_LABELS[upload.kind],
        name=upload.name,
        token=token,
        ok=report.ok,
        counts=[
            ("new", counts[CREATED]),
            ("updated", counts[UPDATED]),
            ("unchanged", counts[UNCHANGED]),
            ("with errors", len(error_rows)),
        ],
        columns=columns,
        rows=rows,
        total_rows=len(report.rows),
        file_problems=[str(p) for p in report.problems if p.row not in shown_rows],
        problem_count=len(report.problems),
        error_rows=len(error_rows),
        warnings=list(report.warnings),
    )


def hl7_preview(upload: Upload, results: list[MessageResult], token: str) -> Preview:
    rows = [
        MessageRow(
            index=r.index,
            control_id=r.control_id,
            mrn=r.mrn,
            status=r.status,
            badge=MESSAGE_BADGES[r.status],
            summary=r.summary() if r.accepted else "",
            reasons=list(r.reasons),
            notes=list(r.notes),
            values=_result_rows(r),
        )
        for r in results
    ]
    failed = [r for r in results if not r.accepted]
    return Preview(
        kind=HL7,
        kind_label=KIND_LABELS[HL7],
        name=upload.name,
        token=token,
        ok=bool(results) and not failed,
        counts=[
            (status, sum(1 for r in results if r.status == status))
            for status in (ACCEPTED, ERROR, REJECTED)
        ],
        messages=rows,
        total_rows=len(rows),
        file_problems=[] if results else ["file: no HL7 message found (each starts with MSH)"],
        problem_count=len(failed) if results else 1,
        error_rows=len(failed),
    )


def build_preview(upload: Upload, user) -> Preview:
    token = seal(upload, user.pk)
    if upload.kind == HL7:
        return hl7_preview(upload, judge_hl7(upload.data, user=user), token)
    return csv_preview(
        upload, run_csv_import(upload.kind, upload.data, dry_run=True, user=user), token
    )


def _page(
    request: HttpRequest,
    *,
    form: UploadForm | None = None,
    preview: Preview | None = None,
    refused: str = "",
    status: int = 200,
) -> HttpResponse:
    columns = [
        (label, IMPORTERS[kind].required, IMPORTERS[kind].optional)
        for kind, label in KIND_CHOICES
        if kind in IMPORTERS
    ]
    initial = {"kind": preview.kind} if preview else {}
    return render(
        request,
        TEMPLATE,
        {
            "form": form or UploadForm(initial=initial),
            "preview": preview,
            "refused": refused,
            "column_reference": columns,
            "max_upload": _megabytes(MAX_UPLOAD_BYTES),
        },
        status=status,
    )


# --- views -------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required(PERMISSION, raise_exception=True)
def import_page(request: HttpRequest) -> HttpResponse:
    """GET: the upload form. POST: the preview of the uploaded file (nothing written)."""
    if request.method == "GET":
        return _page(request)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, form=form, status=400)
    uploaded = form.cleaned_data["file"]
    upload = Upload(
        kind=form.cleaned_data["kind"], name=uploaded.name or "upload", data=uploaded.read()
    )
    preview = build_preview(upload, request.user)
    if not _token_fits(preview.token):
        form.add_error(
            "file",
            "This file is too large to carry to the confirm step; split it into smaller files.",
        )
        return _page(request, form=form, status=400)
    return _page(request, preview=preview)


@require_POST
@permission_required(PERMISSION, raise_exception=True)
def import_confirm(request: HttpRequest) -> HttpResponse:
    """Queue the previewed file as a background job (monitoring/jobs.py) and send the user to
    its page, which shows the progress and then the result. The job imports all or nothing,
    as the preview did: a file with an error row ends as a failed job that wrote nothing."""
    try:
        upload = unseal(request.POST.get("token", ""), request.user.pk)
    except UploadRefused as exc:
        messages.error(request, str(exc))
        return redirect("monitoring:import")
    job = import_job_create(kind=upload.kind, name=upload.name, data=upload.data, user=request.user)
    # The file name stays out of the log: clinics often name files after a patient.
    logger.info("web import (%s) by %s: job %s", upload.kind, request.user.get_username(), job.pk)
    return redirect("monitoring:import_job", pk=job.pk)


@require_POST
@permission_required(PERMISSION, raise_exception=True)
def import_errors_csv(request: HttpRequest) -> HttpResponse:
    """The rows (or HL7 messages) in error as CSV, each with an ``error`` column saying what
    is wrong: fix them and upload the file again."""
    try:
        upload = unseal(request.POST.get("token", ""), request.user.pk)
    except UploadRefused as exc:
        messages.error(request, str(exc))
        return redirect("monitoring:import")
    if upload.kind == HL7:
        text = hl7_error_csv(judge_hl7(upload.data, user=request.user))
    else:
        report = run_csv_import(upload.kind, upload.data, dry_run=True, user=request.user)
        text = csv_error_csv(upload.data, report)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", upload.name.rsplit(".", 1)[0])[:60] or "import"
    response = HttpResponse(
        # A byte-order mark, so that spreadsheet programs read the file as UTF-8; the import
        # accepts it.
        "\ufeff" + text,
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = content_disposition_header(True, f"{stem}-errors.csv")
    return response


# --- the error file ----------------------------------------------------------------------------


def csv_error_csv(data: bytes, report: ImportReport) -> str:
    """The file's own header and cells for every data row with a problem (in the file's
    delimiter, so decimal commas stay valid), plus a last column ``error``. An ``error``
    column already there (a corrected error file uploaded again) is reused."""
    by_row: dict[int, list[str]] = {}
    for problem in report.problems:
        if problem.row > 1:
            by_row.setdefault(problem.row, []).append(
                f"column {problem.column}: value '{problem.value}': {problem.message}"
            )
    out = io.StringIO()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return out.getvalue()
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = detect_delimiter(first) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    writer = SafeCsvWriter(out, delimiter=delimiter)
    header: list[str] | None = None
    error_at = 0
    for cells in reader:
        if header is None:
            if not any(cell.strip() for cell in cells):
                continue
            header = list(cells)
            names = [cell.strip().lower() for cell in header]
            if "error" in names:
                error_at = names.index("error")
            else:
                error_at = len(header)
                header.append("error")
            writer.writerow(header)
            continue
        line = reader.line_num
        if line not in by_row:
            continue
        row = cells + [""] * (len(header) - len(cells))
        row[error_at] = "; ".join(by_row[line])
        writer.writerow(row)
    return out.getvalue()


def hl7_error_csv(results: list[MessageResult]) -> str:
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(["message", "control_id", "mrn", "status", "error"])
    for r in results:
        if not r.accepted:
            writer.writerow([r.index, r.control_id, r.mrn, r.status, r.reason])
    return out.getvalue()
