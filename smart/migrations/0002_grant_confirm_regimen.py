from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant_confirm(apps, schema_editor):
    """Clinicians confirm an EHR dose order as a regimen (a clinical decision, so its own
    permission: data_entry may key regimens in but not turn orders into them)."""
    # Permissions are normally created after all migrations; the group needs this one now.
    app_config = apps.get_app_config("smart")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(
        content_type__app_label="smart", codename="confirm_regimenproposal"
    )
    group, _ = Group.objects.get_or_create(name="clinician")
    group.permissions.add(permission)


def revoke_confirm(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(
        content_type__app_label="smart", codename="confirm_regimenproposal"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("smart", "0001_smart_launch"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_confirm, revoke_confirm)]
