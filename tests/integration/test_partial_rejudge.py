"""Partial re-judging: a levels import judges only the troughs it wrote and those the
patient summary reads, and the daily refresh only the latter (services.patients_reassess
with ``troughs``). What they store must be exactly what re-judging every trough of every
patient stores."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import selectors, services, synthetic
from monitoring.assessment import end_of_day, kidney_baseline
from monitoring.importers import run_csv_import
from monitoring.models import ConcomitantDrug, LabResult, Patient, Regimen, TroughLevel

pytestmark = pytest.mark.django_db

LEVEL_COLUMNS = ["mrn", "collected_at", "last_dose_at", "value", "unit", "accession", "status"]


def levels_file(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LEVEL_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def trough(
    mrn: str, day: date, value: str, accession: str, status: str = "", at: str = "08:00"
) -> list[str]:
    return [
        mrn,
        f"{day}T{at}",
        f"{day - timedelta(days=1)}T20:00",
        value,
        "ng/mL",
        accession,
        status,
    ]


def stored_state() -> tuple[list, list]:
    levels = sorted(TroughLevel.objects.values_list("pk", *services.COMPUTED_LEVEL_FIELDS))
    patients = sorted(
        Patient.objects.values_list(
            "pk",
            "alert_codes",
            "warning_count",
            "latest_level_id",
            "assessed_on",
            "next_action",
            "next_trough_due",
        )
    )
    return levels, patients


def imported(rows: list[list[str]]) -> None:
    report = run_csv_import("levels", levels_file(rows))
    assert report.ok and report.written, [str(p) for p in report.problems]


def import_kind(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok and report.written, [str(p) for p in report.problems]


@pytest.fixture
def today() -> date:
    today = timezone.localdate()
    synthetic.seed(
        synthetic.Scenario(
            patients=8, years=3, seed=5, as_of=today, recent_share=0.25, overdue_share=0.25
        )
    )
    return today


def test_a_levels_import_stores_what_re_judging_everything_stores(today):
    patients = list(Patient.objects.order_by("mrn"))
    corrected = TroughLevel.objects.filter(patient=patients[0]).order_by("-collected_at")[0]
    old = TroughLevel.objects.filter(
        patient=patients[1], collected_at__lt=timezone.now() - timedelta(days=500)
    ).first()
    assert old is not None
    rows = []
    for i, patient in enumerate(patients):
        # Below, in and above the band; the newest trough of most patients.
        rows.append(trough(patient.mrn, today - timedelta(days=1 + i), "3.1", f"NEW-{i}-A"))
        rows.append(trough(patient.mrn, today - timedelta(days=20 + i), "5.0", f"NEW-{i}-B"))
        # Backfilled history, far older than the metrics window.
        rows.append(trough(patient.mrn, today - timedelta(days=700 + i), "7.2", f"NEW-{i}-C"))
    rows += [
        # Today just after midnight, so that the suite may run at any hour without these
        # results lying in the future (which the import refuses).
        trough(patients[2].mrn, today, "12.0", "NEW-P", "preliminary", at="00:02"),  # newest
        [patients[3].mrn, f"{today}T00:01", "", "<2.0", "ng/mL", "NEW-CENSORED", ""],
        # The lab corrects a stored result (inside the window) and an old one (outside it).
        [
            patients[0].mrn,
            corrected.collected_at.isoformat(),
            "",
            "9.9",
            "ng/mL",
            corrected.accession,
            "corrected",
        ],
        [
            patients[1].mrn,
            old.collected_at.isoformat(),
            "",
            "1.5",
            "ng/mL",
            old.accession,
            "corrected",
        ],
    ]
    imported(rows)
    after_import = stored_state()
    services.patients_reassess(Patient.objects.all())
    assert stored_state() == after_import
    # The import did change verdicts: the comparison above is not between two no-ops.
    assert TroughLevel.objects.get(accession="NEW-0-A").range_flag == "below"
    assert TroughLevel.objects.get(accession=old.accession).range_flag == "below"


def test_a_latest_trough_older_than_the_metrics_window_stays_the_latest(today):
    # A patient last seen two years ago: the summary's latest trough lies outside the window
    # and comes from the stored summary, not from the troughs the import loads.
    import_kind(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
        f"OLD-1,Lost,Tess,1980-05-05,F,{today - timedelta(days=1000)}\n",
    )
    import_kind(
        "regimens",
        "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
        f"OLD-1,{today - timedelta(days=1000)}T08:00,IR,BID,4\n",
    )
    imported([trough("OLD-1", today - timedelta(days=700), "5.0", "OLD-A")])
    imported(
        [
            trough("OLD-1", today - timedelta(days=800), "2.0", "OLD-B"),  # older still
            trough("OLD-1", today - timedelta(days=3), "8.0", "OLD-C", "preliminary"),
        ]
    )
    patient = Patient.objects.get(mrn="OLD-1")
    assert patient.latest_level.accession == "OLD-A"
    assert "level_overdue" in patient.alert_codes.split(";")
    after_import = stored_state()
    services.patients_reassess(Patient.objects.all())
    assert stored_state() == after_import


def test_only_the_written_troughs_and_the_recent_ones_are_judged(today):
    patient = Patient.objects.order_by("mrn").first()
    total = patient.levels.count()
    [everything] = services.patients_reassess([patient])
    [recent] = services.patients_reassess([patient], troughs=[])
    window_start = timezone.now() - timedelta(days=365)
    in_window = patient.levels.filter(collected_at__gt=window_start).count()
    assert len(everything.levels) == total
    assert in_window <= len(recent.levels) <= in_window + 1  # the stored latest besides
    assert len(recent.levels) < total


def test_import_queries_do_not_grow_with_rows_or_patients(today):
    patients = list(Patient.objects.order_by("mrn"))

    def queries(tag: str, chosen: list[Patient], per_patient: int) -> tuple[int, int]:
        """(queries other than INSERT, INSERT statements) of importing that many troughs:
        an ``executemany`` (SQLite) is logged as one "N times: INSERT ...", a COPY
        (PostgreSQL) as one statement."""
        rows = [
            trough(p.mrn, today - timedelta(days=2 + d), "5.0", f"{tag}-{p.mrn}-{d}")
            for p in chosen
            for d in range(per_patient)
        ]
        with CaptureQueriesContext(connection) as captured:
            imported(rows)
        assert TroughLevel.objects.filter(accession__startswith=f"{tag}-").count() == len(rows)
        sql = [q["sql"].lstrip().upper() for q in captured.captured_queries]
        inserts = sum(1 for q in sql if re.match(r"(\d+ TIMES: )?(INSERT|COPY) ", q))
        return len(sql) - inserts, inserts

    one_each, inserted = queries("Q1", patients, 1)
    assert inserted == 2  # the troughs and their history, one batch each
    six_each, inserted = queries("Q2", patients, 6)
    assert six_each == one_each
    assert inserted == 2  # one statement per table, whatever the rows
    # More new troughs than one id lookup takes (900): none of them is looked up, since
    # they come with the call and are not stored yet.
    many_each, inserted = queries("Q4", patients, 120)
    assert many_each == one_each
    assert inserted == 2
    # Fewer patients: the same queries, less one when none of them has its latest trough
    # outside the metrics window (looked up by id, 900 at a time).
    two_patients, _ = queries("Q3", patients[:2], 1)
    assert one_each - 1 <= two_patients <= one_each


def test_the_daily_refresh_stores_what_re_judging_everything_stores(today):
    # Yesterday's summaries, wrong by now; the trough flags do not depend on the date.
    full_state = stored_state()
    yesterday = today - timedelta(days=1)
    Patient.objects.update(alert_codes="", warning_count=0, assessed_on=yesterday)
    services.patients_refresh(today)
    assert stored_state() == full_state


def test_the_refresh_command_judges_marked_patients_in_full_and_the_rest_by_summary(today):
    full_state = stored_state()
    patients = list(Patient.objects.order_by("mrn"))
    marked = patients[0]
    TroughLevel.objects.filter(patient=marked).update(range_flag="", timing_flag="")
    Patient.objects.filter(pk=marked.pk).update(assessed_on=None)
    Patient.objects.exclude(pk=marked.pk).update(assessed_on=today - timedelta(days=3))
    out = io.StringIO()
    call_command("refresh_summaries", stdout=out)
    assert f"1 patient(s) in full and {len(patients) - 1} by summary" in out.getvalue()
    assert stored_state() == full_state
    out = io.StringIO()
    call_command("refresh_summaries", stdout=out)
    assert "0 patient(s) in full and 0 by summary" in out.getvalue()


def test_stored_summaries_agree_with_the_pages_for_every_alert(settings):
    # Re-judging loads troughs and labs narrowly (the fields and lab tests the rules read);
    # the pages load every record. The demo patients raise every alert code, the kidney
    # ones included: the stored summaries must say what the pages say.
    settings.DEBUG = True  # seed_demo refuses to run otherwise
    call_command("seed_demo", stdout=io.StringIO())
    patients = list(Patient.objects.order_by("pk"))
    services.patients_reassess(patients)
    stored = {p.pk: p.alert_codes for p in Patient.objects.order_by("pk")}
    shown = {a.records.patient.pk: ";".join(a.alerts) for a in services.patients_assess(patients)}
    assert stored == shown
    codes = {code for text in stored.values() for code in text.split(";")}
    assert {"pre_existing_ckd", "nephrotoxicity_watch"} <= codes


def test_an_import_judges_a_patient_marked_for_re_judging_in_full(today):
    # A threshold edit marks every patient (assessed_on empty); an import that comes before
    # the refresh must not leave the marked patient's older troughs with stale flags.
    full_state = stored_state()
    patient = Patient.objects.order_by("mrn").first()
    TroughLevel.objects.filter(patient=patient).update(range_flag="", timing_flag="")
    services.patients_mark_for_rejudging()
    imported([trough(patient.mrn, today - timedelta(days=1), "5.0", "MARKED-1")])
    assert not TroughLevel.objects.filter(patient=patient, range_flag="").exists()
    others = Patient.objects.exclude(pk=patient.pk)
    assert not others.exclude(assessed_on=None).exists()  # still marked for the refresh
    services.patients_refresh(today)
    before = {row[0] for row in full_state[0]}
    assert [row for row in stored_state()[0] if row[0] in before] == full_state[0]


def lab(patient, at: datetime, test: str, value: str, unit: str, status: str = "active"):
    return LabResult.objects.create(
        patient=patient, collected_at=at, test=test, value=Decimal(value), unit=unit, status=status
    )


@pytest.mark.parametrize("first_dose", ["0", "3"])
def test_the_narrow_lab_load_gives_the_kidney_baseline_of_every_lab(first_dose):
    # Re-judging loads only the baseline labs and the latest creatinine (selectors.rule_labs);
    # kidney_baseline must come out as from every lab: a zero-dose regimen before the start,
    # creatinine in two units, a later lab entered in error, a lab dated after "now" and
    # monitoring results in between.
    now = end_of_day(timezone.localdate())
    patient = Patient.objects.create(
        mrn="KID-1", family_name="Ren", given_name="Al", birth_date=date(1980, 1, 1), sex="F"
    )
    start = now - timedelta(days=400)
    Regimen.objects.create(
        patient=patient,
        effective_at=start - timedelta(days=30),
        formulation="IR",
        frequency="BID",
        daily_dose_mg=Decimal(first_dose),
    )
    Regimen.objects.create(
        patient=patient, effective_at=start, formulation="IR", frequency="BID", daily_dose_mg=4
    )
    lab(patient, start - timedelta(days=90), "creatinine", "0.8", "mg/dL")
    lab(patient, start - timedelta(days=10), "creatinine", "0.9", "mg/dL")
    lab(patient, start - timedelta(days=5), "egfr", "55", "mL/min/1.73m2")
    for day in range(20, 300, 20):
        lab(patient, start + timedelta(days=day), "creatinine", "1.0", "mg/dL")
    latest = now - timedelta(days=3)
    lab(patient, latest, "creatinine", "1.3", "mg/dL")
    lab(patient, latest - timedelta(hours=2), "creatinine", "99", "umol/L")
    lab(patient, latest + timedelta(hours=1), "creatinine", "4.0", "mg/dL", "entered_in_error")
    LabResult.objects.filter(pk=lab(patient, now, "creatinine", "5.0", "mg/dL").pk).update(
        collected_at=now + timedelta(days=2)
    )
    regimens = sorted(
        Regimen.objects.filter(patient=patient, status="active"), key=lambda r: r.effective_at
    )
    every = [
        x
        for x in LabResult.objects.filter(patient=patient)
        if x.status == "active" and x.collected_at <= now
    ]
    narrow = selectors.rule_labs([patient.pk], now)[patient.pk]
    assert len(narrow) < len(every)
    expected = kidney_baseline(patient, regimens, every)
    assert expected[0] is not None and expected[1] is not None
    assert kidney_baseline(patient, regimens, narrow) == expected


def test_rule_rows_judge_as_the_model_instances_do(today):
    """Re-judging reads plain rows (``rule_rows``); the pages read model instances: the
    verdicts must be the same, record by record."""
    patients = list(Patient.objects.order_by("mrn"))
    until = end_of_day(today)

    def verdicts(**selection) -> list:
        results = services.patients_assess(patients, as_of=today, **selection)
        return [
            (
                r.alerts,
                r.next_due,
                r.urgency_band,
                r.action,
                r.data_mark,
                r.metrics,
                r.dose_suggestion,
                (r.baseline_creatinine, r.latest_creatinine, r.baseline_egfr),
                [(e.on, e.kind, e.drug) for e in r.interaction_events],
                sorted(d.pk for d in r.active_drugs),
                r.current_regimen.pk if r.current_regimen else None,
                [
                    (a.level.pk, a.range, a.timing, a.steady_state, a.target, a.qualifying)
                    for a in r.levels
                ],
            )
            for r in results
        ]

    models = verdicts()
    assert verdicts(for_rules=True) == models
    assert verdicts(for_rules=True, rule_labs_until=until) == verdicts(rule_labs_until=until)
    # The seed gives the rules something to read in every kind of record.
    assert any(v[9] for v in models) and any(v[7][0] is not None for v in models)
    assert ConcomitantDrug.objects.exclude(catalog__interaction="").exclude(catalog=None).exists()
