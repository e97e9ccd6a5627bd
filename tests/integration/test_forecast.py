"""The stored model-informed forecast: which model, what it says, and when it is refitted.

Fits are real (the PK engine on the patient's records); a spy only counts them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring import forecasting, services
from monitoring.importers import run_csv_import
from monitoring.models import Patient, PatientForecast, TroughLevel

pytestmark = [pytest.mark.django_db, pytest.mark.forecast]

TODAY = timezone.localdate()


def stamp(days_ago: int, hour: int = 8) -> str:
    return f"{(TODAY - timedelta(days=days_ago)).isoformat()}T{hour:02d}:00"


def load(kind: str, text: str) -> None:
    report = run_csv_import(kind, text.encode())
    assert report.ok, [str(p) for p in report.problems]


def make_patient(
    mrn: str = "FC-1",
    *,
    formulation: str = "IR",
    frequency: str = "BID",
    dose: str = "3",
    troughs: tuple[tuple[int, str], ...] = ((30, "5.0"), (10, "3.2")),
    birth: str = "1988-04-12",
) -> Patient:
    load(
        "patients",
        "mrn,family_name,given_name,birth_date,sex,therapy_start\n"
        f"{mrn},Doe,Jane,{birth},F,{TODAY - timedelta(days=700)}\n",
    )
    load(
        "regimens",
        "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
        f"{mrn},{stamp(400, 20)},{formulation},{frequency},{dose}\n",
    )
    if troughs:
        nominal = 12 if frequency == "BID" else 24
        rows = ["mrn,collected_at,last_dose_at,value,unit,accession"]
        for i, (ago, value) in enumerate(troughs):
            last = stamp(ago + 1, 20) if nominal == 12 else stamp(ago + 1, 8)
            rows.append(f"{mrn},{stamp(ago)},{last},{value},ng/mL,{mrn}-A{i}")
        load("levels", "\n".join(rows) + "\n")
    return Patient.objects.get(mrn=mrn)


@pytest.fixture
def fits(monkeypatch):
    """Counts the PK fits the forecasting service runs (the real fit runs)."""
    calls = []
    real = forecasting.pk.fit

    def counted(*args, **kwargs):
        calls.append(args[1].id)
        return real(*args, **kwargs)

    monkeypatch.setattr(forecasting.pk, "fit", counted)
    return calls


def test_an_ir_patient_gets_a_map_forecast_with_the_default_model():
    patient = make_patient()
    forecast = PatientForecast.objects.get(patient=patient)
    assert forecast.method == "map"
    assert forecast.model_id == "woillard2011"
    assert forecast.n_troughs_used == 2
    assert not forecast.stale
    assert forecast.daily_dose_mg == 3.0 and forecast.doses_per_day == 2
    doses = [o["daily_dose_mg"] for o in forecast.options]
    assert 3.0 in doses and forecast.suggested_daily_dose_mg in doses
    assert forecast.predicted_p10 < forecast.predicted_trough < forecast.predicted_p90
    assert 0.0 <= forecast.p_in_range <= 1.0
    # No hematocrit, no genotype recorded: the model's defaults, named.
    assert set(forecast.covariates_defaulted) == {"HCT", "CYP3A5"}
    levels = set(TroughLevel.objects.filter(patient=patient).values_list("pk", flat=True))
    assert {int(k) for k in forecast.residuals} == levels
    assert len(forecast.curve["t"]) == len(forecast.curve["median"]) > 10
    assert all(
        lo <= m <= hi
        for lo, m, hi in zip(*(forecast.curve[k] for k in ("p10", "median", "p90")), strict=True)
    )


def test_the_suggested_dose_brings_the_median_nearest_the_target_midpoint():
    patient = make_patient(troughs=((30, "2.6"), (10, "2.5")))
    forecast = patient.forecast
    nearest = min(forecast.options, key=lambda o: abs(o["trough"] - 5.0))
    assert forecast.suggested_daily_dose_mg == nearest["daily_dose_mg"]
    assert forecast.suggested_daily_dose_mg > 3.0  # low troughs: more tacrolimus


def test_an_er_patient_is_forecast_once_daily_as_extended_release():
    patient = make_patient("FC-ER", formulation="ER", frequency="QD", dose="4")
    forecast = patient.forecast
    assert forecast.method == "map" and forecast.model_id == "woillard2011"
    assert forecast.doses_per_day == 1 and forecast.formulation == "ER"


def test_without_a_usable_trough_the_population_forecast_is_said_so():
    patient = make_patient("FC-POP", troughs=())
    forecast = patient.forecast
    assert forecast.method == "population"
    assert forecast.n_troughs_used == 0
    assert "population" in forecast.message
    assert forecast.predicted_trough > 0


def test_lcp_has_no_model_and_falls_back_to_the_proportional_rule():
    patient = make_patient("FC-LCP", formulation="LCP", frequency="QD", dose="2.5")
    forecast = patient.forecast
    assert forecast.method == "proportional"
    assert "no shipped model covers" in forecast.message
    assert forecast.predicted_trough is None


def test_a_fit_that_does_not_converge_falls_back_and_says_so(monkeypatch):
    real = forecasting.pk.fit

    def failing(*args, **kwargs):
        result = real(*args, **kwargs)
        result.converged, result.message = False, "did not converge after 11 starts"
        return result

    monkeypatch.setattr(forecasting.pk, "fit", failing)
    forecast = make_patient("FC-FAIL").forecast
    assert forecast.method == "proportional"
    assert "did not converge" in forecast.message


def test_the_patients_model_choice_is_used_when_it_covers_the_formulation():
    patient = make_patient("FC-CHILD", birth=str(TODAY.year - 12) + "-01-01")
    patient.pk_model = "chen2020"
    patient.save()
    services.patient_reassess(patient)
    patient.forecast.refresh_from_db()
    assert patient.forecast.model_id == "chen2020"
    # ... and ignored where it does not (Chen 2020 is immediate release only).
    er = make_patient("FC-ER2", formulation="ER", frequency="QD", dose="4")
    er.pk_model = "chen2020"
    er.save()
    services.patient_reassess(er)
    er.forecast.refresh_from_db()
    assert er.forecast.model_id == "woillard2011"


def test_population_notes_say_when_a_patient_is_outside_the_model():
    woillard, chen = forecasting.model_by_id("woillard2011"), forecasting.model_by_id("chen2020")
    assert "kidney transplant" in " ".join(forecasting.population_note(woillard, 35))
    assert forecasting.population_note(chen, 12) == []
    assert "children and adolescents" in " ".join(forecasting.population_note(chen, 35))


@pytest.mark.parametrize(
    "change",
    ["trough", "regimen", "hematocrit", "genotype", "model"],
)
def test_each_kind_of_change_refits_the_forecast(change, fits):
    patient = make_patient("FC-RE")
    before = PatientForecast.objects.get(patient=patient).fitted_at
    fits.clear()
    if change == "trough":
        load(
            "levels",
            "mrn,collected_at,last_dose_at,value,unit,accession\n"
            f"FC-RE,{stamp(2)},{stamp(3, 20)},7.5,ng/mL,FC-RE-NEW\n",
        )
    elif change == "regimen":
        header = "mrn,effective_at,formulation,frequency,daily_dose_mg\n"
        load("regimens", f"{header}FC-RE,{stamp(5, 20)},IR,BID,4\n")
    elif change == "hematocrit":
        load("labs", f"mrn,collected_at,test,value,unit\nFC-RE,{stamp(5)},hct,28,%\n")
    else:
        if change == "genotype":
            patient.cyp3a5_expresser = "yes"
        else:
            patient.pk_model = "chen2020"
        patient.save()
        services.patient_reassess(patient)
    assert fits == ["1"]
    forecast = PatientForecast.objects.get(patient=patient)
    assert forecast.fitted_at > before
    if change == "regimen":
        assert forecast.daily_dose_mg == 4.0
    if change == "hematocrit":
        assert "HCT" not in forecast.covariates_defaulted
    if change == "genotype":
        assert forecast.cl_individual > 0 and "CYP3A5" not in forecast.covariates_defaulted


def test_excluding_a_trough_from_the_fit_changes_the_forecast():
    patient = make_patient("FC-EX", troughs=((30, "5.0"), (20, "5.2"), (10, "12.0")))
    before = patient.forecast.predicted_trough
    odd = TroughLevel.objects.get(accession="FC-EX-A2")
    odd.fit_excluded_reason = "drawn 3 h after the morning dose"
    odd.save()
    services.patient_reassess(patient)
    forecast = PatientForecast.objects.get(patient=patient)
    assert forecast.n_troughs_used == 2
    assert forecast.predicted_trough < before
    assert any("excluded from the fit" in note for note in forecast.notes)
    assert TroughLevel.objects.filter(pk=odd.pk).exists()  # kept, only left out


def test_a_large_write_marks_forecasts_stale_and_the_refresh_refits_them(fits):
    patients = "".join(
        f"BULK-{i},Doe,Jo,1980-01-01,F,{TODAY - timedelta(days=700)}\n" for i in range(30)
    )
    load("patients", "mrn,family_name,given_name,birth_date,sex,therapy_start\n" + patients)
    regimens = "".join(f"BULK-{i},{stamp(100, 20)},IR,BID,3\n" for i in range(30))
    fits.clear()
    load("regimens", "mrn,effective_at,formulation,frequency,daily_dose_mg\n" + regimens)
    assert fits == []  # 30 patients: more than a request refits
    assert (
        PatientForecast.objects.filter(patient__mrn__startswith="BULK-", stale=True).count() == 30
    )
    call_command("refresh_summaries")
    assert len(fits) == 30
    assert not PatientForecast.objects.filter(stale=True).exists()


def test_a_stale_forecast_is_refitted_once_on_view_then_read(fits):
    patient = make_patient("FC-VIEW")
    PatientForecast.objects.filter(patient=patient).update(stale=True)
    fits.clear()
    assessment = services.patient_assess(patient)
    first = services.patient_forecast(patient, assessment)
    second = services.patient_forecast(patient, assessment)
    assert fits == ["1"]
    assert not first.stale and second.pk == first.pk


def test_forecast_check_reports_each_method_and_model():
    make_patient("FC-CHK", troughs=((90, "4.0"), (60, "5.5"), (30, "4.8"), (10, "3.9")))
    call_command("forecast_check")
    from monitoring.models import ForecastCheckRun

    run = ForecastCheckRun.objects.get()
    assert run.patients == 1
    overall = {r["method"]: r for r in run.rows if r["scope"] == "all"}
    assert set(overall) == {"map", "population", "proportional"}
    assert overall["map"]["n"] == 3  # the troughs after the first
    assert {r["scope"] for r in run.rows} == {"all", "woillard2011"}
    assert Decimal(str(overall["map"]["within_20"])) <= 1
