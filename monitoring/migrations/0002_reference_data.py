"""Seed the target profiles, the drug catalogue, the thresholds and the three staff groups."""

from decimal import Decimal

from django.contrib.auth.management import create_permissions
from django.db import migrations

from monitoring import reference_data as ref


def seed(apps, schema_editor):
    TargetProfile = apps.get_model("monitoring", "TargetProfile")
    for code, name, low, high, evidence, source in ref.TARGET_PROFILES:
        TargetProfile.objects.update_or_create(
            code=code,
            defaults={"name": name, "low_ng_ml": Decimal(low), "high_ng_ml": Decimal(high),
                      "evidence": evidence, "source": source},
        )
    Drug = apps.get_model("monitoring", "DrugCatalogEntry")
    for name, brands, interaction, strength, immuno, cni in ref.DRUGS:
        Drug.objects.update_or_create(
            name=name,
            defaults={"brand_names": brands, "interaction": interaction, "strength": strength,
                      "immunosuppressant": immuno, "calcineurin_inhibitor": cni,
                      "source": ref.DRUG_SOURCE},
        )
    Setting = apps.get_model("monitoring", "RuleSetting")
    for key, value, label, tag, source in ref.settings_rows():
        Setting.objects.get_or_create(
            key=key, defaults={"value": Decimal(value), "label": label, "evidence": tag,
                               "source": source},
        )
    # Permissions are normally created after all migrations; the groups need them now.
    app_config = apps.get_app_config("monitoring")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in ref.GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="monitoring", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
