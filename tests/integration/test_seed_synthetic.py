"""seed_synthetic: reproducible, realistic synthetic patients with flags and history."""

from __future__ import annotations

import io
from collections import Counter
from datetime import date, timedelta
from statistics import median

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from monitoring import config, rules, synthetic
from monitoring.models import (
    ConcomitantDrug,
    LabResult,
    LevelStatus,
    Patient,
    Regimen,
    TargetAssignment,
    TroughLevel,
)
from monitoring.services import patients_reassess

pytestmark = pytest.mark.django_db

AS_OF = date(2026, 3, 1)


def seed(**options) -> str:
    out = io.StringIO()
    options = {
        "patients": 5,
        "years": 2,
        "seed": 11,
        "as_of": AS_OF.isoformat(),
        "force": True,
        **options,
    }
    call_command("seed_synthetic", stdout=out, **options)
    return out.getvalue()


def fingerprint(data: list[synthetic.PatientData]) -> list[tuple]:
    rows = []
    for d in data:
        p = d.patient
        rows.append((p.mrn, p.family_name, p.birth_date, p.sex, p.therapy_start, p.therapy_end))
        rows += [
            (
                lv.accession,
                lv.collected_at,
                lv.last_dose_at,
                lv.reported_value,
                lv.reported_unit,
                lv.status,
            )
            for lv in d.levels
        ]
        rows += [(r.effective_at, r.formulation, r.daily_dose_mg, r.status) for r in d.regimens]
        rows += [(x.name, x.started_on, x.stopped_on) for x in d.drugs]
        rows += [(x.test, x.collected_at, x.value, x.unit) for x in d.labs]
    return rows


def stored_fingerprint() -> list[tuple]:
    rows = []
    for p in Patient.objects.order_by("mrn"):
        rows.append((p.mrn, p.family_name, p.birth_date, p.sex, p.therapy_start, p.therapy_end))
        rows += list(
            p.levels.order_by("collected_at", "pk").values_list(
                "accession",
                "collected_at",
                "last_dose_at",
                "reported_value",
                "reported_unit",
                "status",
            )
        )
        rows += list(
            p.regimens.order_by("pk").values_list(
                "effective_at", "formulation", "daily_dose_mg", "status"
            )
        )
        rows += list(p.drugs.order_by("pk").values_list("name", "started_on", "stopped_on"))
        rows += list(p.labs.order_by("pk").values_list("test", "collected_at", "value", "unit"))
    return rows


def scenario(**changes) -> synthetic.Scenario:
    return synthetic.Scenario(**{"patients": 5, "years": 2, "seed": 11, "as_of": AS_OF, **changes})


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data():
    first = fingerprint(synthetic.generate(scenario()))
    assert fingerprint(synthetic.generate(scenario())) == first
    assert fingerprint(synthetic.generate(scenario(seed=12))) != first
    # A patient depends on the seed and its number only, not on the batch it is made in.
    alone = synthetic.generate(scenario(first=3, patients=1))
    assert fingerprint(alone) == fingerprint(synthetic.generate(scenario())[2:3])


def test_the_command_stores_exactly_what_the_generator_draws():
    output = seed()
    assert "Created 5 patients" in output
    assert stored_fingerprint() == fingerprint(synthetic.generate(scenario()))


def test_troughs_come_every_two_to_eight_weeks_over_the_years_asked_for():
    seed()
    assert list(Patient.objects.values_list("mrn", flat=True)) == [
        f"SYN-{n:06d}" for n in range(1, 6)
    ]
    gaps = []
    for patient in Patient.objects.all():
        times = list(patient.levels.values_list("collected_at", flat=True))
        assert 1 <= len(times) <= 2 * 365 // 14 + 5
        assert times[-1].date() < AS_OF
        gaps += [(b - a).days for a, b in zip(times, times[1:], strict=False)]
        assert patient.regimens.exists()
        assert patient.targets.exists()
    # Re-checks a day or two after a dose change and a few days after a switch are shorter.
    assert max(gaps) <= 56
    assert 14 <= median(gaps) <= 56


def test_results_are_as_untidy_as_real_ones():
    data = synthetic.generate(scenario(patients=40, years=3))
    synthetic.judge(data, thresholds=config.load_thresholds(), default=config.default_target())
    levels = [lv for d in data for lv in d.levels]
    comparators = Counter(lv.comparator for lv in levels)
    timings = Counter(lv.timing_flag for lv in levels)
    assert comparators["<"] > 0  # censored below the assay's limit
    assert timings[rules.VALID] > len(levels) / 2
    assert timings[rules.MISTIMED] > 0 and timings[rules.BORDERLINE] > 0
    assert timings[rules.UNKNOWN] > 0  # no last-dose time: the missing C12h timing
    assert any(lv.last_dose_at is None for lv in levels)
    assert {lv.reported_unit for lv in levels} >= {"ng/mL", "nmol/L"}
    assert {LevelStatus.CORRECTED, LevelStatus.ENTERED_IN_ERROR} <= {lv.status for lv in levels}
    assert any(not lv.steady_state for lv in levels)
    assert {r.formulation for d in data for r in d.regimens} >= {"IR", "ER"}
    assert len({r.daily_dose_mg for d in data for r in d.regimens}) > 3
    assert any(
        d.catalog is not None and d.catalog.interaction != "none" for p in data for d in p.drugs
    )
    assert {lab.test for d in data for lab in d.labs} >= {"creatinine", "upcr"}
    ranges = Counter(lv.range_flag for lv in levels)
    assert ranges[rules.IN_RANGE] and ranges[rules.BELOW] and ranges[rules.ABOVE]


