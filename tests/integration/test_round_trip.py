"""Round trip: ``export_csv`` of every kind that has an importer, imported with ``import_csv``
into an empty database, gives back the same records and the same flags, so the second export
is identical to the first.

The data: the demo patients (every alert code, a censored nmol/L result, a lab-corrected one,
one entered in error) plus a patient with what the demo lacks (height, another target
profile, a planned end, a stop, sampling hours, a preliminary result, a result without an
accession, lab units other than the first). Known limits, by design (exports.py): regimens,
drugs and labs marked entered-in-error are not exported (their importers have no status), and
of a patient's targets only the first (the one the patients import sets) travels.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring import services
from monitoring.exports import EXPORTS
from monitoring.importers import run_csv_import
from monitoring.importers.kinds import IMPORTERS
from monitoring.models import (
    ConcomitantDrug,
    LabResult,
    Patient,
    Regimen,
    TargetAssignment,
    TroughLevel,
)

pytestmark = pytest.mark.django_db

# Parents before children: a regimen, drug, lab or level needs its patient.
IMPORT_ORDER = ["patients", "regimens", "medications", "labs", "levels"]


def days_ago(days: int, hour: int = 8, minute: int = 0) -> str:
    moment = timezone.localtime() - timedelta(days=days)
    return moment.replace(hour=hour, minute=minute, second=0, microsecond=0).isoformat(
        timespec="minutes"
    )


def day(days: int) -> str:
    return (timezone.localdate() - timedelta(days=days)).isoformat()


def load_extra() -> None:
    """What the demo data does not have, through the importers (as staff would)."""
    files = {
        "patients": (
            "mrn,family_name,given_name,birth_date,sex,height_cm,target_profile,therapy_start,"
            "therapy_end,ln_class,cyp3a5_expresser\n"
            f"RT-001,Roundtrip,Tess,2012-03-04,F,151.5,ln_induction,{day(300)},{day(-800)},"
            "III+V,Yes\n"
            "RT-002,Bare,Bo,1970-01-01,M,,,,,,\n"
        ),
        "regimens": (
            "mrn,effective_at,formulation,frequency,daily_dose_mg,sampling_hours,dose_times\n"
            f"RT-001,{days_ago(290, 20)},IR,BID,2.5,,07:30;19:30\n"
            f"RT-001,{days_ago(200, 8)},ER,QD,4,23.5,\n"
            f"RT-001,{days_ago(30, 8)},LCP,QD,0,,\n"
        ),
        "medications": (
            "mrn,drug,started_on,stopped_on\n"
            f"RT-001,Diflucan 100 mg,{day(150)},{day(140)}\n"
            f"RT-001,Rifampicin,{day(60)},\n"
        ),
        "labs": (
            "mrn,collected_at,test,value,unit,accession\n"
            f"RT-001,{days_ago(280)},creatinine,62,umol/L,L-1\n"
            f"RT-001,{days_ago(100)},upcr,45.5,mg/mmol,\n"
            f"RT-001,{days_ago(100)},egfr,95,mL/min/1.73m2,\n"
        ),
        "levels": (
            "mrn,collected_at,last_dose_at,value,unit,assay,accession,status\n"
            f"RT-001,{days_ago(250)},{days_ago(251, 20)},6.2,ug/L,LCMSMS,RT-A1,\n"
            f"RT-001,{days_ago(180)},{days_ago(181, 8, 30)},> 30,ng/mL,EMIT,RT-A2,final\n"
            f"RT-001,{days_ago(120)},,9.3,nmol/L,,RT-A3,preliminary\n"
            f"RT-001,{days_ago(90)},{days_ago(91, 8)},4.8,µg/L,QMS,,\n"
            f"RT-001,{days_ago(60)},{days_ago(61, 8)},5.5,mcg/L,OTHER,RT-A5,corrected\n"
            f"RT-001,{days_ago(40)},{days_ago(41, 8)},7.0,ng/mL,CMIA,RT-A6,final\n"
        ),
    }
    for kind in IMPORT_ORDER:
        report = run_csv_import(kind, files[kind].encode())
        assert report.ok, [str(p) for p in report.problems]
    level = TroughLevel.objects.get(accession="RT-A6")
    services.record_mark_in_error(level, reason="Wrong patient's tube, see lab note 42")
    # Entered-in-error records of the other kinds are not exported (module docstring).
    services.record_mark_in_error(
        Regimen.objects.create(
            patient=level.patient,
            effective_at=timezone.now() - timedelta(days=10),
            formulation="IR",
            frequency="BID",
            daily_dose_mg=9,
        ),
        reason="typed for the wrong patient",
    )


def export_all(directory: Path) -> dict[str, str]:
    texts = {}
    for kind in EXPORTS:
        out = io.StringIO()
        call_command("export_csv", kind, stdout=out)
        texts[kind] = out.getvalue()
        (directory / f"{kind}.csv").write_text(texts[kind], encoding="utf-8")
    return texts


def stored_flags() -> dict:
    """The flags services.patients_reassess stores, keyed by what survives a round trip."""
    levels = {
        (lv.patient.mrn, lv.accession or lv.collected_at.isoformat()): (
            lv.status,
            lv.error_reason,
            lv.comparator,
            lv.value_ng_ml,
            lv.target_low,
            lv.target_high,
            lv.range_flag,
            lv.timing_flag,
            lv.timing_reason,
            lv.hours_post_dose,
            lv.steady_state,
        )
        for lv in TroughLevel.objects.select_related("patient")
    }
    patients = {
        p.mrn: (
            p.alert_codes,
            p.warning_count,
            p.latest_level.accession if p.latest_level else None,
            p.assessed_on,
        )
        for p in Patient.objects.select_related("latest_level")
    }
    return {"levels": levels, "patients": patients}


def empty_the_database() -> None:
    # The app never deletes clinical data; the test does, at the ORM level, to start again.
    Patient.objects.update(latest_level=None)
    for model in (TroughLevel, LabResult, ConcomitantDrug, Regimen, TargetAssignment, Patient):
        model.objects.all().delete()


@pytest.fixture(params=["UTC", "Europe/Madrid"])
def site_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


def test_every_import_kind_has_an_export_that_reimports_without_unknown_columns():
    assert set(IMPORTERS) <= set(EXPORTS)
    for kind, importer in IMPORTERS.items():
        columns, _ = EXPORTS[kind]
        readable = set(importer.required) | set(importer.optional) | set(importer.aliases)
        assert set(columns) <= readable | set(importer.derived), kind
        assert set(importer.required) <= {importer.aliases.get(c, c) for c in columns}, kind


def test_export_then_import_into_an_empty_database_gives_the_same_records_and_flags(
    tmp_path, site_zone
):
    call_command("seed_demo", "--force", stdout=io.StringIO())
    load_extra()
    before = export_all(tmp_path)
    flags_before = stored_flags()
    assert "entered_in_error" in before["levels"]
    assert "preliminary" in before["levels"] and "corrected" in before["levels"]
    assert "nmol/L" in before["levels"]

    empty_the_database()
    assert Patient.objects.count() == TroughLevel.objects.count() == 0

    for kind in IMPORT_ORDER:
        out, err = io.StringIO(), io.StringIO()
        call_command("import_csv", kind, str(tmp_path / f"{kind}.csv"), stdout=out, stderr=err)
        # Nothing unknown: at most the one line about the export's computed columns.
        warnings = [line for line in err.getvalue().splitlines() if line.strip()]
        assert all("computed columns ignored" in line for line in warnings), warnings
        assert "0 updated" in out.getvalue(), out.getvalue()

    after = export_all(tmp_path)
    for kind in EXPORTS:
        assert after[kind] == before[kind], kind
    assert stored_flags() == flags_before


def test_importing_the_exports_again_changes_nothing(tmp_path):
    call_command("seed_demo", "--force", stdout=io.StringIO())
    load_extra()
    export_all(tmp_path)
    history = {m: m.history.count() for m in (Patient, Regimen, TroughLevel, LabResult)}
    for kind in IMPORT_ORDER:
        report = run_csv_import(kind, (tmp_path / f"{kind}.csv").read_bytes())
        assert report.ok, [str(p) for p in report.problems]
        assert report.counts["created"] == report.counts["updated"] == 0, kind
    assert {m: m.history.count() for m in history} == history


def test_an_entered_in_error_row_needs_its_reason_and_never_retracts_a_stored_result():
    assert run_csv_import(
        "patients", b"mrn,family_name,given_name,birth_date,sex\nMRN-1,Doe,Jane,1988-04-12,F\n"
    ).ok
    header = "mrn,collected_at,value,unit,accession,status,error_reason\n"
    no_reason = run_csv_import(
        "levels", (header + "MRN-1,2025-01-02T08:00,5,ng/mL,A1,entered_in_error,\n").encode()
    )
    assert [str(p) for p in no_reason.problems] == [
        "row 2, column error_reason: value '': is required with status entered_in_error"
    ]
    stray_reason = run_csv_import(
        "levels", (header + "MRN-1,2025-01-02T08:00,5,ng/mL,A1,final,typo\n").encode()
    )
    assert "is only for status entered_in_error" in str(stray_reason.problems[0])

    assert run_csv_import("levels", (header + "MRN-1,2025-01-02T08:00,5,ng/mL,A1,,\n").encode()).ok
    retract = run_csv_import(
        "levels", (header + "MRN-1,2025-01-02T08:00,5,ng/mL,A1,entered_in_error,typo\n").encode()
    )
    assert not retract.ok
    assert "mark it entered in error on the patient page" in str(retract.problems[0])
    assert TroughLevel.objects.get().status == "final"

    new_in_error = run_csv_import(
        "levels", (header + "MRN-1,2025-01-03T08:00,55,ng/mL,A2,Entered_In_Error,typo\n").encode()
    )
    assert new_in_error.ok
    level = TroughLevel.objects.get(accession="A2")
    assert (level.status, level.error_reason) == ("entered_in_error", "typo")
    patient = Patient.objects.get()
    assert patient.latest_level.accession == "A1"  # a retracted result never counts
