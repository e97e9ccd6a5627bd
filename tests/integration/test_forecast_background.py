"""Writes from an interface or an import refit the forecasts in a background task, after the
write commits; a clinician's form still refits in the request (the page shows the result)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from monitoring import forecasting, services
from monitoring.models import InterfaceToken, PatientForecast, TroughLevel

from .test_forecast import make_patient, stamp
from .test_hl7_endpoint import send

pytestmark = [pytest.mark.django_db, pytest.mark.forecast]

REFIT_TASK = "monitoring.tasks.refit_forecasts"
DATABASE_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def hl7_trough(mrn: str, accession: str, value: str = "4.1") -> str:
    """An ORU^R01 with one tacrolimus trough collected yesterday morning."""
    when = stamp(1).replace("-", "").replace("T", "").replace(":", "") + "00"
    return (
        f"MSH|^~\\&|LIS|GH|TDM|NEPHRO|{when}||ORU^R01|{accession}|P|2.5.1\r"
        f"PID|1||{mrn}^^^GH^MR||Doe^Jane||19880412|F\r"
        f"OBR|1|ORD1|{accession}|77348-1^Tacrolimus trough^LN|||{when}\r"
        f"OBX|1|NM|77348-1^Tacrolimus trough^LN||{value}|ng/mL^^UCUM|5.0-15.0|N|||F|||"
        f"{when}|||LCMSMS\r"
    )


@pytest.fixture
def token() -> str:
    return InterfaceToken.issue("Main lab LIS")[1]


def test_an_hl7_message_leaves_the_fit_to_the_task_queued_on_commit(
    token, fits, django_capture_on_commit_callbacks
):
    patient = make_patient("BG-1")
    before = PatientForecast.objects.get(patient=patient)
    assert not before.stale and before.n_troughs_used == 2
    fits.clear()
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = send(hl7_trough("BG-1", "ACC-BG1"), token)
        assert response.status_code == 200 and "MSA|AA|ACC-BG1" in response.content.decode()
        # The request fitted nothing: the forecast is marked stale until the task runs.
        assert fits == []
        assert PatientForecast.objects.get(patient=patient).stale
    assert len(queued) == 1  # one task for the message's patients
    # The immediate backend ran the task once the write committed: fitted with the new trough.
    after = PatientForecast.objects.get(patient=patient)
    assert fits and not after.stale and after.n_troughs_used == 3


# serialized_rollback: as every transactional test here, or the next one meets the content
# types that the flush re-created. The worker closes its connection, as in production.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_with_the_database_queue_the_forecast_stays_stale_until_a_worker_runs_the_task(
    token, settings
):
    patient = make_patient("BG-2")
    settings.TASKS = DATABASE_QUEUE
    assert send(hl7_trough("BG-2", "ACC-BG2"), token).status_code == 200
    queued = DBTaskResult.objects.get(task_path=REFIT_TASK)
    assert queued.status == "READY"
    assert queued.priority < 0  # after any import job waiting in the queue
    assert queued.args_kwargs["args"] == [[patient.pk]]
    stale = PatientForecast.objects.get(patient=patient)
    assert stale.stale and stale.n_troughs_used == 2

    call_command("db_worker", "--batch", "--no-startup-delay")

    queued.refresh_from_db()
    assert queued.status == "SUCCESSFUL"
    fresh = PatientForecast.objects.get(patient=patient)
    assert not fresh.stale and fresh.n_troughs_used == 3


def test_a_message_rolled_back_queues_no_refit(token, settings, django_capture_on_commit_callbacks):
    make_patient("BG-3")
    settings.TASKS = DATABASE_QUEUE
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = send(hl7_trough("BG-3", "ACC-BG3", value="abc"), token)
    assert "MSA|AE|ACC-BG3" in response.content.decode()
    assert queued == [] and not DBTaskResult.objects.exists()
    assert not PatientForecast.objects.get(patient__mrn="BG-3").stale


def test_import_csv_marks_stale_and_queues_the_refit(
    settings, django_capture_on_commit_callbacks, tmp_path
):
    patient = make_patient("BG-4")
    settings.TASKS = DATABASE_QUEUE
    path = tmp_path / "levels.csv"
    path.write_text(
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"BG-4,{stamp(1)},{stamp(2, 20)},4.4,ng/mL,BG-4-NEW\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_csv", "levels", str(path))
    assert DBTaskResult.objects.get(task_path=REFIT_TASK).args_kwargs["args"] == [[patient.pk]]
    assert PatientForecast.objects.get(patient=patient).stale


def test_a_clinicians_form_still_refits_in_the_request(client_for, fits):
    patient = make_patient("BG-5")
    fits.clear()
    response = client_for("clinician").post(
        reverse("monitoring:level_add", args=[patient.pk]),
        {
            "collected_at": stamp(1),
            "last_dose_at": stamp(2, 20),
            "reported_value": "6.5",
            "reported_unit": "ng/mL",
            "assay": "LCMSMS",
            "accession": "BG-5-FORM",
            "status": "final",
        },
    )
    assert response.status_code == 302
    assert TroughLevel.objects.filter(accession="BG-5-FORM").exists()
    forecast = PatientForecast.objects.get(patient=patient)
    assert fits and not forecast.stale and forecast.n_troughs_used == 3


def test_a_fit_that_a_newer_change_overtook_is_not_stored(monkeypatch):
    """A change marked while the task fits: that fit misses it, so the row stays stale for
    the newer change's own task, which then stores its fit."""
    patient = make_patient("BG-6")
    forecasting.patients_mark_forecast_stale([patient.pk])
    real = forecasting.pk.fit
    overtaken = []

    def fit_while_a_message_arrives(*args, **kwargs):
        if not overtaken:
            overtaken.append(1)
            forecasting.patients_mark_forecast_stale([patient.pk])
        return real(*args, **kwargs)

    monkeypatch.setattr(forecasting.pk, "fit", fit_while_a_message_arrives)
    assert services.patients_refit_marked([patient.pk]) == 0
    assert PatientForecast.objects.get(patient=patient).stale
    assert services.patients_refit_marked([patient.pk]) == 1
    assert not PatientForecast.objects.get(patient=patient).stale
    # Refitted meanwhile (a page view): nothing left to do.
    assert services.patients_refit_marked([patient.pk]) == 0


