"""An upload over the limit is refused before it is stored: a declared Content-Length over
the limit is answered before the body is read; a body that turns out larger (no or a lying
Content-Length) is dropped once past the limit, never written to a temporary file."""

from __future__ import annotations

import pytest
from django.core.files import uploadedfile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import multipartparser
from django.urls import reverse

from monitoring.views import imports

pytestmark = pytest.mark.django_db

PAGE = reverse("monitoring:import")


@pytest.fixture
def no_temporary_files(monkeypatch):
    made = []

    def refuse(self, *args, **kwargs):
        made.append(args)
        raise AssertionError("an upload was written to a temporary file")

    monkeypatch.setattr(uploadedfile.TemporaryUploadedFile, "__init__", refuse)
    return made


def test_a_50_mb_upload_is_refused_before_its_body_is_read(data_entry_client, monkeypatch):
    parsed = []
    original = multipartparser.MultiPartParser.parse

    def spy(self):
        parsed.append(True)
        return original(self)

    monkeypatch.setattr(multipartparser.MultiPartParser, "parse", spy)
    big = SimpleUploadedFile("big.csv", b"mrn,value\n" + b"x" * (50 * 1024 * 1024))

    response = data_entry_client.post(PAGE, {"kind": "levels", "file": big})

    assert response.status_code == 413
    assert "the limit is 5.0 MB" in response.content.decode()
    assert parsed == []


def test_a_file_just_over_the_limit_never_reaches_a_temporary_file(
    data_entry_client, no_temporary_files
):
    body = b"mrn,value\n" + b"x" * imports.MAX_UPLOAD_BYTES

    response = data_entry_client.post(
        PAGE, {"kind": "levels", "file": SimpleUploadedFile("a.csv", body)}
    )

    assert response.status_code == 400
    assert "the limit is 5.0 MB" in response.content.decode()
    assert no_temporary_files == []


def test_a_file_within_the_limit_still_previews(data_entry_client, no_temporary_files):
    body = b"mrn,family_name,given_name,birth_date,sex\nU-1,Doe,Jane,1988-04-12,F\n"

    response = data_entry_client.post(
        PAGE, {"kind": "patients", "file": SimpleUploadedFile("ok.csv", body)}
    )

    assert response.status_code == 200
    assert response.context["preview"] is not None
