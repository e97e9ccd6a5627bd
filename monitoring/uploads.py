"""Uploads are refused before they are stored.

Django parses a multipart body as soon as anything reads ``request.POST`` (the CSRF check
does, before any view), and by default writes a file larger than
``FILE_UPLOAD_MAX_MEMORY_SIZE`` to a temporary file on disk: a 50 MB upload was on disk
before the import form said "the limit is 5 MB". Two guards instead:

- ``UploadSizeMiddleware`` (above the CSRF check) answers 413 to a multipart POST whose
  declared ``Content-Length`` is over ``UPLOAD_MAX_BYTES`` plus room for the form's other
  fields, before a byte of the body is read;
- ``LimitedMemoryUploadHandler`` (the only ``FILE_UPLOAD_HANDLERS`` entry) keeps each file
  in memory up to ``UPLOAD_MAX_BYTES`` and drops the rest of a larger one, for bodies
  without a Content-Length (chunked) or with a false one. The form then sees a file marked
  ``truncated`` and says it is over the limit.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse

# Room for the CSRF token, the kind field and the multipart boundaries around the file.
FORM_OVERHEAD_BYTES = 64 * 1024


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def limit_text() -> str:
    return (
        f"the limit is {megabytes(settings.UPLOAD_MAX_BYTES)}. Split it into smaller files "
        "and upload them one after the other."
    )


class UploadSizeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.content_type == "multipart/form-data":
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > settings.UPLOAD_MAX_BYTES + FORM_OVERHEAD_BYTES:
                from .middleware import _page

                return _page(
                    413,
                    "File too large",
                    f"The upload is {megabytes(declared)}; {limit_text()} Nothing was stored.",
                )
        return self.get_response(request)


class TruncatedUpload(InMemoryUploadedFile):
    """A file dropped past the limit: no content, the size received so far."""

    truncated = True


class LimitedMemoryUploadHandler(FileUploadHandler):
    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.buffer: io.BytesIO | None = io.BytesIO()
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.buffer is not None and self.received > settings.UPLOAD_MAX_BYTES:
            self.buffer = None  # over the limit: keep nothing of it
        if self.buffer is not None:
            self.buffer.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        if self.buffer is None:
            return TruncatedUpload(
                io.BytesIO(),
                self.field_name,
                self.file_name,
                self.content_type,
                self.received,
                self.charset,
                self.content_type_extra,
            )
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            self.buffer,
            self.field_name,
            self.file_name,
            self.content_type,
            file_size,
            self.charset,
            self.content_type_extra,
        )
