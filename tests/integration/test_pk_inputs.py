"""What the PK models need from the records: dosing clock times on the regimen, hematocrit
and body weight as lab tests, CYP3A5 expresser status on the patient; through the CSV
import, the export, the HL7 interface and the admin, with the same checks everywhere."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from monitoring.importers import run_csv_import
from monitoring.models import LabResult, Patient, Regimen

pytestmark = pytest.mark.django_db

PATIENTS = (
    "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
    "MRN-1,Doe,Jane,1988-04-12,F,2024-09-01\n"
)
REGIMEN_HEADER = "mrn,effective_at,formulation,frequency,daily_dose_mg,dose_times\n"


def load_patient() -> Patient:
    assert run_csv_import("patients", PATIENTS.encode()).ok
    return Patient.objects.get(mrn="MRN-1")


def export(kind: str) -> list[dict[str, str]]:
    out = io.StringIO()
    call_command("export_csv", kind, "--as-of", "2026-11-24", stdout=out)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def problems(report) -> list[str]:
    return [str(p) for p in report.problems]


@pytest.fixture
def staff(client_for):
    return client_for("data_entry", is_staff=True)


# --- dosing clock times ----------------------------------------------------------------------


def test_dose_times_import_normalised_and_empty_stays_empty_with_defaults_on_read():
    load_patient()
    report = run_csv_import(
        "regimens",
        (
            REGIMEN_HEADER + "MRN-1,2025-01-10T20:00,IR,BID,3,7:30;19:30\n"
            "MRN-1,2025-03-01T08:00,ER,QD,4,\n"
        ).encode(),
    )
    assert report.ok, problems(report)
    first, second = Regimen.objects.order_by("effective_at")
    assert (first.dose_times, first.clock_times) == ("07:30;19:30", ("07:30", "19:30"))
    # Stored empty: the default is applied on read, so a corrected frequency follows it.
    assert (second.dose_times, second.clock_times) == ("", ("08:00",))


@pytest.mark.parametrize(
    ("frequency", "times", "message"),
    [
        ("BID", "08:00", "BID needs 2 time(s), 1 given"),
        ("QD", "08:00;20:00", "QD needs 1 time(s), 2 given"),
        ("BID", "20:00;08:00", "strictly increasing"),
        ("QD", "25:00", "'25:00' is not a 24-hour time HH:MM"),
    ],
)
def test_bad_dose_times_refuse_the_file_naming_column_and_value(frequency, times, message):
    load_patient()
    report = run_csv_import(
        "regimens",
        (REGIMEN_HEADER + f'MRN-1,2025-01-10T20:00,IR,{frequency},3,"{times}"\n').encode(),
    )
    assert not report.ok
    assert any(
        f"row 2, column dose_times: value '{times}': " in p and message in p
        for p in problems(report)
    ), problems(report)
    assert not Regimen.objects.exists()


def test_a_file_without_the_column_keeps_stored_times_and_refuses_a_mismatching_frequency():
    load_patient()
    assert run_csv_import(
        "regimens", (REGIMEN_HEADER + "MRN-1,2025-01-10T20:00,IR,BID,3,07:00;19:00\n").encode()
    ).ok
    old_format = "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
    report = run_csv_import("regimens", (old_format + "MRN-1,2025-01-10T20:00,IR,BID,4\n").encode())
    assert report.ok
    assert Regimen.objects.get().dose_times == "07:00;19:00"
    report = run_csv_import("regimens", (old_format + "MRN-1,2025-01-10T20:00,IR,QD,4\n").encode())
    assert not report.ok
    assert "column dose_times: value '07:00;19:00'" in problems(report)[0]
    assert Regimen.objects.get().frequency == "BID"


def test_regimens_export_appends_dose_times_and_re_imports():
    load_patient()
    text = (
        REGIMEN_HEADER + "MRN-1,2025-01-10T20:00,IR,BID,3,07:30;19:30\n"
        "MRN-1,2025-03-01T08:00,ER,QD,4,\n"
    )
    assert run_csv_import("regimens", text.encode()).ok
    out = io.StringIO()
    call_command("export_csv", "regimens", "--as-of", "2026-11-24", stdout=out)
    header = out.getvalue().splitlines()[0]
    assert header == (
        "mrn,effective_at,formulation,frequency,daily_dose_mg,sampling_hours,dose_times"
    )
    assert [r["dose_times"] for r in export("regimens")] == ["07:30;19:30", ""]
    report = run_csv_import("regimens", out.getvalue().encode())
    assert report.ok and [r.action for r in report.rows] == ["unchanged", "unchanged"]


def regimen_post(patient, **overrides):
    data = {
        "patient": patient.pk,
        "effective_at_0": "2025-01-10",
        "effective_at_1": "20:00",
        "formulation": "IR",
        "frequency": "BID",
        "daily_dose_mg": "3",
        "sampling_hours": "",
        "dose_times": "",
        "note": "",
        "status": "active",
        "error_reason": "",
    }
    data.update(overrides)
    return data


def test_admin_stores_dose_times_and_refuses_what_the_import_refuses(staff):
    patient = load_patient()
    url = reverse("admin:monitoring_regimen_add")
    refused = staff.post(url, regimen_post(patient, dose_times="08:00"))
    assert refused.status_code == 200
    assert "value &#x27;08:00&#x27;: BID needs 2 time(s), 1 given" in refused.content.decode()
    assert not Regimen.objects.exists()
    saved = staff.post(url, regimen_post(patient, dose_times="6:00;18:00"))
    assert saved.status_code == 302
    assert Regimen.objects.get().dose_times == "06:00;18:00"
    listing = staff.get(reverse("admin:monitoring_regimen_changelist"))
    assert "06:00 / 18:00" in listing.content.decode()


# --- hematocrit and body weight -----------------------------------------------------------------

LAB_HEADER = "mrn,collected_at,test,value,unit\n"


def test_hematocrit_and_weight_import_with_their_units():
    patient = load_patient()
    report = run_csv_import(
        "labs",
        (
            LAB_HEADER + "MRN-1,2025-01-05T08:00,hct,38.5,%\n"
            "MRN-1,2025-01-05T08:00,WEIGHT,62.4,KG\n"
            "MRN-1,2025-01-06T08:00,weight,0.5,kg\n"
            "MRN-1,2025-01-07T08:00,weight,300,kg\n"
        ).encode(),
    )
    assert report.ok, problems(report)
    stored = sorted((lab.test, lab.value, lab.unit) for lab in patient.labs.all())
    assert stored == [
        ("hct", Decimal("38.5"), "%"),
        ("weight", Decimal("0.5"), "kg"),
        ("weight", Decimal("62.4"), "kg"),
        ("weight", Decimal("300"), "kg"),
    ]
    assert [(r["test"], r["value"], r["unit"]) for r in export("labs")] == [
        ("hct", "38.5", "%"),
        ("weight", "62.4", "kg"),
        ("weight", "0.5", "kg"),
        ("weight", "300", "kg"),
    ]


@pytest.mark.parametrize(
    ("test", "value", "unit", "column", "message"),
    [
        ("hct", "0.38", "%", "value", "value '0.38': is not a plausible hct (10–70 %)"),
        ("hct", "71", "%", "value", "value '71': is not a plausible hct (10–70 %)"),
        ("hct", "9.9", "%", "value", "is not a plausible hct"),
        ("hct", "38", "L/L", "unit", "value 'L/L': is not a unit for hct (accepted: %)"),
        ("weight", "0.4", "kg", "value", "value '0.4': is not a plausible weight (0.5–300 kg)"),
        ("weight", "301", "kg", "value", "is not a plausible weight (0.5–300 kg)"),
        ("weight", "140", "lb", "unit", "value 'lb': is not a unit for weight (accepted: kg)"),
    ],
)
def test_implausible_or_wrongly_unitised_covariates_refuse_the_file(
    test, value, unit, column, message
):
    load_patient()
    report = run_csv_import(
        "labs", (LAB_HEADER + f"MRN-1,2025-01-05T08:00,{test},{value},{unit}\n").encode()
    )
    assert not report.ok
    assert any(f"row 2, column {column}: " in p and message in p for p in problems(report)), (
        problems(report)
    )
    assert not LabResult.objects.exists()


def lab_post(patient, **overrides):
    data = {
        "patient": patient.pk,
        "collected_at_0": "2025-01-05",
        "collected_at_1": "08:00",
        "test": "hct",
        "value": "38",
        "unit": "%",
        "accession": "",
        "status": "active",
        "error_reason": "",
    }
    data.update(overrides)
    return data


def test_admin_offers_the_covariate_tests_and_checks_them_like_the_import(staff):
    patient = load_patient()
    url = reverse("admin:monitoring_labresult_add")
    form = staff.get(url).content.decode()
    assert '<option value="hct">Hematocrit</option>' in form
    assert '<option value="weight">Body weight</option>' in form
    refused = staff.post(url, lab_post(patient, value="0.38"))
    assert "is not a plausible hct (10–70 %)" in refused.content.decode()
    assert (
        staff.post(url, lab_post(patient, test="weight", value="61", unit="kg")).status_code == 302
    )
    assert LabResult.objects.get().test == "weight"


# --- CYP3A5 expresser status -------------------------------------------------------------------

PATIENT_HEADER = "mrn,family_name,given_name,birth_date,sex,cyp3a5_expresser\n"


def test_cyp3a5_status_imports_case_insensitively_defaults_to_unknown_and_exports():
    report = run_csv_import(
        "patients",
        (
            PATIENT_HEADER + "MRN-1,Doe,Jane,1988-04-12,F,YES\n"
            "MRN-2,Roe,Ann,1990-01-02,F,No\n"
            "MRN-3,Poe,Al,1970-05-06,M,\n"
        ).encode(),
    )
    assert report.ok, problems(report)
    stored = dict(Patient.objects.values_list("mrn", "cyp3a5_expresser"))
    assert stored == {"MRN-1": "yes", "MRN-2": "no", "MRN-3": "unknown"}
    assert {r["mrn"]: r["cyp3a5_expresser"] for r in export("patients")} == stored
    # A patient made without the field at all (admin, older file) is unknown too.
    assert run_csv_import("patients", PATIENTS.replace("MRN-1", "MRN-4").encode()).ok
    assert Patient.objects.get(mrn="MRN-4").cyp3a5_expresser == "unknown"


def test_a_file_without_the_column_leaves_a_recorded_status_alone():
    with_column = PATIENTS.replace("therapy_start\n", "therapy_start,cyp3a5_expresser\n")
    assert run_csv_import("patients", with_column.replace("-01\n", "-01,yes\n").encode()).ok
    report = run_csv_import("patients", PATIENTS.encode())
    assert report.ok and [r.action for r in report.rows] == ["unchanged"]
    assert Patient.objects.get().cyp3a5_expresser == "yes"
    # An empty cell in a file that has the column says "unknown", and is recorded so.
    report = run_csv_import("patients", with_column.replace("-01\n", "-01,\n").encode())
    assert [r.action for r in report.rows] == ["updated"]
    patient = Patient.objects.get()
    assert patient.cyp3a5_expresser == "unknown"
    assert [h.cyp3a5_expresser for h in patient.history.order_by("history_id")] == [
        "yes",
        "unknown",
    ]


@pytest.mark.parametrize("value", ["maybe", "1", "*1/*3", "expresser"])
def test_an_unknown_cyp3a5_value_refuses_the_file_naming_it(value):
    report = run_csv_import(
        "patients", (PATIENT_HEADER + f"MRN-1,Doe,Jane,1988-04-12,F,{value}\n").encode()
    )
    assert not report.ok
    assert (
        f"row 2, column cyp3a5_expresser: value '{value}': is not one of yes, no, unknown"
        in problems(report)
    )
    assert not Patient.objects.exists()


def test_admin_shows_cyp3a5_status_and_filters_by_it(client_for):
    admin = client_for("superuser")
    report = run_csv_import(
        "patients",
        (
            PATIENT_HEADER + "MRN-1,Doe,Jane,1988-04-12,F,yes\nMRN-2,Roe,Ann,1990-01-02,F,no\n"
        ).encode(),
    )
    assert report.ok
    patient = Patient.objects.get(mrn="MRN-1")
    page = admin.get(reverse("admin:monitoring_patient_change", args=[patient.pk])).content.decode()
    assert '<option value="yes" selected>Yes (expresser)</option>' in page
    url = reverse("admin:monitoring_patient_changelist")
    listed = admin.get(url + "?cyp3a5_expresser__exact=yes").content.decode()
    assert "MRN-1" in listed and "MRN-2" not in listed
