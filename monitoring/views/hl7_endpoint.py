"""``POST /hl7/inbound/``: HL7 v2 ORU^R01 results from an interface engine.

A machine endpoint: no session, no login page, no CSRF token (it is not a browser form; the
bearer token authenticates every request, and a browser cannot be made to send it). Each
interface has its own token (``InterfaceToken``, issued in the admin, stored as a SHA-256).

The body holds one or more messages (CR, LF or CRLF between segments; MLLP framing and batch
envelopes are tolerated). Each message is imported on its own, exactly as ``import_hl7``
does, and acknowledged in order: AA accepted, AE application error (unknown patient, bad
value; the reason in MSA-3 and ERR), AR rejected (unreadable, not an ORU^R01). The answer is
200 with the ACKs concatenated, whatever they say: HL7 carries the verdict, HTTP the
transport. Re-sending a message changes nothing (accession key), so a retry is safe; two
identical messages arriving at once both get AA (the loser is tried again and finds the
result stored). A message with no OBX, or only codes we do not know, gets AE "no tacrolimus
or kidney result was found" naming the codes. A database refusal is reported by its class
and constraint name, never its text (which quotes the row). Chunked bodies are read.

HTTP errors: 401 missing or unknown token (with ``WWW-Authenticate: Bearer``), 413 body over
``MAX_BODY_BYTES`` or more messages than ``settings.HL7_MAX_MESSAGES_PER_REQUEST``, 415
another content type, 400 no message in the body, 405 not a POST. They answer in plain text
and store nothing: an HTTP error is a transport problem the engine retries, whereas an AR
ACK tells it the message itself is bad, and many engines never send such a message again.

The message cap exists because the messages are imported one after the other inside the
request: a request that outlives the server's timeout (gunicorn kills the worker at 30 s) is
cut off after storing some of its messages, with no ACK at all for any of them. The count is
taken before anything is stored, so a refused request can be sent again as smaller ones.

Records written get source ``hl7`` and no ``entered_by``; their history rows have no user
(an interface is not a user) and the change reason ``HL7 interface: <name>``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..history_reason import change_reason
from ..importers.hl7 import ack_for, import_hl7_messages, split_messages
from ..models import InterfaceToken

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
ER7 = "x-application/hl7-v2+er7"
CONTENT_TYPES = frozenset({"text/plain", ER7, "application/hl7-v2"})


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _decode(body: bytes, charset: str | None) -> str:
    """The declared charset, else UTF-8; Latin-1 when that fails (it reads any byte, and the
    fields the import stores are ASCII codes and numbers)."""
    try:
        return body.decode(charset or "utf-8-sig")
    except (UnicodeDecodeError, LookupError):
        return body.decode("latin-1")


def _read_body(request: HttpRequest) -> bytes:
    """The body, read one byte past the limit rather than trusting the header alone
    (request.body would raise instead of answering). A chunked body has no Content-Length,
    which Django takes for an empty body: it is read from the server's decoded input
    stream (gunicorn undoes the chunking) until its end or just past the limit."""
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked or request.META.get("CONTENT_LENGTH"):
        return request.read(MAX_BODY_BYTES + 1)
    stream = request.META["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        part = stream.read(min(64 * 1024, MAX_BODY_BYTES + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


@csrf_exempt
@login_not_required
@require_POST
def hl7_inbound(request: HttpRequest) -> HttpResponse:
    interface = InterfaceToken.authenticate(_bearer(request))
    if interface is None:
        response = _plain(
            401, "A valid interface token is required: Authorization: Bearer <token>."
        )
        response["WWW-Authenticate"] = 'Bearer realm="hl7-inbound"'
        return response
    content_type = (request.content_type or "").lower()
    if content_type not in CONTENT_TYPES:
        return _plain(415, f"Content-Type must be one of {', '.join(sorted(CONTENT_TYPES))}.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return _plain(
            413, f"The body is over {MAX_BODY_BYTES} bytes: send fewer messages per request."
        )
    body = _read_body(request)
    if len(body) > MAX_BODY_BYTES:
        return _plain(
            413, f"The body is over {MAX_BODY_BYTES} bytes: send fewer messages per request."
        )
    text = _decode(body, request.encoding)
    count, limit = len(split_messages(text)), settings.HL7_MAX_MESSAGES_PER_REQUEST
    if count > limit:
        InterfaceToken.objects.filter(pk=interface.pk).update(last_used_at=timezone.now())
        logger.warning(
            "HL7 from interface %s refused: %s messages, over the limit of %s",
            interface.name,
            count,
            limit,
        )
        return _plain(
            413,
            f"{count} messages received; the limit is {limit} messages per request "
            "(HL7_MAX_MESSAGES_PER_REQUEST). Nothing was stored: send them in smaller requests.",
        )
    with change_reason(f"HL7 interface: {interface.name}"):
        results = import_hl7_messages(text, user=None)
    InterfaceToken.objects.filter(pk=interface.pk).update(last_used_at=timezone.now())
    if not results:
        return _plain(400, "No HL7 message found: each message starts with an MSH segment.")
    logger.info(
        "HL7 from interface %s: %s",
        interface.name,
        ", ".join(f"{r.control_id or '-'} {r.status}" for r in results),
    )
    answer_type = ER7 if content_type == ER7 else "text/plain"
    return HttpResponse(
        "".join(ack_for(r) for r in results), content_type=f"{answer_type}; charset=utf-8"
    )
