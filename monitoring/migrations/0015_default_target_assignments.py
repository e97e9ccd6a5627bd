"""Every patient has a target assignment from the start of their record.

New patients get one when they are created (``Patient.save``); this gives the patients
created before that the site's default profile from their birth date, so a first target
phase added later judges only the troughs after it. Patients that already have an
assignment keep theirs. The rows get a "created" history entry with the reason."""

from datetime import datetime, time

from django.db import migrations
from django.utils import timezone

DEFAULT_PROFILE_CODE = "ln_maintenance"
REASON = "site default target for a patient registered without one"


def assign_default_targets(apps, schema_editor):
    Patient = apps.get_model("monitoring", "Patient")
    TargetProfile = apps.get_model("monitoring", "TargetProfile")
    TargetAssignment = apps.get_model("monitoring", "TargetAssignment")
    HistoricalTargetAssignment = apps.get_model("monitoring", "HistoricalTargetAssignment")
    profile = TargetProfile.objects.filter(code=DEFAULT_PROFILE_CODE).first()
    if profile is None:
        return
    without = Patient.objects.filter(targets__isnull=True)
    for patient in without.iterator():
        start = timezone.make_aware(datetime.combine(patient.birth_date, time.min))
        assignment = TargetAssignment.objects.create(
            patient=patient, profile=profile, effective_from=start
        )
        HistoricalTargetAssignment.objects.create(
            id=assignment.pk,
            patient_id=patient.pk,
            profile_id=profile.pk,
            effective_from=start,
            low_override=None,
            high_override=None,
            reason="",
            history_date=timezone.now(),
            history_type="+",
            history_change_reason=REASON,
        )
        # Judged again by the next refresh, against the stored assignment.
        Patient.objects.filter(pk=patient.pk).update(assessed_on=None)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0014_export_permission"),
    ]

    operations = [
        migrations.RunPython(assign_default_targets, migrations.RunPython.noop),
    ]
