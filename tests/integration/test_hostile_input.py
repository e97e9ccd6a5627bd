"""Malformed and hostile input to every form, query string, upload, import and interface:
wrong types, huge values, SQL and HTML fragments, broken encodings, oversized files. The
answer is a clear error (a 4xx, or a page that names the problem), never a server error,
never an unescaped fragment, and nothing is partly written."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.importers.hl7 import import_hl7_messages
from monitoring.importers.kinds import IMPORTERS
from monitoring.models import (
    ConcomitantDrug,
    InterfaceToken,
    LabResult,
    Patient,
    Regimen,
    TargetAssignment,
    TroughLevel,
)

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
SCRIPT = "<script>alert('pwned')</script>"
SQL = "'; DROP TABLE monitoring_troughlevel; --"
HOSTILE = [
    "",
    " ",
    "abc",
    "-5",
    "0",
    "1e308",
    "9" * 1000,
    "NaN",
    "Infinity",
    SCRIPT,
    SQL,
    "\x00",
    "5\x002",
    "\ufeff5.2",
    "５．２",
    "\u202e5.2",
    "😀",
    "2026-02-30T25:61",
    "9999-12-31T23:59",
    "0001-01-01T00:00",
    "null",
    "[]",
    '{"a": 1}',
    "%s%s%s%n",
    "../../etc/passwd",
    "A" * 70000,
]
MODELS = (Patient, TargetAssignment, Regimen, TroughLevel, ConcomitantDrug, LabResult)


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{TODAY - timedelta(days=days_ago)}T{hour:02d}:00"


def counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


def assert_clear(response, *, allowed=(200, 302, 400, 403, 404, 405, 409, 413, 415, 422)):
    assert response.status_code < 500, response.status_code
    assert response.status_code in allowed, response.status_code
    body = response.content.decode("utf-8", "replace") if not response.streaming else ""
    if response.get("Content-Type", "").startswith("text/html"):
        assert "<script>alert(" not in body, "an unescaped fragment came back"
    assert "Traceback" not in body


@pytest.fixture
def patient() -> Patient:
    data = {
        "patients": "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
        f"H-1,Doe,Jane,1988-04-12,F,{TODAY - timedelta(days=400)}\n",
        "regimens": f"mrn,effective_at,formulation,frequency,daily_dose_mg\n"
        f"H-1,{stamp(100, 20)},IR,BID,3\n",
        "levels": "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"H-1,{stamp(10)},{stamp(11, 20)},5.2,ng/mL,ACC-1\n"
        f"H-1,{stamp(5)},,4.1,ng/mL,ACC-2\n",
    }
    for kind, text in data.items():
        assert run_csv_import(kind, text.encode()).ok
    return Patient.objects.get(mrn="H-1")


# --- front-office forms ----------------------------------------------------------------------

LEVEL_FIELDS = {
    "collected_at": stamp(2),
    "last_dose_at": stamp(3, 20),
    "reported_value": "5.0",
    "reported_unit": "ng/mL",
    "assay": "LCMSMS",
    "accession": "NEW-1",
    "status": "final",
}


@pytest.mark.parametrize("field", list(LEVEL_FIELDS))
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_the_add_trough_form_answers_hostile_values_with_a_field_error(
    client_for, patient, field, htmx
):
    client = client_for("clinician")
    url = reverse("monitoring:level_add", args=[patient.pk])
    headers = {"HX-Request": "true"} if htmx else {}
    before = TroughLevel.objects.count()

    for value in HOSTILE:
        response = client.post(url, {**LEVEL_FIELDS, field: value}, headers=headers)
        assert_clear(response)
        if response.status_code != 302 and not (
            htmx and response.status_code == 200 and TroughLevel.objects.count() > before
        ):
            # Refused: the form says why, and nothing was written.
            assert TroughLevel.objects.count() == before, (field, value)
        before = TroughLevel.objects.count()


def test_the_add_trough_form_refuses_wrong_types_and_missing_fields(client_for, patient):
    client = client_for("clinician")
    url = reverse("monitoring:level_add", args=[patient.pk])

    for data in (
        {},
        {"reported_value": ["1", "2"]},
        {"collected_at": "x" * 10_000},
        {**LEVEL_FIELDS, "status": "entered_in_error"},
        {**LEVEL_FIELDS, "accession": "ACC-1"},
    ):  # already recorded
        assert_clear(client.post(url, data), allowed=(400, 422))
    assert TroughLevel.objects.count() == 2


def test_a_trough_sent_twice_without_accession_is_stored_once(client_for, patient):
    client = client_for("clinician")
    url = reverse("monitoring:level_add", args=[patient.pk])
    data = {**LEVEL_FIELDS, "accession": ""}

    first = client.post(url, data)
    second = client.post(url, data)

    assert first.status_code == 302
    assert_clear(second)
    assert TroughLevel.objects.filter(accession="").count() == 1


@pytest.mark.parametrize("value", HOSTILE)
def test_the_last_dose_form_answers_hostile_values(client_for, patient, value):
    level = TroughLevel.objects.get(accession="ACC-2")  # has no last-dose time yet
    url = reverse("monitoring:level_last_dose", args=[patient.pk, level.pk])

    response = client_for("clinician").post(url, {"last_dose_at": value})

    assert_clear(response, allowed=(422,))
    level.refresh_from_db()
    assert level.last_dose_at is None


@pytest.mark.parametrize("value", HOSTILE)
def test_the_mark_in_error_form_answers_hostile_reasons(client_for, patient, value):
    level = TroughLevel.objects.get(accession="ACC-1")
    url = reverse("monitoring:level_mark_error", args=[patient.pk, level.pk])

    response = client_for("clinician").post(url, {"reason": value})

    assert_clear(response)
    level.refresh_from_db()
    if response.status_code == 422:
        assert not level.in_error
    else:  # accepted as a reason: stored as text, shown escaped everywhere
        assert level.error_reason == value.strip()
        history = client_for("viewer").get(reverse("monitoring:patient_history", args=[patient.pk]))
        assert_clear(history)
        page = client_for("viewer").get(reverse("monitoring:patient", args=[patient.pk]))
        assert_clear(page)


@pytest.mark.parametrize("url_name", ["monitoring:level_last_dose", "monitoring:level_mark_error"])
def test_a_level_of_another_patient_is_not_found(client_for, patient, url_name):
    other = Patient.objects.create(
        mrn="H-2", family_name="Roe", given_name="Ann", birth_date="1990-01-01", sex="F"
    )
    level = TroughLevel.objects.get(accession="ACC-1")

    response = client_for("clinician").post(
        reverse(url_name, args=[other.pk, level.pk]), {"reason": "x", "last_dose_at": stamp(11, 20)}
    )

    assert response.status_code == 404


# --- query strings and paths ------------------------------------------------------------------

QUERY_VALUES = [SCRIPT, SQL, "-1", "0", "9" * 30, "abc", "\x00", "%00", "😀", "a" * 5000]


@pytest.mark.parametrize(
    ("url_name", "params"),
    [
        ("monitoring:worklist", ["q", "alert", "range", "timing", "page"]),
        ("monitoring:worklist_export", ["q", "alert", "range", "timing"]),
        ("monitoring:patient", ["unit", "window", "months", "page"]),
        ("monitoring:patient_history", ["kind", "page"]),
        ("monitoring:patient_fhir", ["as_of"]),
        ("monitoring:access_log", ["mrn", "user", "since", "until", "page"]),
        ("monitoring:access_log_csv", ["mrn", "user", "since", "until"]),
    ],
)
def test_pages_answer_hostile_query_strings(client_for, patient, url_name, params):
    client = client_for("superuser")
    args = [patient.pk] if "<int:pk>" in _route(url_name) else []
    url = reverse(url_name, args=args)

    for name in params:
        for value in QUERY_VALUES:
            response = client.get(url, {name: value})
            assert_clear(response, allowed=(200, 400))


def _route(url_name: str) -> str:
    from django.urls import get_resolver

    for pattern in get_resolver().url_patterns:
        if getattr(pattern, "namespace", None) == "monitoring":
            for inner in pattern.url_patterns:
                if f"monitoring:{inner.name}" == url_name:
                    return str(inner.pattern)
    return ""


@pytest.mark.parametrize("pk", ["0", "99999999999999999999999", "2147483648", "-1"])
@pytest.mark.parametrize("suffix", ["", "history/", "fhir.json"])
def test_absurd_patient_numbers_are_not_found(client_for, pk, suffix):
    response = client_for("viewer").get(f"/patients/{pk}/{suffix}")

    assert response.status_code == 404


def test_an_oversized_form_body_is_refused_with_400(client_for, patient):
    url = reverse("monitoring:level_add", args=[patient.pk])

    client = client_for("clinician")
    value = "1" * (6 * 1024 * 1024)

    # A multipart body declared over the upload limit: 413 before the body is read.
    multipart = client.post(url, {"reported_value": value})
    # A urlencoded one: Django's DATA_UPLOAD_MAX_MEMORY_SIZE, 400.
    urlencoded = client.post(
        url, f"reported_value={value}", content_type="application/x-www-form-urlencoded"
    )

    assert multipart.status_code == 413
    assert urlencoded.status_code == 400
    assert TroughLevel.objects.count() == 2


def test_too_many_form_fields_are_refused_with_400(client_for, patient):
    url = reverse("monitoring:level_add", args=[patient.pk])
    data = {f"f{i}": "x" for i in range(1500)}

    response = client_for("clinician").post(url, data)

    assert response.status_code == 400


def test_the_login_form_answers_hostile_input(client):
    for value in HOSTILE[:-1]:
        response = client.post(reverse("login"), {"username": value, "password": value})
        assert_clear(response, allowed=(200, 429))
    assert "_auth_user_id" not in client.session


# --- the back office ---------------------------------------------------------------------------

ADMIN_LEVEL = {
    "collected_at_0": str(TODAY - timedelta(days=2)),
    "collected_at_1": "08:00",
    "last_dose_at_0": str(TODAY - timedelta(days=3)),
    "last_dose_at_1": "20:00",
    "reported_value": "5.0",
    "reported_unit": "ng/mL",
    "assay": "LCMSMS",
    "accession": "ADM-1",
    "status": "final",
    "error_reason": "",
}


@pytest.mark.parametrize("field", [f for f in ADMIN_LEVEL if f != "error_reason"])
def test_the_admin_trough_form_answers_hostile_values(client_for, patient, field):
    client = client_for("data_entry", is_staff=True)
    url = reverse("admin:monitoring_troughlevel_add")
    before = TroughLevel.objects.count()

    for value in HOSTILE:
        response = client.post(url, {**ADMIN_LEVEL, "patient": patient.pk, field: value})
        assert_clear(response)
        if response.status_code == 200:  # the form again, with the error
            assert TroughLevel.objects.count() == before
        before = TroughLevel.objects.count()


def test_the_admin_patient_form_answers_hostile_values(client_for):
    client = client_for("data_entry", is_staff=True)
    url = reverse("admin:monitoring_patient_add")
    management = {
        f"{prefix}-{key}": value
        for prefix in ("targets", "regimens", "levels", "drugs", "labs")
        for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
    }
    base = {
        "mrn": "ADM-9",
        "family_name": "Doe",
        "given_name": "Jo",
        "birth_date": "1990-01-01",
        "sex": "F",
        **management,
    }

    for field in ("mrn", "birth_date", "sex", "height_cm", "family_name"):
        for value in (SCRIPT, SQL, "\x00", "9" * 1000, "2026-02-30", "-5"):
            assert_clear(client.post(url, {**base, field: value}))
    for patient in Patient.objects.all():
        assert "<script>" not in patient.mrn


# --- imports: the function, the commands, the web page, the HL7 endpoint ------------------------

GOOD_ROWS = {
    "patients": ("mrn,family_name,given_name,birth_date,sex", ["P-{i},Doe,Jane,1988-04-12,F"]),
    "regimens": ("mrn,effective_at,formulation,frequency,daily_dose_mg", ["H-1,{ts},IR,BID,3"]),
    "levels": (
        "mrn,collected_at,last_dose_at,value,unit,accession",
        ["H-1,{ts},,5.{i},ng/mL,L-{i}"],
    ),
    "medications": ("mrn,drug,started_on", ["H-1,drug{i},{day}"]),
    "labs": ("mrn,collected_at,test,value,unit", ["H-1,{ts},creatinine,0.9,mg/dL"]),
}


def _good(kind: str, n: int) -> list[str]:
    header, (template,) = GOOD_ROWS[kind]
    return [header] + [
        template.format(i=i, ts=stamp(20 + i), day=TODAY - timedelta(days=20 + i)) for i in range(n)
    ]


HOSTILE_FILES = {
    "binary": bytes(range(256)) * 4,
    "latin-1": "mrn,family_name\nH-1,Mu\xf1oz\n".encode("latin-1"),
    "utf-16": "mrn,value\nH-1,5\n".encode("utf-16"),
    "empty": b"",
    "only blank lines": b"\n\n\r\n  \n",
    "nul bytes": b"mrn,value\x00\nH-1\x00,5\n",
    "unterminated quote": b'mrn,value,unit\n"H-1,5.2,ng/mL\n',
    "10000 columns": (",".join(f"c{i}" for i in range(10_000)) + "\n").encode(),
    "long lines": b"mrn,value,unit\n" + (b"H-1," + b"9" * 100_000 + b",ng/mL\n") * 3,
    "html and sql": f"mrn,value,unit\n{SCRIPT},{SQL},{SCRIPT}\n".encode(),
    "formula cells": b"mrn,value,unit\n=cmd|' /C calc'!A0,+5,@SUM(1)\n",
    "mac line endings": b"mrn,value\rH-1,5\r",
}


@pytest.mark.parametrize("kind", list(IMPORTERS))
@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_the_import_function_reports_a_hostile_file_and_writes_nothing(patient, kind, name):
    before = counts()

    report = run_csv_import(kind, HOSTILE_FILES[name])

    assert not report.ok or not report.written or report.counts["created"] == 0
    assert report.problems or report.warnings or not report.rows
    for problem in report.problems:
        assert str(problem)
    assert counts() == before


@pytest.mark.parametrize("kind", list(IMPORTERS))
def test_one_hostile_row_after_good_rows_writes_nothing_at_all(patient, kind):
    lines = _good(kind, 3)
    columns = lines[0].count(",") + 1
    lines.append(",".join([SCRIPT] + [SQL] * (columns - 1)))
    before = counts()

    report = run_csv_import(kind, "\n".join(lines).encode())

    assert not report.ok
    assert any(p.row == 5 for p in report.problems)
    assert counts() == before


@pytest.mark.parametrize(
    ("kind", "row"),
    [
        ("levels", "H-1,{ts},,0.00000001,ng/mL,TINY"),  # below the stored precision
        ("levels", "H-1,{ts},,99999999999999999999,ng/mL,BIG"),
        ("levels", "H-1,{ts},,5.2,ng/mL," + "A" * 65),
        ("regimens", "H-1,{ts},IR,BID,1e400"),
        ("regimens", "H-1,{ts},IR,BID,9999999.999"),
        ("labs", "H-1,{ts},creatinine,1e-50,mg/dL"),
        ("labs", "H-1,{ts},creatinine,123456789012.12345,mg/dL"),
        ("patients", "P-9,{long},Jane,1988-04-12,F"),
        ("patients", "P-9,Doe,Jane,1988-04-12,F,999999"),
        ("medications", "H-1,{long},{day}"),
    ],
)
def test_out_of_range_values_are_problems_not_crashes(patient, kind, row):
    header = _good(kind, 0)[0]
    if row.count(",") > header.count(","):
        header += ",height_cm"
    text = header + "\n" + row.format(ts=stamp(3), day=TODAY - timedelta(days=3), long="x" * 500)
    before = counts()

    report = run_csv_import(kind, text.encode())

    assert not report.ok, report.summary()
    assert counts() == before


def test_the_import_command_answers_hostile_files_with_a_message(patient, tmp_path):
    for name, data in HOSTILE_FILES.items():
        path = tmp_path / f"{re.sub(r'[^a-z0-9]+', '-', name)}.csv"
        path.write_bytes(data)
        err = StringIO()
        with pytest.raises(SystemExit) as exit_:
            call_command("import_csv", "levels", str(path), stderr=err, stdout=StringIO())
        assert exit_.value.code == 1, name
        assert err.getvalue().strip(), name
        assert "Traceback" not in err.getvalue()
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_csv", "levels", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_csv", "levels", str(tmp_path))  # a directory


def test_the_hl7_command_answers_hostile_files_with_a_message(patient, tmp_path):
    for name, data in HOSTILE_FILES.items():
        path = tmp_path / f"{re.sub(r'[^a-z0-9]+', '-', name)}.hl7"
        path.write_bytes(data)
        err, out = StringIO(), StringIO()
        with pytest.raises(SystemExit) as exit_:
            call_command("import_hl7", str(path), stderr=err, stdout=out)
        assert exit_.value.code == 1, name
        assert "Traceback" not in err.getvalue() + out.getvalue()
    assert counts()["TroughLevel"] == 2


def _msg(obx: str, *, obr_time: str = "") -> str:
    obr_time = obr_time or f"{(TODAY - timedelta(days=3)):%Y%m%d}0730"
    return (
        "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20260312093000||ORU^R01|M1|P|2.5.1\r"
        "PID|1||H-1^^^GH^MR||Doe^Jane||19880412|F\r"
        f"OBR|1|O1|ACC-H|77348-1^Tacrolimus^LN|||{obr_time}\r"
        f"{obx}\r"
    )


HOSTILE_HL7 = {
    "sql in value": _msg(f"OBX|1|NM|77348-1^Tac^LN||{SQL}|ng/mL|||||F"),
    "script in value": _msg(f"OBX|1|ST|77348-1^Tac^LN||{SCRIPT}|ng/mL|||||F"),
    "huge value": _msg("OBX|1|NM|77348-1^Tac^LN||" + "9" * 5000 + "|ng/mL|||||F"),
    "unknown status": _msg("OBX|1|NM|77348-1^Tac^LN||5.2|ng/mL|||||Z"),
    "bad time": _msg("OBX|1|NM|77348-1^Tac^LN||5.2|ng/mL|||||F|||2026XX"),
    "future time": _msg("OBX|1|NM|77348-1^Tac^LN||5.2|ng/mL|||||F|||29991231235959"),
    "wrong separators": "MSH#^~\\&#LIS\rPID#1\r",
    "no PID": "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20260312093000||ORU^R01|M1|P|2.5.1\rOBX|1|NM\r",
    "obx before obr": "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20260312093000||ORU^R01|M1|P|2.5.1\r"
    "PID|1||H-1\rOBX|1|NM|77348-1^Tac^LN||5|ng/mL|||||F\r",
    "nul bytes": _msg("OBX|1|NM|77348-1^Tac^LN||5\x00.2|ng/mL|||||F"),
    "deep components": _msg("OBX|1|NM|77348-1" + "^" * 5000 + "|" + "&" * 5000),
}


@pytest.mark.parametrize("name", list(HOSTILE_HL7))
def test_hostile_hl7_messages_are_refused_and_write_nothing(patient, name):
    before = counts()

    results = import_hl7_messages(HOSTILE_HL7[name])

    assert results
    assert all(not r.accepted for r in results), [r.summary() for r in results]
    assert counts() == before


def test_an_hl7_code_repeated_thousands_of_times_is_read_once(patient):
    message = _msg("OBX|1|NM|" + "~".join(["77348-1^Tac^LN"] * 2000) + "||5|ng/mL|||||F")

    results = import_hl7_messages(message)

    assert [r.accepted for r in results] == [True]
    assert TroughLevel.objects.filter(accession="ACC-H").count() == 1


# A single CSV field over 131072 characters (Python's csv.field_size_limit) makes csv.reader
# raise _csv.Error, which nothing catches: a traceback from import_csv and a 500 from the web
# upload, for a file well under the 5 MB limit.
HUGE_FIELD = b"mrn,value,unit\nH-1," + b"9" * 200_000 + b",ng/mL\n"


def test_a_huge_csv_field_is_a_problem_for_the_import_function(patient):
    report = run_csv_import("levels", HUGE_FIELD)

    assert not report.ok


def test_a_huge_csv_field_is_a_problem_for_the_upload_page(data_entry_client, patient):
    data_entry_client.raise_request_exception = False

    response = _upload(data_entry_client, "levels", HUGE_FIELD)

    # The preview answers like any file with problems: the page, with the problem named.
    assert response.status_code == 200
    assert "cannot be read as CSV" in response.content.decode()


def test_an_hl7_time_with_an_impossible_offset_is_refused(patient):
    results = import_hl7_messages(
        _msg("OBX|1|NM|77348-1^Tac^LN||5.2|ng/mL|||||F|||202603120730+9999")
    )

    assert results[0].status != "accepted"


UPLOAD_PAGE = "monitoring:import"


def _upload(client, kind: str, data: bytes, name: str = "file.csv"):
    return client.post(reverse(UPLOAD_PAGE), {"kind": kind, "file": SimpleUploadedFile(name, data)})


@pytest.mark.parametrize("kind", [*IMPORTERS, "hl7"])
def test_the_upload_page_answers_hostile_files_and_writes_nothing(data_entry_client, patient, kind):
    before = counts()

    for data in HOSTILE_FILES.values():
        response = _upload(data_entry_client, kind, data, name=f"{SCRIPT}.csv")
        assert_clear(response, allowed=(200, 400))
    for data in HOSTILE_HL7.values():
        assert_clear(_upload(data_entry_client, kind, data.encode()), allowed=(200, 400))

    assert counts() == before


def test_the_upload_page_refuses_an_oversized_file(data_entry_client, patient):
    response = _upload(data_entry_client, "levels", b"x" * (5 * 1024 * 1024 + 1))

    assert response.status_code == 400
    assert "the limit is 5.0 MB" in response.content.decode()


def test_the_upload_page_refuses_a_wrong_kind_and_a_missing_file(data_entry_client):
    for data in (
        {"kind": "passwords", "file": SimpleUploadedFile("a.csv", b"mrn\n")},
        {"kind": "levels"},
        {"kind": ["levels", "labs"]},
        {},
    ):
        assert_clear(data_entry_client.post(reverse(UPLOAD_PAGE), data), allowed=(400,))


@pytest.mark.parametrize(
    "token", ["", "garbage", "a" * 100_000, f"{SCRIPT}:{SQL}", "eJw:1tQ:abc", "\x00"]
)
@pytest.mark.parametrize("url_name", ["monitoring:import_confirm", "monitoring:import_errors"])
def test_a_forged_confirm_token_is_refused(data_entry_client, patient, token, url_name):
    before = counts()

    response = data_entry_client.post(reverse(url_name), {"token": token})

    assert_clear(response, allowed=(302, 400))
    assert counts() == before


@pytest.fixture
def interface_token(db) -> str:
    _, token = InterfaceToken.issue("test feed")
    return token


@pytest.mark.parametrize("name", list(HOSTILE_HL7))
def test_the_hl7_endpoint_acknowledges_hostile_messages_without_writing(
    client, patient, interface_token, name
):
    before = counts()

    response = client.post(
        reverse("monitoring:hl7_inbound"),
        HOSTILE_HL7[name],
        content_type="x-application/hl7-v2+er7",
        headers={"Authorization": f"Bearer {interface_token}"},
    )

    assert_clear(response, allowed=(200, 400))
    assert counts() == before


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (HOSTILE_FILES["binary"], "x-application/hl7-v2+er7", (200, 400)),
        (b"", "x-application/hl7-v2+er7", (400, 415)),
        (HOSTILE_HL7["sql in value"].encode(), "application/json", (415,)),
        (HOSTILE_HL7["sql in value"].encode(), "text/plain; charset=klingon", (200, 400, 415)),
        (HOSTILE_HL7["sql in value"].encode("utf-16"), "text/plain; charset=utf-16", (200, 400)),
        (b"x" * (5 * 1024 * 1024 + 1), "text/plain", (413,)),
    ],
)
def test_the_hl7_endpoint_refuses_malformed_requests(
    client, patient, interface_token, body, content_type, status
):
    # generic(): the body goes out as these bytes, whatever charset the header claims.
    response = client.generic(
        "POST",
        reverse("monitoring:hl7_inbound"),
        body,
        content_type=content_type,
        headers={"Authorization": f"Bearer {interface_token}"},
    )

    assert_clear(response, allowed=status)
    assert counts()["TroughLevel"] == 2


@pytest.mark.parametrize("auth", ["", "Bearer", "Bearer nope", f"Basic {SQL}", "Bearer \x00"])
def test_the_hl7_endpoint_refuses_a_missing_or_wrong_token(client, patient, auth):
    headers = {"Authorization": auth} if auth else {}

    response = client.post(
        reverse("monitoring:hl7_inbound"),
        HOSTILE_HL7["sql in value"],
        content_type="text/plain",
        headers=headers,
    )

    assert response.status_code == 401
