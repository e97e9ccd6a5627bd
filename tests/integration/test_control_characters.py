"""Text fields refuse NUL and other control characters everywhere (forms, admin, CSV and HL7
imports), with a message naming the field and showing the character, on SQLite as on
PostgreSQL (which refuses NUL by itself, SQLite stores it)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from monitoring import rules
from monitoring.importers import run_csv_import
from monitoring.importers.hl7 import ERROR, import_hl7_messages
from monitoring.models import Patient, ReportSignoff, TroughLevel
from tests.integration.test_patient_page import make_patient, trough
from tests.integration.test_web_import import hl7

pytestmark = pytest.mark.django_db

CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85"]


@pytest.mark.parametrize("char", CONTROLS + ["\t", "\n", "\r"])
def test_the_rule_finds_control_characters_in_one_line_text(char):
    assert rules.control_character(f"Do{char}e") == char


@pytest.mark.parametrize("char", ["\t", "\n", "\r\n"])
def test_multi_line_text_keeps_line_breaks_and_tabs(char):
    assert rules.control_character(f"line{char}next", multiline=True) is None


@pytest.mark.parametrize("text", ["Muñoz", "O'Brien-Łukasz", "李", "5.2 ng/mL", ""])
def test_ordinary_text_passes(text):
    assert rules.control_character(text) is None


@pytest.mark.parametrize("char", CONTROLS)
def test_a_csv_import_refuses_a_name_with_a_control_character(char):
    data = f"mrn,family_name,given_name,birth_date,sex\nCC-1,Do{char}e,Jane,1988-04-12,F\n"

    report = run_csv_import("patients", data.encode())

    assert not report.ok
    problem = report.problems[0]
    assert problem.column == "family_name"
    assert "control character" in problem.message
    assert f"U+{ord(char):04X}" in problem.message
    assert not Patient.objects.exists()


@pytest.mark.parametrize("char", ["\xa0", "\u2028", "\u200b"])
def test_a_csv_import_keeps_unprintable_text_that_is_no_control_character(char):
    # Not printable to Python (a space or a format character), yet ordinary text: the
    # whole-row shortcut sends such a row to the cell-by-cell look, which lets it pass.
    data = f"mrn,family_name,given_name,birth_date,sex\nCC-2,Doe,Jane{char}Marie,1988-04-12,F\n"

    report = run_csv_import("patients", data.encode())

    assert report.ok, report.problems
    assert Patient.objects.get(mrn="CC-2").given_name == f"Jane{char}Marie"


def test_an_hl7_accession_with_a_control_character_is_refused():
    make_patient("MRN-1")

    (result,) = import_hl7_messages(hl7(accession="ACC\x01H"))

    assert result.status == ERROR
    assert any("OBR-3" in reason and "control character" in reason for reason in result.reasons)
    assert not TroughLevel.objects.filter(accession__startswith="ACC\x01").exists()


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x00"])
def test_the_admin_refuses_a_patient_name_with_a_control_character(client_for, char):
    client = client_for("data_entry", is_staff=True)
    management = {
        f"{prefix}-{key}": value
        for prefix in ("targets", "regimens", "levels", "drugs", "labs")
        for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
    }

    response = client.post(
        reverse("admin:monitoring_patient_add"),
        {
            "mrn": "ADM-9",
            "family_name": f"Do{char}e",
            "given_name": "Jo",
            "birth_date": "1990-01-01",
            "sex": "F",
            **management,
        },
    )

    assert response.status_code == 200
    assert not Patient.objects.filter(mrn="ADM-9").exists()
    html = response.content.decode()
    assert "control character" in html or "Null characters are not allowed" in html


def test_the_trough_form_refuses_an_accession_with_a_control_character(client_for):
    patient = make_patient("MRN-1")
    client = client_for("clinician")

    response = client.post(
        reverse("monitoring:level_add", args=[patient.pk]), trough(accession="AC\x1bC")
    )

    assert response.status_code == 422
    assert "control character (U+001B)" in response.content.decode()
    assert (
        not TroughLevel.objects.filter(accession__startswith="AC")
        .exclude(accession__startswith="ACC")
        .exists()
    )


def test_the_entered_in_error_reason_refuses_a_control_character(client_for):
    patient = make_patient("MRN-1")
    level = patient.levels.first()
    client = client_for("clinician")

    response = client.post(
        reverse("monitoring:level_mark_error", args=[patient.pk, level.pk]),
        {"reason": "typo\x08 in value"},
    )

    assert response.status_code == 422
    assert "control character (U+0008)" in response.content.decode()
    level.refresh_from_db()
    assert not level.in_error


def test_a_sign_off_keeps_line_breaks_but_refuses_control_characters(client_for):
    patient = make_patient("MRN-1")
    client = client_for("clinician")
    url = reverse("monitoring:report_sign_off", args=[patient.pk])

    refused = client.post(url, {"interpretation": "Stable.\x1b[31m"})
    saved = client.post(url, {"interpretation": "Stable.\r\nRecheck in 4 weeks."})

    assert refused.status_code == 422
    assert "control character (U+001B)" in refused.content.decode()
    assert saved.status_code == 302
    assert ReportSignoff.objects.get(patient=patient).interpretation.startswith("Stable.")
