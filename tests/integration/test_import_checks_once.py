"""The levels import's per-row work that a file repeats is done once: each distinct MRN is
checked once for the whole file, and the plain records it judges (``LevelSnapshot``,
``rule_rows``) behave as records do (identity, mutable, defaults)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import rule_rows, validation
from monitoring.importers import run_csv_import
from monitoring.importers.levels import LevelSnapshot
from monitoring.models import TroughLevel

pytestmark = pytest.mark.django_db


def levels_file(mrns: list[str], per_patient: int, bad_mrn: str = "") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["mrn", "collected_at", "last_dose_at", "value", "unit", "accession"])
    today = timezone.localdate()
    for day in range(1, per_patient + 1):
        drawn = today - timedelta(days=day)
        for i, mrn in enumerate(mrns):
            writer.writerow(
                [mrn, f"{drawn}T08:00", f"{drawn - timedelta(days=1)}T20:00", "5.1", "ng/mL"]
                + [f"ONCE-{mrn}-{day}-{i}"]
            )
    if bad_mrn:
        writer.writerow([bad_mrn, f"{today}T00:01", "", "5.0", "ng/mL", "ONCE-BAD"])
    return buffer.getvalue().encode()


@pytest.fixture
def counted_mrn_checks(monkeypatch) -> list[str]:
    """The real MRN check, counting what it is asked."""
    checked: list[str] = []
    real = validation.MRN_VALIDATOR

    def counting(text):
        checked.append(text)
        return real(text)

    monkeypatch.setattr(validation, "MRN_VALIDATOR", counting)
    return checked


def make_patients(count: int, checked: list[str]) -> list[str]:
    mrns = [f"ONCE-{i}" for i in range(count)]
    text = "mrn,family_name,given_name,birth_date,sex,therapy_start\n" + "".join(
        f"{mrn},Once,Ann,1990-01-01,F,2024-01-01\n" for mrn in mrns
    )
    assert run_csv_import("patients", text.encode()).written
    checked.clear()  # the patients' own import is not what is counted
    return mrns


def test_each_distinct_mrn_is_checked_once_for_the_whole_file(counted_mrn_checks):
    mrns = make_patients(3, counted_mrn_checks)
    report = run_csv_import("levels", levels_file(mrns, per_patient=10))
    assert report.ok and report.written, [str(p) for p in report.problems]
    assert TroughLevel.objects.count() == 30
    # Before: every row's MRN was checked while the file's patients were looked up (30),
    # then once more per distinct MRN by the rows themselves.
    assert sorted(counted_mrn_checks) == sorted(mrns)


def test_a_bad_mrn_checked_once_is_still_reported_on_its_row(counted_mrn_checks):
    mrns = make_patients(2, counted_mrn_checks)
    report = run_csv_import("levels", levels_file(mrns, per_patient=2, bad_mrn="bad mrn!"))
    assert not report.written
    assert (report.problems[0].row, report.problems[0].column) == (6, "mrn")
    assert report.problems[0].value == "bad mrn!"
    assert {p.row for p in report.problems} == {6}
    assert counted_mrn_checks.count("bad mrn!") == 1
    assert TroughLevel.objects.count() == 0


def test_snapshots_and_rule_rows_are_records_compared_by_identity():
    first = LevelSnapshot(pk=1, patient_id=2, status="final")
    twin = LevelSnapshot(pk=1, patient_id=2, status="final")
    assert first != twin and len({first, twin}) == 2  # hashable, by identity
    assert first.origin is first and first.accession == "" and first.range_flag == ""
    assert first.steady_state is TroughLevel._meta.get_field("steady_state").get_default()
    changed = first.changed({"status": "corrected"})
    assert (changed.status, changed.pk, changed.origin) == ("corrected", 1, first)
    with pytest.raises(AttributeError):
        first.not_a_field = 1  # slots: a misspelt field fails loudly

    row = rule_rows.LevelRow(*range(len(rule_rows.LevelRow.FIELDS)))
    assert row.pk == 0 and getattr(row, rule_rows.LevelRow.FIELDS[-1]) == 13
    row.range_flag = "above"  # re-judging writes the new flags on the loaded rows
    assert row.range_flag == "above"
    assert len({row, rule_rows.LevelRow(*range(len(rule_rows.LevelRow.FIELDS)))}) == 2
    drug = rule_rows.DrugRow(*range(len(rule_rows.DrugRow.FIELDS)))
    assert drug.catalog is None
    with pytest.raises(TypeError):
        rule_rows.LabRow(1, 2)  # every field is given