def test_flags_are_stored_and_agree_with_a_fresh_reassessment():
    seed(patients=8)
    assert not TroughLevel.objects.filter(range_flag="").exists()
    assert not TroughLevel.objects.filter(timing_flag="").exists()
    assert set(Patient.objects.values_list("assessed_on", flat=True)) == {timezone.localdate()}
    assert Patient.objects.exclude(alert_codes="").exists()
    for patient in Patient.objects.all():
        latest = (
            patient.levels.filter(status__in=["final", "corrected"])
            .order_by("collected_at", "pk")
            .last()
        )
        assert patient.latest_level_id == latest.pk
    before = list(TroughLevel.objects.order_by("pk").values_list(*services_fields()))
    summaries = list(
        Patient.objects.order_by("pk").values_list("alert_codes", "warning_count", "latest_level")
    )
    patients_reassess(Patient.objects.all())
    assert list(TroughLevel.objects.order_by("pk").values_list(*services_fields())) == before
    assert (
        list(
            Patient.objects.order_by("pk").values_list(
                "alert_codes", "warning_count", "latest_level"
            )
        )
        == summaries
    )


def services_fields() -> list[str]:
    from monitoring.services import COMPUTED_LEVEL_FIELDS

    return COMPUTED_LEVEL_FIELDS


def test_the_reassess_path_stores_the_same_flags():
    fast = synthetic.seed(scenario(patients=3, prefix="SYA-"))
    slow = synthetic.seed(scenario(patients=3, prefix="SYB-"), reassess=True)
    assert fast.levels == slow.levels

    def flags(prefix):
        return list(
            TroughLevel.objects.filter(patient__mrn__startswith=prefix)
            .order_by("accession")
            .values_list("accession", *services_fields())
        )

    assert flags("SYA-") == flags("SYB-")
    assert list(
        Patient.objects.filter(mrn__startswith="SYA-")
        .order_by("mrn")
        .values_list("alert_codes", flat=True)
    ) == list(
        Patient.objects.filter(mrn__startswith="SYB-")
        .order_by("mrn")
        .values_list("alert_codes", flat=True)
    )


def test_every_record_has_its_history_row():
    seed(patients=3)
    for model in (Patient, TargetAssignment, Regimen, TroughLevel, ConcomitantDrug, LabResult):
        assert model.history.count() == model.objects.count() > 0
        assert set(model.history.values_list("history_type", flat=True)) == {"+"}
    level = TroughLevel.objects.first()
    assert level.history.get().history_change_reason == synthetic.CHANGE_REASON


def test_a_second_run_changes_nothing_and_append_adds_more():
    seed(patients=3)
    counts = (Patient.objects.count(), TroughLevel.objects.count())
    first = stored_fingerprint()
    output = seed(patients=3)
    assert "already present: nothing changed" in output
    assert (Patient.objects.count(), TroughLevel.objects.count()) == counts
    seed(patients=2, append=True)
    assert list(Patient.objects.values_list("mrn", flat=True))[-2:] == ["SYN-000004", "SYN-000005"]
    assert stored_fingerprint()[: len(first)] == first
    # Appended patients are those a single run would have made.
    appended = Patient.objects.get(mrn="SYN-000005")
    assert appended.levels.count() == len(synthetic.generate(scenario())[4].levels)


def test_it_refuses_with_debug_off_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_synthetic", patients=1, stdout=io.StringIO())
    assert Patient.objects.count() == 0


def test_it_rejects_bad_arguments():
    with pytest.raises(CommandError, match="interval-days"):
        seed(interval_days="20,10")
    with pytest.raises(CommandError, match="positive"):
        seed(patients=0)


def test_dense_histories_for_the_patient_page_benchmark():
    long = synthetic.generate(
        synthetic.Scenario(
            patients=1,
            years=10,
            seed=7,
            as_of=AS_OF,
            prefix="SYNL-",
            interval_days=(5, 9),
            recent_share=0.0,
            overdue_share=0.0,
        )
    )[0]
    assert 400 <= len(long.levels) <= 600
    assert long.levels[0].collected_at.date() < AS_OF - timedelta(days=int(9.9 * 365))
