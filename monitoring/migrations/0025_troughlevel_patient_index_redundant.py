"""A trough's patient loses its own index: ``Meta.indexes`` has (patient, -collected_at),
which leads with the patient and serves every lookup by it, so the index of the patient
alone only cost writes (each of a large import's 100,000 troughs).

Only that index is dropped. Django's own ``AlterField`` for ``db_index`` would also drop and
re-add the foreign key on PostgreSQL, checking every stored trough again under a lock, and
rebuild the whole table on SQLite; the field's state changes here, the database loses one
index. The name is the one Django gave it in 0001 (the same on both databases)."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "monitoring_troughlevel_patient_id_45605427"


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0024_forecast_change_count"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="troughlevel",
                    name="patient",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="levels",
                        to="monitoring.patient",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "monitoring_troughlevel" ("patient_id")',
                ),
            ],
        ),
    ]
