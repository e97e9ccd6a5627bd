"""The web import page: upload, preview (nothing written), confirm (all or nothing), error rows
as CSV, HL7 files, permissions and limits."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from monitoring.importers import run_csv_import
from monitoring.models import ImportJob, Patient, Source, TroughLevel
from monitoring.views import imports

pytestmark = pytest.mark.django_db

PAGE = reverse("monitoring:import")
CONFIRM = reverse("monitoring:import_confirm")
ERRORS = reverse("monitoring:import_errors")

PATIENTS = (
    "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start\n"
    "MRN-1,Doe,Jane,1988-04-12,F,ln_maintenance,2024-09-01\n"
    "MRN-2,Roe,Maria,1975-11-30,F,,2022-02-15\n"
)
LEVELS_ONE_BAD = (
    "mrn,collected_at,last_dose_at,value,unit,assay,accession\n"
    "MRN-1,2025-02-03T08:00,2025-02-02T20:00,3.2,ng/mL,LCMSMS,ACC-1\n"
    "MRN-1,2025-03-03T08:00,2025-03-02T20:00,abc,ng/mL,LCMSMS,ACC-2\n"
    "MRN-1,2025-04-03T08:00,,5.0,ng/mL,CMIA,ACC-3\n"
)
LEVELS_FIXED = LEVELS_ONE_BAD.replace(",abc,", ",4.4,")

HL7_MESSAGE = (
    "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20250312093000||ORU^R01|{control}|P|2.5.1\r"
    "PID|1||{mrn}^^^GH^MR||Doe^Jane||19880412|F\r"
    "OBR|1|ORD1|{accession}|77348-1^Tacrolimus trough^LN|||20250312073000\r"
    "OBX|1|NM|77348-1^Tacrolimus trough^LN||5.2|ng/mL^^UCUM|5.0-15.0|N|||F|||20250312073000|||"
    "LCMSMS\r"
)


def hl7(control="MSG1", mrn="MRN-1", accession="ACC-H1") -> str:
    return HL7_MESSAGE.format(control=control, mrn=mrn, accession=accession)


def upload(client: Client, kind: str, text: str | bytes, name: str = "file.csv"):
    data = text.encode() if isinstance(text, str) else text
    return client.post(PAGE, {"kind": kind, "file": SimpleUploadedFile(name, data)})


def token_of(response) -> str:
    return response.context["preview"].token


@pytest.fixture
def patients():
    report = run_csv_import("patients", PATIENTS.encode())
    assert report.ok, report.problems


def test_the_page_offers_every_kind_to_data_entry(data_entry_client):
    response = data_entry_client.get(PAGE)
    assert response.status_code == 200
    for kind in ("patients", "regimens", "levels", "medications", "labs", "hl7"):
        assert f'value="{kind}"' in response.content.decode()
    assert b'enctype="multipart/form-data"' in response.content


def test_the_preview_writes_nothing_until_confirmed(data_entry_client):
    response = upload(data_entry_client, "patients", PATIENTS, "patients.csv")
    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview.ok
    assert [(r.row, r.label) for r in preview.rows] == [(2, "new"), (3, "new")]
    assert dict(preview.counts)["new"] == 2
    assert b"Confirm import" in response.content
    assert Patient.objects.count() == 0
    assert Patient.history.count() == 0

    response = data_entry_client.post(CONFIRM, {"token": token_of(response)})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert response.url == reverse("monitoring:import_job", args=[job.pk])
    assert sorted(Patient.objects.values_list("mrn", flat=True)) == ["MRN-1", "MRN-2"]
    page = data_entry_client.get(response.url)
    assert "Import of patients.csv" in page.content.decode()
    assert 'data-status="succeeded"' in page.content.decode()
    # The history says where the change came from and who made it.
    record = Patient.history.get(mrn="MRN-1")
    assert record.history_change_reason == "web import (patients): patients.csv"
    assert record.history_user == data_entry_client.user


def test_the_preview_says_new_updated_or_unchanged_per_row(data_entry_client, patients):
    changed = PATIENTS.replace("Maria", "Marie")
    response = upload(data_entry_client, "patients", changed)
    labels = [r.label for r in response.context["preview"].rows]
    assert labels == ["unchanged", "updated"]
    assert Patient.objects.get(mrn="MRN-2").given_name == "Maria"


def test_confirmed_levels_are_stamped_with_the_user_and_source(data_entry_client, patients):
    response = upload(data_entry_client, "levels", LEVELS_FIXED)
    data_entry_client.post(CONFIRM, {"token": token_of(response)})
    levels = TroughLevel.objects.order_by("collected_at")
    assert [lv.accession for lv in levels] == ["ACC-1", "ACC-2", "ACC-3"]
    assert {lv.source for lv in levels} == {Source.CSV}
    assert {lv.entered_by for lv in levels} == {data_entry_client.user}
    # Flags are computed at once.
    assert levels[0].range_flag == "below"


def test_a_file_with_one_bad_row_writes_nothing_and_confirm_is_refused(data_entry_client, patients):
    response = upload(data_entry_client, "levels", LEVELS_ONE_BAD)
    assert response.status_code == 200
    preview = response.context["preview"]
    assert not preview.ok
    assert [(r.row, r.label) for r in preview.rows] == [(2, "new"), (3, "error"), (4, "new")]
    bad = preview.rows[1]
    assert bad.problems == [
        "row 3, column value: value 'abc': is not a number (expected e.g. 5.2, <1.0 or >30)"
    ]
    html = response.content.decode()
    assert "row 3, column value: value &#x27;abc&#x27;" in html
    assert "Confirm import" not in html
    assert TroughLevel.objects.count() == 0

    refused = data_entry_client.post(CONFIRM, {"token": token_of(response)}, follow=True)
    assert 'data-status="failed"' in refused.content.decode()
    assert "Nothing was imported" in refused.content.decode()
    assert TroughLevel.objects.count() == 0
    assert TroughLevel.history.count() == 0


def test_the_error_rows_download_as_csv_with_an_error_column(data_entry_client, patients):
    response = upload(data_entry_client, "levels", LEVELS_ONE_BAD, "march levels.csv")
    download = data_entry_client.post(ERRORS, {"token": token_of(response)})
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == 'attachment; filename="march_levels-errors.csv"'
    text = download.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "mrn",
        "collected_at",
        "last_dose_at",
        "value",
        "unit",
        "assay",
        "accession",
        "error",
    ]
    assert len(rows) == 2
    assert rows[1][:7] == [
        "MRN-1",
        "2025-03-03T08:00",
        "2025-03-02T20:00",
        "abc",
        "ng/mL",
        "LCMSMS",
        "ACC-2",
    ]
    assert rows[1][7].startswith("column value: value 'abc': ")
    assert TroughLevel.objects.count() == 0


def test_a_fixed_error_file_uploads_again_with_its_error_column_ignored(
    data_entry_client, patients
):
    response = upload(data_entry_client, "levels", LEVELS_ONE_BAD)
    text = data_entry_client.post(ERRORS, {"token": token_of(response)}).content
    fixed = text.decode("utf-8-sig").replace(",abc,", ",4.4,").encode("utf-8-sig")
    again = upload(data_entry_client, "levels", fixed)
    preview = again.context["preview"]
    assert preview.ok
    assert [r.label for r in preview.rows] == ["new"]
    assert preview.warnings == ["unknown column 'error' ignored"]


def test_semicolon_files_keep_their_delimiter_in_the_error_file(data_entry_client, patients):
    text = (
        "mrn;collected_at;value;unit;accession\n"
        "MRN-1;2025-02-03T08:00;5,2;ng/mL;ACC-1\n"
        "MRN-9;2025-02-04T08:00;4,8;ng/mL;ACC-2\n"
    )
    response = upload(data_entry_client, "levels", text)
    assert [r.label for r in response.context["preview"].rows] == ["new", "error"]
    lines = (
        data_entry_client.post(ERRORS, {"token": token_of(response)})
        .content.decode("utf-8-sig")
        .splitlines()
    )
    assert lines[0] == "mrn;collected_at;value;unit;accession;error"
    assert lines[1].startswith("MRN-9;2025-02-04T08:00;4,8;ng/mL;ACC-2;column mrn: value 'MRN-9'")


def test_a_missing_column_is_shown_as_a_file_problem(data_entry_client, patients):
    response = upload(data_entry_client, "levels", "mrn,collected_at,value\nMRN-1,2025-01-01,5\n")
    preview = response.context["preview"]
    assert not preview.ok
    assert preview.file_problems == ["row 1, column unit: value '': required column is missing"]
    assert preview.error_rows == 0
    assert "Download the" not in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "clinician"])
def test_other_roles_are_refused(client_for, role):
    client = client_for(role)
    assert client.get(PAGE).status_code == 403
    assert upload(client, "patients", PATIENTS).status_code == 403
    assert client.post(CONFIRM, {"token": "x"}).status_code == 403
    assert client.post(ERRORS, {"token": "x"}).status_code == 403
    assert Patient.objects.count() == 0


def test_a_superuser_may_import(client_for):
    client = client_for("superuser")
    response = upload(client, "patients", PATIENTS)
    assert response.status_code == 200
    client.post(CONFIRM, {"token": token_of(response)})
    assert Patient.objects.count() == 2


def test_anonymous_users_are_sent_to_the_login_page(client):
    for response in (client.get(PAGE), client.post(CONFIRM, {"token": "x"})):
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_an_oversized_file_gets_a_clear_error(data_entry_client):
    big = b"mrn,family_name\n" + b"x" * (imports.MAX_UPLOAD_BYTES)
    response = upload(data_entry_client, "patients", big)
    assert response.status_code == 400
    assert "the limit is 5.0 MB" in response.content.decode()
    assert response.context["preview"] is None


def test_a_missing_kind_or_file_is_a_form_error(data_entry_client):
    response = data_entry_client.post(PAGE, {"kind": "patients"})
    assert response.status_code == 400
    assert response.context["form"].errors["file"]
    response = upload(data_entry_client, "nonsense", PATIENTS)
    assert response.status_code == 400
    assert response.context["form"].errors["kind"]


def test_a_tampered_token_is_refused(data_entry_client):
    response = upload(data_entry_client, "patients", PATIENTS)
    token = token_of(response)
    tampered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    refused = data_entry_client.post(CONFIRM, {"token": tampered}, follow=True)
    assert "could not be verified" in refused.content.decode()
    assert Patient.objects.count() == 0


def test_another_users_preview_cannot_be_confirmed(client_for):
    alice, bob = client_for("data_entry"), client_for("data_entry")
    token = token_of(upload(alice, "patients", PATIENTS))
    refused = bob.post(CONFIRM, {"token": token}, follow=True)
    assert "belongs to another upload" in refused.content.decode()
    assert Patient.objects.count() == 0


def test_an_expired_preview_must_be_uploaded_again(data_entry_client, monkeypatch):
    token = token_of(upload(data_entry_client, "patients", PATIENTS))
    monkeypatch.setattr(imports, "MAX_AGE_SECONDS", -1)
    refused = data_entry_client.post(CONFIRM, {"token": token}, follow=True)
    assert "expired" in refused.content.decode()
    assert Patient.objects.count() == 0


def test_an_export_file_previews_with_one_warning_for_its_computed_columns(
    data_entry_client, patients
):
    run_csv_import("levels", LEVELS_FIXED.encode())
    out = io.StringIO()
    call_command("export_csv", "levels", stdout=out)
    response = upload(data_entry_client, "levels", out.getvalue())
    preview = response.context["preview"]
    assert preview.ok
    assert [r.label for r in preview.rows] == ["unchanged"] * 3
    assert len(preview.warnings) == 1
    assert preview.warnings[0].startswith("computed columns ignored")


# --- HL7 files ---------------------------------------------------------------------------------


def test_an_hl7_preview_writes_nothing_and_confirm_imports(data_entry_client, patients):
    text = hl7("MSG1") + hl7("MSG2", accession="ACC-H2")
    response = upload(data_entry_client, "hl7", text, "results.hl7")
    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview.ok
    assert [(m.control_id, m.status) for m in preview.messages] == [
        ("MSG1", "accepted"),
        ("MSG2", "accepted"),
    ]
    assert TroughLevel.objects.count() == 0
    assert TroughLevel.history.count() == 0

    done = data_entry_client.post(CONFIRM, {"token": token_of(response)})
    assert done.status_code == 302
    levels = TroughLevel.objects.order_by("accession")
    assert [lv.accession for lv in levels] == ["ACC-H1", "ACC-H2"]
    assert {lv.source for lv in levels} == {Source.HL7}
    assert {lv.entered_by for lv in levels} == {data_entry_client.user}
    assert levels[0].timing_flag == "unknown"  # no last-dose time in a lab message


def test_an_hl7_file_with_an_unknown_patient_writes_nothing(data_entry_client, patients):
    text = hl7("MSG1") + hl7("MSG2", mrn="MRN-404", accession="ACC-H2")
    response = upload(data_entry_client, "hl7", text, "results.hl7")
    preview = response.context["preview"]
    assert not preview.ok
    statuses = [(m.control_id, m.status) for m in preview.messages]
    assert statuses == [("MSG1", "accepted"), ("MSG2", "error")]
    assert "unknown patient" in preview.messages[1].reasons[0]
    assert "Confirm import" not in response.content.decode()

    refused = data_entry_client.post(CONFIRM, {"token": token_of(response)}, follow=True)
    assert 'data-status="failed"' in refused.content.decode()
    assert TroughLevel.objects.count() == 0  # not even the accepted message

    download = data_entry_client.post(ERRORS, {"token": token_of(response)})
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["message", "control_id", "mrn", "status", "error"]
    assert rows[1][:4] == ["2", "MSG2", "MRN-404", "error"]


def test_an_hl7_upload_without_messages_is_a_problem(data_entry_client):
    response = upload(data_entry_client, "hl7", "\n\n", "empty.hl7")
    preview = response.context["preview"]
    assert not preview.ok
    assert preview.file_problems == ["file: no HL7 message found (each starts with MSH)"]
