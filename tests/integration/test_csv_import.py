"""import_csv through the real command on real files: atomic, idempotent, dialects, errors."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring.importers import run_csv_import
from monitoring.models import ConcomitantDrug, LabResult, Patient, Regimen, TroughLevel

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
if not SAMPLES.exists():  # CI lays shared/ beside the clone
    SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"

pytestmark = pytest.mark.django_db

PATIENTS = (
    "mrn,family_name,given_name,birth_date,sex,target_profile,therapy_start,therapy_end,ln_class\n"
    "MRN-1,Doe,Jane,1988-04-12,F,ln_maintenance,2024-09-01,,IV\n"
)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run(kind: str, path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_csv", kind, str(path), *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def export(kind: str, as_of: str = "2026-11-24") -> list[dict[str, str]]:
    out = io.StringIO()
    call_command("export_csv", kind, "--as-of", as_of, stdout=out)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


@pytest.fixture
def samples_loaded():
    for kind in ("patients", "regimens", "levels"):
        code, out, err = run(kind, SAMPLES / f"{kind}.csv")
        assert code == 0, err


def test_the_sample_files_import_and_export_the_flags_the_spec_predicts(samples_loaded):
    levels = {row["accession"]: row for row in export("levels")}
    assert levels["ACC-40001"]["range_flag"] == "below"
    assert levels["ACC-40001"]["timing_flag"] == "valid"
    assert levels["ACC-40001"]["hours_post_dose"] == "12.0"
    assert levels["ACC-41020"]["comparator"] == "<"
    assert levels["ACC-41020"]["timing_flag"] == "unknown"
    assert levels["ACC-41020"]["hours_post_dose"] == ""
    assert levels["ACC-30112"]["value_ng_ml"] == "6.00"  # 7.46 nmol/L × 0.80402
    assert levels["ACC-30112"]["range_flag"] == "in_range"
    patients = {row["mrn"]: row for row in export("patients")}
    assert patients["MRN-1002"]["duration_flag"] == "premature_discontinuation"
    assert "premature_discontinuation" in patients["MRN-1002"]["alerts"].split(";")
    assert patients["MRN-1001"]["duration_flag"] == "duration_under_36_months"


def test_export_columns_are_exactly_the_contract(samples_loaded):
    out = io.StringIO()
    call_command("export_csv", "levels", stdout=out)
    assert out.getvalue().splitlines()[0] == (
        "mrn,accession,collected_at,last_dose_at,hours_post_dose,reported_value,reported_unit,"
        "comparator,value_ng_ml,target_low,target_high,range_flag,timing_flag,steady_state,"
        "status,assay,error_reason"  # error_reason: appended optional column (round trip)
    )
    out = io.StringIO()
    call_command("export_csv", "patients", stdout=out)
    assert out.getvalue().splitlines()[0] == (
        "mrn,therapy_start,therapy_end,months_on_therapy,duration_flag,latest_collected_at,"
        "latest_value_ng_ml,latest_range_flag,latest_timing_flag,pct_in_range,ttr_percent,"
        "cv_percent,cd_ratio,alerts,"
        # appended optional columns: the import columns, so the export re-imports (round trip)
        "family_name,given_name,birth_date,sex,height_cm,target_profile,ln_class,"
        "cyp3a5_expresser"  # appended optional column (PK covariate)
    )


def test_export_to_a_file_and_as_of_excludes_later_data(samples_loaded, tmp_path):
    target = tmp_path / "levels.csv"
    call_command("export_csv", "levels", "--as-of", "2025-06-30", "--output", str(target))
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["accession"] for r in rows] == ["ACC-40001", "ACC-40377", "ACC-30112"]


def test_importing_the_same_file_twice_changes_nothing_and_says_so(samples_loaded):
    before = TroughLevel.history.count()
    code, out, _ = run("levels", SAMPLES / "levels.csv")
    assert code == 0
    assert "0 created, 0 updated, 4 unchanged" in out
    assert TroughLevel.objects.count() == 4
    assert TroughLevel.history.count() == before


def test_a_file_with_one_bad_row_writes_nothing_and_names_row_column_value(tmp_path):
    path = write(
        tmp_path,
        "p.csv",
        PATIENTS + "MRN-2,Roe,Ann,2999-01-01,F,,,,\nMRN-3,Poe,Al,1970-01-01,Q,,,,\n",
    )
    code, _, err = run("patients", path)
    assert code == 1
    assert "row 3, column birth_date: value '2999-01-01': is in the future" in err
    assert "row 4, column sex: value 'Q'" in err
    assert Patient.objects.count() == 0


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        ("-1", "ng/mL", "column value: value '-1': must be greater than zero"),
        ("0", "ng/mL", "must be greater than zero"),
        ("150", "ng/mL", "above the plausibility ceiling"),
        ("abc", "ng/mL", "column value: value 'abc': is not a number"),
        ("5.2", "mg/L", "column unit: value 'mg/L': unknown unit"),
    ],
)
def test_bad_level_values_are_rejected(tmp_path, value, unit, message):
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    path = write(
        tmp_path, "l.csv", f"mrn,collected_at,value,unit\nMRN-1,2025-03-01T08:00,{value},{unit}\n"
    )
    code, _, err = run("levels", path)
    assert code == 1
    assert message in err
    assert TroughLevel.objects.count() == 0


@pytest.mark.parametrize(
    ("last_dose", "message"),
    [
        ("2025-03-01T09:00", "is after the collection time"),
        ("2025-02-26T07:59", "is more than 48 h before the collection time"),
    ],
)
def test_last_dose_outside_the_window_is_a_data_error(tmp_path, last_dose, message):
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    path = write(
        tmp_path,
        "l.csv",
        f"mrn,collected_at,last_dose_at,value,unit\nMRN-1,2025-03-01T08:00,{last_dose},5.0,ng/mL\n",
    )
    code, _, err = run("levels", path)
    assert code == 1 and message in err
    assert "column last_dose_at" in err


def test_a_draw_in_the_future_and_an_unknown_mrn_are_rejected(tmp_path):
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    path = write(
        tmp_path,
        "l.csv",
        "mrn,collected_at,value,unit\n"
        "MRN-1,2999-03-01T08:00,5.0,ng/mL\nMRN-404,2025-03-01T08:00,5.0,ng/mL\n",
    )
    code, _, err = run("levels", path)
    assert code == 1
    assert "row 2, column collected_at: value '2999-03-01T08:00': is in the future" in err
    assert "row 3, column mrn: value 'MRN-404': unknown patient" in err


def test_a_changed_value_needs_status_corrected_and_then_supersedes(tmp_path):
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    header = "mrn,collected_at,last_dose_at,value,unit,accession,status\n"
    run(
        "levels",
        write(
            tmp_path, "a.csv", header + "MRN-1,2025-03-01T08:00,2025-02-28T20:00,5.0,ng/mL,ACC-1,\n"
        ),
    )
    code, _, err = run(
        "levels",
        write(
            tmp_path, "b.csv", header + "MRN-1,2025-03-01T08:00,2025-02-28T20:00,7.0,ng/mL,ACC-1,\n"
        ),
    )
    assert code == 1 and "status 'corrected'" in err
    code, out, _ = run(
        "levels",
        write(
            tmp_path,
            "c.csv",
            header + "MRN-1,2025-03-01T08:00,2025-02-28T20:00,7.0,ng/mL,ACC-1,corrected\n",
        ),
    )
    assert code == 0 and "1 updated" in out
    level = TroughLevel.objects.get(accession="ACC-1")
    assert level.value_ng_ml == Decimal("7") and level.status == "corrected"
    assert level.range_flag == "above"
    assert [h.reported_value for h in level.history.order_by("history_date")] == ["5.0", "7.0"]


def test_semicolon_files_with_bom_and_decimal_comma(tmp_path):
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    text = (
        "\ufeffMRN;Collected_At ;last_dose_at;value;UNIT;extra\n"
        "MRN-1;2025-03-01 08:00;2025-02-28 20:00;5,2;µg/L;x\n"
    )
    code, out, err = run("levels", write(tmp_path, "l.csv", text))
    assert code == 0, err
    assert "unknown column 'extra' ignored" in err
    level = TroughLevel.objects.get()
    assert level.value_ng_ml == Decimal("5.2") and level.reported_value == "5,2"


def test_a_missing_required_column_is_an_error(tmp_path):
    code, _, err = run("patients", write(tmp_path, "p.csv", "mrn,family_name\nMRN-1,Doe\n"))
    assert code == 1 and "column given_name" in err and "required column is missing" in err


def test_dry_run_validates_and_counts_without_writing(tmp_path):
    code, out, _ = run("patients", write(tmp_path, "p.csv", PATIENTS), "--dry-run")
    assert code == 0 and "would be 1 created" in out
    assert Patient.objects.count() == 0


def test_naive_times_are_site_local_and_c12h_across_dst_counts_real_hours(tmp_path, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    run(
        "regimens",
        write(
            tmp_path,
            "r.csv",
            "mrn,effective_at,formulation,frequency,"
            "daily_dose_mg\nMRN-1,2025-01-01T20:00,IR,BID,3\n",
        ),
    )
    # Spring forward on 2025-03-30: 20:00 → 08:00 local is 11 real hours (valid, ±1 h).
    # Autumn back on 2025-10-26: 20:00 → 07:00 local is 12 real hours, not 11.
    code, _, err = run(
        "levels",
        write(
            tmp_path,
            "l.csv",
            "mrn,collected_at,last_dose_at,value,unit,accession\n"
            "MRN-1,2025-03-30T08:00,2025-03-29T20:00,5,ng/mL,S\n"
            "MRN-1,2025-10-26T07:00,2025-10-25T20:00,5,ng/mL,A\n"
            "MRN-1,2025-06-01T08:00+00:00,2025-05-31T20:00+00:00,5,ng/mL,U\n",
        ),
    )
    assert code == 0, err
    rows = {r["accession"]: r for r in export("levels")}
    assert rows["S"]["hours_post_dose"] == "11.0" and rows["S"]["timing_flag"] == "valid"
    assert rows["A"]["hours_post_dose"] == "12.0" and rows["A"]["timing_flag"] == "valid"
    assert rows["S"]["collected_at"] == "2025-03-30T08:00:00+02:00"
    assert rows["U"]["collected_at"] == "2025-06-01T10:00:00+02:00"


def test_a_local_time_skipped_by_the_clocks_is_rejected(tmp_path, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    code, _, err = run(
        "levels",
        write(tmp_path, "l.csv", "mrn,collected_at,value,unit\nMRN-1,2025-03-30T02:30,5,ng/mL\n"),
    )
    assert code == 1 and "does not exist in Europe/Berlin" in err


def test_regimens_medications_and_labs_import_idempotently(tmp_path):
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    files = {
        "regimens": "mrn,effective_at,formulation,frequency,daily_dose_mg,sampling_hours\n"
        "MRN-1,2025-01-10T20:00,IR,BID,3,\nMRN-1,2025-06-02T08:00,ER,QD,0,\n",
        "medications": "mrn,drug,started_on,stopped_on\nMRN-1,Diflucan,2025-02-01,2025-02-10\n",
        "labs": "mrn,collected_at,test,value,unit\nMRN-1,2025-01-05T08:00,creatinine,80,umol/L\n",
    }
    for kind, text in files.items():
        path = write(tmp_path, f"{kind}.csv", text)
        assert run(kind, path)[0] == 0
        code, out, _ = run(kind, path)
        assert code == 0 and "0 created, 0 updated" in out
    assert Regimen.objects.count() == 2
    drug = ConcomitantDrug.objects.get()
    assert drug.catalog.name == "fluconazole"
    assert LabResult.objects.get().unit == "umol/L"


def test_medication_stopped_before_started_and_bad_lab_unit(tmp_path):
    run("patients", write(tmp_path, "p.csv", PATIENTS))
    code, _, err = run(
        "medications",
        write(
            tmp_path,
            "m.csv",
            "mrn,drug,started_on,stopped_on\nMRN-1,fluconazole,2025-02-10,2025-02-01\n",
        ),
    )
    assert code == 1 and "column stopped_on: value '2025-02-01': is before started_on" in err
    code, _, err = run(
        "labs",
        write(
            tmp_path,
            "l.csv",
            "mrn,collected_at,test,value,unit\nMRN-1,2025-01-05T08:00,creatinine,1,mmol/L\n",
        ),
    )
    assert code == 1 and "column unit: value 'mmol/L'" in err


def test_an_invalid_encoding_is_a_clear_error(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "mrn,family_name,given_name,birth_date,sex\nMRN-1,Müller,A,1980-01-01,F\n".encode("latin-1")
    )
    code, _, err = run("patients", path)
    assert code == 1 and "not UTF-8" in err


def test_run_csv_import_reports_per_row_actions():
    report = run_csv_import("patients", PATIENTS.encode(), dry_run=True)
    assert report.ok and [r.action for r in report.rows] == ["created"]
    assert not report.written


def test_the_patients_export_does_not_call_a_planned_end_met_before_36_months():
    """docs/clinical-rules.md §5: on therapy at 34.8 months, planned end at 42 months."""
    from datetime import date, timedelta

    as_of = date(2026, 1, 1)
    start = as_of - timedelta(days=1059)
    end = start + timedelta(days=1278)
    report = run_csv_import(
        "patients",
        (
            "mrn,family_name,given_name,birth_date,sex,therapy_start,therapy_end\n"
            f"DUR-1,Doe,Jane,1988-04-12,F,{start},{end}\n"
        ).encode(),
    )
    assert report.ok, [str(p) for p in report.problems]

    rows = export("patients", as_of.isoformat())

    row = next(r for r in rows if r["mrn"] == "DUR-1")
    assert row["duration_flag"] == "duration_under_36_months"
    assert row["months_on_therapy"] == "34.8"


def test_a_large_file_prints_progress_lines_on_stderr(tmp_path, monkeypatch):
    from monitoring.management.commands import import_csv

    monkeypatch.setattr(import_csv, "PROGRESS_LINE_EVERY", 1000)  # 10,000 in real use
    patients = write(
        tmp_path,
        "p.csv",
        "mrn,family_name,given_name,birth_date,sex\nPR-1,Doe,Jane,1990-01-01,F\n",
    )
    assert run("patients", patients)[0] == 0
    today = timezone.localdate()
    rows = [
        f"PR-1,{today - timedelta(days=1 + i // 100)}T07:{i % 60:02d},5.{i % 10},ng/mL,P{i}"
        for i in range(2500)
    ]
    levels = write(tmp_path, "l.csv", "mrn,collected_at,value,unit,accession\n" + "\n".join(rows))

    code, out, err = run("levels", levels)

    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("levels:")]
    assert [line.split(" rows,")[0] for line in lines] == [
        "levels: 1,000 of 2,500",
        "levels: 2,000 of 2,500",
    ]
    assert all(line.endswith("rows/s") for line in lines)
    assert "levels: 2500 created" in out


def test_a_small_file_prints_no_progress_line(tmp_path):
    path = write(
        tmp_path, "p.csv", "mrn,family_name,given_name,birth_date,sex\nPR-2,Doe,Jo,1990-01-01,F\n"
    )
    code, _out, err = run("patients", path)
    assert code == 0
    assert "rows/s" not in err
