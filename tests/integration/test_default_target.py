"""A patient registered without a target gets the site's default profile from the start of
their record (admin, import, code), so a first target phase added later judges only the
troughs after it; a data migration gives patients registered before that theirs."""

from __future__ import annotations

import importlib
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from monitoring import services
from monitoring.importers import run_csv_import
from monitoring.models import Patient, TargetAssignment, TargetProfile, TroughLevel

pytestmark = pytest.mark.django_db

INLINES = ("targets", "regimens", "levels", "drugs", "labs")


def admin_patient_post(mrn: str = "ADM-1") -> dict:
    data = {
        "mrn": mrn,
        "family_name": "Admin",
        "given_name": "Ada",
        "birth_date": "1980-05-06",
        "sex": "F",
        "height_cm": "",
        "ln_class": "IV",
        "active": "on",
        "therapy_start": "2024-01-01",
        "cyp3a5_expresser": "unknown",
        "therapy_end": "",
        "anchor_date": "",
        "anchor_reason": "",
    }
    for prefix in INLINES:
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    return data


def local(day: str, hour: int = 0) -> datetime:
    return timezone.make_aware(datetime.combine(datetime.fromisoformat(day).date(), time(hour)))


def test_a_patient_added_in_the_admin_gets_the_default_target_from_birth(client_for):
    staff = client_for("data_entry", is_staff=True)
    response = staff.post(reverse("admin:monitoring_patient_add"), admin_patient_post())
    assert response.status_code == 302, response.content.decode()[:2000]
    patient = Patient.objects.get(mrn="ADM-1")
    (assignment,) = patient.targets.all()
    assert assignment.profile.code == "ln_maintenance"
    assert assignment.effective_from == local("1980-05-06")
    created = assignment.history.get()
    assert created.history_user == staff.user  # the author of the registration
    assert created.history_change_reason


def test_a_patient_created_in_code_gets_the_default_target():
    patient = Patient.objects.create(
        mrn="CODE-1", family_name="X", given_name="Y", birth_date="1990-01-02", sex="M"
    )
    assert [(a.profile.code, a.effective_from) for a in patient.targets.all()] == [
        ("ln_maintenance", local("1990-01-02"))
    ]


def test_an_imported_patient_has_one_assignment_with_the_file_profile():
    report = run_csv_import(
        "patients",
        b"mrn,family_name,given_name,birth_date,sex,target_profile\n"
        b"IMP-1,Doe,Jo,1985-03-04,F,ln_induction\n",
    )
    assert report.ok
    targets = list(Patient.objects.get(mrn="IMP-1").targets.all())
    assert [(a.profile.code, a.effective_from) for a in targets] == [
        ("ln_induction", local("1985-03-04"))
    ]


def test_a_first_phase_added_later_does_not_rejudge_older_troughs():
    patient = Patient.objects.create(
        mrn="PH-1", family_name="X", given_name="Y", birth_date="1990-01-02", sex="F"
    )
    old = TroughLevel.objects.create(
        patient=patient,
        collected_at=timezone.now() - timedelta(days=60),
        reported_value="7.0",
        reported_unit="ng/mL",
        value_ng_ml=Decimal("7.0"),
    )
    services.patient_reassess(patient)
    old.refresh_from_db()
    assert (old.target_high, old.range_flag) == (Decimal("6.00"), "above")
    # Induction 5-10 from 30 days ago: the older trough keeps the maintenance band.
    TargetAssignment.objects.create(
        patient=patient,
        profile=TargetProfile.objects.get(code="ln_induction"),
        effective_from=timezone.now() - timedelta(days=30),
    )
    services.patient_reassess(patient)
    old.refresh_from_db()
    assert (old.target_high, old.range_flag) == (Decimal("6.00"), "above")


def test_the_migration_gives_patients_without_a_target_the_default():
    # bulk_create skips Patient.save: a patient registered before assignments were made.
    (legacy,) = Patient.objects.bulk_create(
        [Patient(mrn="OLD-1", family_name="X", given_name="Y", birth_date="1970-07-08", sex="F")]
    )
    kept = Patient.objects.create(
        mrn="OLD-2", family_name="X", given_name="Z", birth_date="1971-01-01", sex="F"
    )
    assert not legacy.targets.exists()
    migration = importlib.import_module("monitoring.migrations.0015_default_target_assignments")
    # The migration's own historical models, as when ``migrate`` runs it.
    state = MigrationExecutor(connection).loader.project_state(
        ("monitoring", "0015_default_target_assignments")
    )
    migration.assign_default_targets(state.apps, None)
    (assignment,) = legacy.targets.all()
    assert (assignment.profile.code, assignment.effective_from) == (
        "ln_maintenance",
        local("1970-07-08"),
    )
    assert assignment.history.get().history_change_reason
    assert kept.targets.count() == 1  # one already: left alone
    assert Patient.objects.get(pk=legacy.pk).assessed_on is None
