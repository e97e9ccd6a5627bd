"""A patient's records to the PK data set through the ORM (pk_data.patient_pk_dataset) and
the ``pk_dataset`` command: constant queries, the site's time zone, no identifiers, the
access log."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.importers import run_csv_import
from monitoring.models import AccessLog, Patient
from monitoring.pk_data import patient_pk_dataset

pytestmark = pytest.mark.django_db

PATIENTS = (
    "mrn,family_name,given_name,birth_date,sex,cyp3a5_expresser\n"
    "PK-1,=HYPERLINK(1),Jane,1990-05-01,F,yes\n"
)
REGIMENS = (
    "mrn,effective_at,formulation,frequency,daily_dose_mg,dose_times\n"
    "PK-1,2026-01-01T08:00,IR,BID,3,08:00;20:00\n"
)


def load(troughs: int = 1, labs: str = "", mrn: str = "PK-1") -> Patient:
    """A patient on IR BID 3 mg/day from 1 Jan 2026 with weekly troughs from 1 Feb at 07:50,
    each with the 20:00 dose of the evening before as its last dose."""
    assert run_csv_import("patients", PATIENTS.replace("PK-1", mrn).encode()).ok
    assert run_csv_import("regimens", REGIMENS.replace("PK-1", mrn).encode()).ok
    lines = ["mrn,collected_at,last_dose_at,value,unit"]
    first = datetime(2026, 2, 1, 7, 50)
    for week in range(troughs):
        drawn = first + timedelta(weeks=week)
        last_dose = drawn.replace(hour=20, minute=0) - timedelta(days=1)
        lines.append(f"{mrn},{drawn:%Y-%m-%dT%H:%M},{last_dose:%Y-%m-%dT%H:%M},5.{week % 10},ng/mL")
    report = run_csv_import("levels", ("\n".join(lines) + "\n").encode())
    assert report.ok, [str(p) for p in report.problems]
    if labs:
        labs_csv = "mrn,collected_at,test,value,unit\n" + labs.replace("PK-1", mrn)
        assert run_csv_import("labs", labs_csv.encode()).ok
    return Patient.objects.get(mrn=mrn)


def test_the_query_count_does_not_grow_with_the_number_of_troughs(settings):
    settings.TIME_ZONE = "UTC"
    labs = "PK-1,2026-01-20T09:00,hct,33.5,%\nPK-1,2026-03-20T09:00,hct,35,%\n"
    few, many = load(troughs=1, labs=labs), load(troughs=30, labs=labs, mrn="PK-2")
    with CaptureQueriesContext(connection) as one:
        small = patient_pk_dataset(few)
    with CaptureQueriesContext(connection) as thirty:
        large = patient_pk_dataset(many)
    assert len([r for r in small.rows if r["EVID"] == 0]) == 1
    assert len([r for r in large.rows if r["EVID"] == 0]) == 30
    assert len(one.captured_queries) == len(thirty.captured_queries) == 3


def test_the_site_zone_drives_clock_times_across_the_spring_change(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    assert run_csv_import("patients", PATIENTS.encode()).ok
    assert run_csv_import("regimens", REGIMENS.encode()).ok
    level = (
        "mrn,collected_at,last_dose_at,value,unit\n"
        "PK-1,2026-04-01T07:50,2026-03-31T20:00,5.2,ng/mL\n"
    )
    assert run_csv_import("levels", level.encode()).ok
    dataset = patient_pk_dataset(Patient.objects.get(mrn="PK-1"))
    assert [
        (str(r["TIME"]), r["EVID"], str(r["AMT"]), str(r["II"]), r["ADDL"], r["SS"])
        for r in dataset.rows
    ] == [
        ("0", 1, "1.5", "12", 21, 1),
        ("263", 1, "1.5", "12", 5, 0),
        ("334.8333", 0, "0", "0", 0, 0),
    ]
    assert dataset.rows[0]["DATETIME"] == "2026-03-18T07:00:00Z"  # 08:00 CET


def test_covariates_come_from_the_records(settings):
    settings.TIME_ZONE = "UTC"
    patient = load(labs="PK-1,2026-01-20T09:00,hct,33.5,%\nPK-1,2026-01-20T09:00,weight,61,kg\n")
    trough = [r for r in patient_pk_dataset(patient).rows if r["EVID"] == 0][0]
    assert {c: str(trough[c]) for c in ("HCT", "WT", "CYP3A5", "IR", "FORM", "FEMALE", "TDD")} == {
        "HCT": "33.5",
        "WT": "61",
        "CYP3A5": "1",
        "IR": "1",
        "FORM": "IR",
        "FEMALE": "1",
        "TDD": "3",
    }


# --- the command -------------------------------------------------------------------------------


def run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("pk_dataset", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_writes_the_data_set_notes_and_an_access_log_row(settings):
    settings.TIME_ZONE = "UTC"
    patient = load(troughs=2)
    out, err = run_command("PK-1")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [
        "ID", "TIME", "EVID", "AMT", "DV", "MDV", "II", "ADDL", "SS", "CENS",
        "HCT", "WT", "CYP3A5", "IR", "FORM", "AGE", "FEMALE", "TDD", "DATETIME",
    ]  # fmt: skip
    assert [(r["TIME"], r["EVID"], r["AMT"], r["DV"], r["ADDL"]) for r in rows] == [
        ("0", "1", "1.5", ".", "27"),
        ("335.8333", "0", "0", "5", "0"),
        ("336", "1", "1.5", ".", "13"),
        ("503.8333", "0", "0", "5.1", "0"),
    ]
    # It leaves the site: nothing identifies the patient.
    assert "PK-1" not in out and "Jane" not in out and "HYPERLINK" not in out
    assert {r["ID"] for r in rows} == {"1"}
    assert "note: no hematocrit recorded: the model's default is used" in err.splitlines()
    log = AccessLog.objects.get()
    assert (log.patient, log.view_name, log.user) == (patient, "pk_dataset", None)
    assert log.username.endswith("(manage.py)") and log.path == "manage.py pk_dataset"


def test_the_command_writes_to_a_file(settings, tmp_path):
    settings.TIME_ZONE = "UTC"
    load()
    target = tmp_path / "pk.csv"
    out, _ = run_command("PK-1", "--output", str(target))
    assert out == ""
    assert target.read_text(encoding="utf-8").splitlines()[1].startswith("1,0,1,1.5,.,1,12,27,1,")
    assert AccessLog.objects.count() == 1


def test_an_unknown_mrn_is_a_clear_error_with_exit_status_1():
    with pytest.raises(CommandError) as caught:
        run_command("NOPE-9")
    assert str(caught.value) == "mrn: value 'NOPE-9': unknown patient"
    assert caught.value.returncode == 1
    assert not AccessLog.objects.exists()
