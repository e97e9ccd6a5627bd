from django.apps import AppConfig


class FakeEhrConfig(AppConfig):
    name = "tests.fake_ehr"
    label = "fake_ehr"

    def ready(self) -> None:
        # The Fake EHR's OAuth tables are not part of the app's back office: keep them out of
        # the admin so the permission matrix (tests/integration/test_permissions.py) is the
        # app's own.
        from django.contrib import admin
        from oauth2_provider import models

        for model in (
            models.get_application_model(),
            models.get_access_token_model(),
            models.get_refresh_token_model(),
            models.get_grant_model(),
            models.get_id_token_model(),
        ):
            if admin.site.is_registered(model):
                admin.site.unregister(model)
