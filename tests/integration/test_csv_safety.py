"""Every CSV the site or a command writes is safe to open in a spreadsheet: a text cell that
a spreadsheet would run as a formula starts with an apostrophe; numbers are unchanged. MRNs
may not begin with '-' or '+'."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from monitoring import validation
from monitoring.csv_safe import spreadsheet_safe
from monitoring.importers import run_csv_import
from monitoring.rules import RuleError
from monitoring.views.imports import hl7_error_csv

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("-", "'-"),
        # numbers as they are
        ("-5", "-5"),
        ("-0.25", "-0.25"),
        ("+3.0", "+3.0"),
        ("-1e-3", "-1e-3"),
        ("5.20", "5.20"),
        # ordinary text
        ("Doe", "Doe"),
        ("", ""),
        ("2025-03-12T07:30:00+01:00", "2025-03-12T07:30:00+01:00"),
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_an_apostrophe(cell, written):
    assert spreadsheet_safe(cell) == written


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


@pytest.fixture
def hostile_patient():
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
        "MRN-9,=cmd,@given,1988-04-12,F,2024-01-01\n",
    )
    load(
        "levels",
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        'MRN-9,2025-02-03T08:00,2025-02-02T20:00,5.2,ng/mL,"=1+2"\n',
    )
    load("medications", 'mrn,drug,started_on\nMRN-9,"@SUM(A1)",2025-01-01\n')


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def export(kind: str) -> list[list[str]]:
    out = io.StringIO()
    call_command("export_csv", kind, stdout=out)
    return rows_of(out.getvalue())


def test_the_levels_export_defuses_an_accession(hostile_patient):
    rows = export("levels")
    header, row = rows[0], rows[1]

    assert row[header.index("accession")] == "'=1+2"
    assert row[header.index("value_ng_ml")] == "5.20"


def test_the_medications_export_defuses_a_drug_name(hostile_patient):
    rows = export("medications")

    assert rows[1][rows[0].index("drug")] == "'@SUM(A1)"


def test_the_import_error_file_defuses_what_was_uploaded(data_entry_client, hostile_patient):
    bad = (
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        'MRN-9,2025-03-03T08:00,,abc,ng/mL,"=HYPERLINK(""http://evil"")"\n'
    )
    preview = data_entry_client.post(
        reverse("monitoring:import"),
        {"kind": "levels", "file": SimpleUploadedFile("x.csv", bad.encode())},
    )
    download = data_entry_client.post(
        reverse("monitoring:import_errors"), {"token": preview.context["preview"].token}
    )

    rows = rows_of(download.content.decode("utf-8-sig"))
    assert rows[1][5] == '\'=HYPERLINK("http://evil")'


def test_the_hl7_error_file_defuses_its_cells():
    class Result:
        index = 1
        control_id = "=ctl"
        mrn = "MRN-1"
        status = "AE"
        reason = "-bad"
        accepted = False

    rows = rows_of(hl7_error_csv([Result()]))

    assert rows[1] == ["1", "'=ctl", "MRN-1", "AE", "'-bad"]


@pytest.mark.parametrize("mrn", ["-123", "+44123", "-MRN-1"])
def test_an_mrn_may_not_begin_with_a_sign(mrn):
    with pytest.raises(RuleError) as error:
        validation.mrn(mrn)

    assert error.value.value == mrn
    assert "begin" in error.value.message


def test_an_import_refuses_an_mrn_beginning_with_a_sign():
    report = run_csv_import(
        "patients",
        b"mrn,family_name,given_name,birth_date,sex\n-123,Doe,Jane,1988-04-12,F\n",
    )

    assert not report.ok
    assert "'-123'" in str(report.problems[0])
