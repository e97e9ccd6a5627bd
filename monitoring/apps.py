from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import pre_delete


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"
    verbose_name = "Tacrolimus monitoring"

    def ready(self) -> None:
        from .accounts import refuse_deleting_authors

        pre_delete.connect(
            refuse_deleting_authors,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="monitoring.refuse_deleting_authors",
        )
