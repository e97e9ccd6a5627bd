"""Dose reconstruction for the PK engine (model-informed-dosing.md §5), on plain inputs:
every case pins the exact TIME, AMT, II, ADDL and SS of every row.

Times are UTC (zone UTC) unless the case is about the site's daylight-saving change."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitoring.pk_data import (
    COLUMNS,
    LabInput,
    PatientInput,
    RegimenInput,
    TroughInput,
    build_dataset,
    write_csv,
)

BERLIN = ZoneInfo("Europe/Berlin")
PATIENT = PatientInput(birth_date=date(1990, 5, 1), sex="F", cyp3a5_expresser="no")


def at(text: str, zone=UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def regimen(effective, daily, frequency="BID", formulation="IR", times=None, zone=UTC):
    defaults = {"BID": ("08:00", "20:00"), "QD": ("08:00",)}
    return RegimenInput(
        at(effective, zone), formulation, frequency, Decimal(daily), times or defaults[frequency]
    )


def trough(collected, last_dose=None, value="5.2", comparator="", status="final", zone=UTC):
    return TroughInput(
        at(collected, zone),
        at(last_dose, zone) if last_dose else None,
        Decimal(value),
        comparator,
        status,
        f"{comparator}{value} ng/mL",
    )


BID_3 = regimen("2026-01-01T08:00", "3")
TROUGH_FEB_1 = trough("2026-02-01T07:50", "2026-01-31T20:00")
OBS_FEB_1 = ("335.8333", 0, "0", "0", 0, 0)

# (TIME, EVID, AMT, II, ADDL, SS) of every row, in order.
CASES = {
    "BID: one steady-state run, 12 h apart, up to the last dose before the draw": (
        [BID_3],
        [TROUGH_FEB_1],
        {},
        [("0", 1, "1.5", "12", 27, 1), OBS_FEB_1],
    ),
    "QD: one run 24 h apart; a trough without last-dose time stays on the schedule": (
        [regimen("2026-01-01T08:00", "4", "QD", "ER")],
        [trough("2026-02-01T07:45")],
        {},
        [("0", 1, "4", "24", 13, 1), ("335.75", 0, "0", "0", 0, 0)],
    ),
    "change mid-way: the new regimen applies from its first dosing time after effective_at": (
        # ER QD from 09:00 on the 25th: its first dose is 08:00 on the 26th, so the IR dose
        # of 20:00 on the 25th is still given.
        [BID_3, regimen("2026-01-25T09:00", "4", "QD", "ER")],
        [trough("2026-02-01T07:50", "2026-01-31T08:00")],
        {},
        [("0", 1, "1.5", "12", 15, 1), ("192", 1, "4", "24", 5, 0), OBS_FEB_1],
    ),
    "last-dose time moves the nearest scheduled dose; the morning dose waits for the draw": (
        [BID_3],
        [trough("2026-02-01T08:30", "2026-01-31T21:30"), trough("2026-02-08T07:50")],
        {},
        [
            ("0", 1, "1.5", "12", 25, 1),  # 18 Jan 20:00 .. 31 Jan 08:00
            ("313.5", 1, "1.5", "0", 0, 0),  # 31 Jan 20:00 moved to 21:30
            ("324.5", 1, "1.5", "0", 0, 0),  # 1 Feb 08:00 held: right after the 08:30 draw
            ("324.5", 0, "0", "0", 0, 0),
            ("336", 1, "1.5", "12", 12, 0),  # 1 Feb 20:00 .. 7 Feb 20:00
            ("491.8333", 0, "0", "0", 0, 0),
        ],
    ),
    "held morning dose for a clinic trough: taken right after the draw": (
        [BID_3],
        [
            trough("2026-02-01T10:00", "2026-01-31T20:00"),
            trough("2026-02-08T07:55", "2026-02-07T20:00"),
        ],
        {},
        [
            ("0", 1, "1.5", "12", 26, 1),
            ("326", 1, "1.5", "0", 0, 0),  # 08:00 dose at the 10:00 draw; doses come first
            ("326", 0, "0", "0", 0, 0),
            ("336", 1, "1.5", "12", 12, 0),
            ("491.9167", 0, "0", "0", 0, 0),
        ],
    ),
    "uneven clock times: one run per clock time, 24 h apart": (
        [regimen("2026-01-01T07:00", "3", times=("07:00", "21:00"))],
        [trough("2026-02-01T06:50", "2026-01-31T21:00")],
        {},
        [
            ("0", 1, "1.5", "12", 0, 1),
            ("14", 1, "1.5", "24", 13, 0),
            ("24", 1, "1.5", "24", 12, 0),
            ("335.8333", 0, "0", "0", 0, 0),
        ],
    ),
    "censored '<' result: DV is the limit, CENS 1; a '>' result is left out": (
        [BID_3],
        [
            trough("2026-02-01T07:50", "2026-01-31T20:00", "1.0", "<"),
            trough("2026-02-02T07:50", "2026-02-01T20:00", "30", ">"),
        ],
        {},
        [("0", 1, "1.5", "12", 27, 1), OBS_FEB_1],
    ),
    "entered-in-error and preliminary troughs are left out and do not move the start": (
        [BID_3],
        [
            trough("2026-01-10T08:00", "2026-01-09T20:00", status="entered_in_error"),
            TROUGH_FEB_1,
            trough("2026-02-03T08:00", "2026-02-02T20:00", status="preliminary"),
        ],
        {},
        [("0", 1, "1.5", "12", 27, 1), OBS_FEB_1],
    ),
    "therapy end: no dose after that day; the washout trough is used": (
        [BID_3],
        [trough("2026-02-03T08:00")],
        {"therapy_end": date(2026, 1, 31)},
        [("0", 1, "1.5", "12", 23, 1), ("336", 0, "0", "0", 0, 0)],
    ),
    "a 0 mg/day regimen stops dosing from its first dosing time": (
        [BID_3, regimen("2026-01-31T22:00", "0")],
        [trough("2026-02-03T08:00")],
        {},
        [("0", 1, "1.5", "12", 23, 1), ("336", 0, "0", "0", 0, 0)],
    ),
}


def summary(rows):
    return [
        (str(r["TIME"]), r["EVID"], str(r["AMT"]), str(r["II"]), r["ADDL"], r["SS"]) for r in rows
    ]


@pytest.mark.parametrize("case", CASES)
def test_doses_and_troughs_have_exact_times_amounts_and_runs(case):
    regimens, troughs, patient_fields, expected = CASES[case]
    patient = PatientInput(**{**PATIENT.__dict__, **patient_fields})
    dataset = build_dataset(patient, regimens, troughs, zone=UTC)
    assert summary(dataset.rows) == expected
    assert all(list(row) == COLUMNS for row in dataset.rows)


def test_dst_change_in_the_site_zone_keeps_clock_times_and_counts_real_hours():
    # Clocks go forward on 29 March 2026 in Berlin: 20:00 on the 28th to 08:00 on the 29th
    # is 11 real hours, so the run breaks there; the first dose is 18 March 08:00 CET.
    regimens = [regimen("2026-01-01T08:00", "3", zone=BERLIN)]
    troughs = [trough("2026-04-01T07:50", "2026-03-31T20:00", zone=BERLIN)]
    dataset = build_dataset(PATIENT, regimens, troughs, zone=BERLIN)
    assert summary(dataset.rows) == [
        ("0", 1, "1.5", "12", 21, 1),
        ("263", 1, "1.5", "12", 5, 0),
        ("334.8333", 0, "0", "0", 0, 0),
    ]
    assert [r["DATETIME"] for r in dataset.rows] == [
        "2026-03-18T07:00:00Z",
        "2026-03-29T06:00:00Z",
        "2026-04-01T05:50:00Z",
    ]


def test_observation_values_censoring_and_the_notes_a_clinician_reads():
    troughs = [
        trough("2026-01-10T08:00", "2026-01-09T20:00", status="entered_in_error"),
        trough("2026-02-01T07:50", None, "1.0", "<"),
        trough("2026-02-02T07:50", "2026-02-01T20:00", "30", ">"),
        trough("2026-02-03T07:50", "2026-02-02T20:00", "4.25"),
    ]
    dataset = build_dataset(PATIENT, [BID_3], troughs, zone=UTC)
    observations = [r for r in dataset.rows if r["EVID"] == 0]
    assert [(r["DV"], r["MDV"], r["CENS"]) for r in observations] == [
        (Decimal("1"), 0, 1),
        (Decimal("4.25"), 0, 0),
    ]
    assert all(r["DV"] is None and r["MDV"] == 1 for r in dataset.rows if r["EVID"] == 1)
    assert dataset.notes == [
        "trough of 2026-02-02 07:50 not used: reported as >30 ng/mL (above the measuring "
        "range, no value to fit)",
        "1 trough(s) entered in error not used",
        "trough of 2026-02-01 07:50 used on the dosing schedule: no last-dose time",
        "no hematocrit recorded: the model's default is used",
        "no body weight recorded: the model's default is used",
    ]


def test_held_dose_note_names_the_scheduled_time():
    troughs = [
        trough("2026-02-01T10:00", "2026-01-31T20:00"),
        trough("2026-02-08T07:55", "2026-02-07T20:00"),
    ]
    dataset = build_dataset(PATIENT, [BID_3], troughs, zone=UTC)
    assert (
        "trough of 2026-02-01 10:00: the dose scheduled at 2026-02-01 08:00 counted as taken "
        "right after the draw (held for the trough)"
    ) in dataset.notes


def test_covariates_are_carried_forward_from_the_latest_lab_before_each_record():
    labs = [
        LabInput(at("2026-01-25T09:00"), "hct", Decimal("31.5")),
        LabInput(at("2026-01-28T09:00"), "hct", Decimal("36.0")),
        LabInput(at("2026-01-02T09:00"), "weight", Decimal("58.20")),
        LabInput(at("2026-02-05T09:00"), "weight", Decimal("60")),  # after the last record
    ]
    patient = PatientInput(date(2008, 2, 1), "F", "yes")
    regimens = [BID_3, regimen("2026-01-25T09:00", "4", "QD", "LCP")]
    dataset = build_dataset(
        patient, regimens, [trough("2026-02-01T07:50", "2026-01-31T08:00")], labs, zone=UTC
    )
    covariates = [
        tuple(r[c] for c in ("HCT", "WT", "CYP3A5", "IR", "FORM", "AGE", "FEMALE", "TDD"))
        for r in dataset.rows
    ]
    assert covariates == [
        (None, Decimal("58.2"), 1, 1, "IR", 17, 1, Decimal("3")),
        (Decimal("31.5"), Decimal("58.2"), 1, 0, "LCP", 17, 1, Decimal("4")),
        # the trough: hct of the 28th; 18 years old on 1 Feb
        (Decimal("36"), Decimal("58.2"), 1, 0, "LCP", 18, 1, Decimal("4")),
    ]
    assert (
        "no hematocrit before 2026-01-25 09:00: the model's default is used for the records "
        "before it"
    ) in dataset.notes
    assert not any("CYP3A5" in note or "body weight" in note for note in dataset.notes)


def test_unknown_cyp3a5_and_sex_x_are_empty_and_noted():
    patient = PatientInput(date(1990, 1, 1), "X", "unknown")
    dataset = build_dataset(patient, [BID_3], [TROUGH_FEB_1], zone=UTC)
    assert {(r["CYP3A5"], r["FEMALE"]) for r in dataset.rows} == {(None, None)}
    assert "CYP3A5 expresser status unknown: the model's default is used" in dataset.notes
    assert "sex recorded as X: FEMALE is left empty" in dataset.notes


def test_a_start_within_14_days_has_no_steady_state_dose_and_says_so():
    regimens = [regimen("2026-01-28T08:00", "3")]
    dataset = build_dataset(PATIENT, regimens, [TROUGH_FEB_1], zone=UTC)
    assert summary(dataset.rows) == [("0", 1, "1.5", "12", 7, 0), ("95.8333", 0, "0", "0", 0, 0)]
    assert dataset.notes[0].startswith("no regimen in force on 2026-01-18 07:50")


def test_troughs_before_any_regimen_and_no_troughs_at_all():
    dataset = build_dataset(PATIENT, [BID_3], [trough("2025-12-30T08:00")], zone=UTC)
    assert dataset.rows == []
    assert dataset.notes[:2] == [
        "trough of 2025-12-30 08:00 not used: no tacrolimus regimen applies before it",
        "no trough usable by the model: the data set is empty",
    ]


def test_csv_has_the_columns_dots_for_missing_dv_and_empty_missing_covariates():
    dataset = build_dataset(PATIENT, [BID_3], [TROUGH_FEB_1], zone=UTC)
    out = io.StringIO()
    write_csv(dataset, out)
    assert out.getvalue().splitlines() == [
        "ID,TIME,EVID,AMT,DV,MDV,II,ADDL,SS,CENS,HCT,WT,CYP3A5,IR,FORM,AGE,FEMALE,TDD,DATETIME",
        "1,0,1,1.5,.,1,12,27,1,0,,,0,1,IR,35,1,3,2026-01-18T08:00:00Z",
        "1,335.8333,0,0,5.2,0,0,0,0,0,,,0,1,IR,35,1,3,2026-02-01T07:50:00Z",
    ]


def test_a_regimen_replaced_before_its_first_dose_never_applies():
    # BID 10 mg at 09:00 and 21:00 from 07:00 on the 25th would first dose at 09:00, but ER QD
    # from 07:30 doses at 08:00 first: the BID 10 mg regimen never applies.
    regimens = [
        BID_3,
        regimen("2026-01-25T07:00", "10", times=("09:00", "21:00")),
        regimen("2026-01-25T07:30", "4", "QD", "ER"),
    ]
    troughs = [trough("2026-02-01T07:50", "2026-01-31T08:00")]
    dataset = build_dataset(PATIENT, regimens, troughs, zone=UTC)
    assert summary(dataset.rows) == [
        ("0", 1, "1.5", "12", 13, 1),
        ("168", 1, "4", "24", 6, 0),
        OBS_FEB_1,
    ]
    assert [(r["FORM"], r["TDD"]) for r in dataset.rows] == [
        ("IR", Decimal("3")),
        ("ER", Decimal("4")),
        ("ER", Decimal("4")),
    ]