def test_an_import_of_many_patients_marks_stale_and_queues_nothing(
    settings, monkeypatch, django_capture_on_commit_callbacks, tmp_path
):
    """Many patients: left to the view and the daily refresh, not a long task holding a
    worker (here "many" is more than none)."""
    patient = make_patient("BG-7")
    settings.TASKS = DATABASE_QUEUE
    monkeypatch.setattr(forecasting, "SYNCHRONOUS_LIMIT", 0)
    path = tmp_path / "levels.csv"
    path.write_text(
        "mrn,collected_at,last_dose_at,value,unit,accession\n"
        f"BG-7,{stamp(1)},{stamp(2, 20)},4.4,ng/mL,BG-7-NEW\n"
    )
    with django_capture_on_commit_callbacks(execute=True) as queued:
        call_command("import_csv", "levels", str(path))
    assert queued == [] and not DBTaskResult.objects.exists()
    assert PatientForecast.objects.get(patient=patient).stale


def test_a_page_view_fit_overtaken_by_a_change_shows_its_fit_and_leaves_the_row_stale(
    monkeypatch,
):
    patient = make_patient("BG-8")
    forecasting.patients_mark_forecast_stale([patient.pk])
    real = forecasting.pk.fit

    def fit_while_a_message_arrives(*args, **kwargs):
        forecasting.patients_mark_forecast_stale([patient.pk])
        return real(*args, **kwargs)

    monkeypatch.setattr(forecasting.pk, "fit", fit_while_a_message_arrives)
    shown = services.patient_forecast(patient, services.patient_assess(patient))
    assert shown.method == "map" and shown.n_troughs_used == 2
    # The newer change's task still finds the row stale, so it refits.
    assert PatientForecast.objects.get(patient=patient).stale


def test_marking_stale_stores_new_rows_as_bulk_create_would():
    """``patients_mark_forecast_stale`` inserts missing rows below the ORM
    (``bulk.insert_defaults``): field for field what ``bulk_create`` of the same objects
    stores, and rows already there are marked again, not duplicated."""
    first, second, third = (make_patient(f"MARK-{i}") for i in range(3))
    PatientForecast.objects.all().delete()  # the fits made with the patients
    PatientForecast.objects.bulk_create(
        [PatientForecast(patient=first, stale=True, change_count=1)]
    )
    forecasting.patients_mark_forecast_stale([second.pk, third.pk])
    fields = [
        f.attname
        for f in PatientForecast._meta.concrete_fields
        if f.attname not in ("id", "patient_id")
    ]
    rows = {
        row["patient_id"]: [row[name] for name in fields]
        for row in PatientForecast.objects.values("patient_id", *fields)
    }
    assert rows[second.pk] == rows[first.pk] == rows[third.pk]
    forecasting.patients_mark_forecast_stale([first.pk, second.pk])
    counts = dict(PatientForecast.objects.values_list("patient_id", "change_count"))
    assert counts == {first.pk: 2, second.pk: 2, third.pk: 1}
