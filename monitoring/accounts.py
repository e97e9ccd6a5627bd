"""User accounts and the clinical record: a user who changed clinical data is never deleted,
only deactivated, so every version in the history and every ``entered_by`` keeps naming a
readable author (a deleted user's rows would show "system (no user)")."""

from __future__ import annotations

from django.apps import apps
from django.db.models import Model, ProtectedError

REFUSAL = (
    "{user} has clinical history ({count} recorded change(s) or entered record(s)) and cannot "
    "be deleted: deactivate the account instead (untick Active), so the history keeps "
    "naming its author."
)


def _monitoring_models() -> list[type[Model]]:
    return list(apps.get_app_config("monitoring").get_models())


def user_clinical_footprint(user_id: int) -> int:
    """How many history versions the user made, and records they entered, in the clinical
    app (0 for a user who may be deleted). Stops counting at the first table with rows."""
    for model in _monitoring_models():
        history = getattr(model, "history", None)
        if history is not None:
            count = history.model.objects.filter(history_user_id=user_id).count()
            if count:
                return count
        if any(f.name == "entered_by" for f in model._meta.get_fields()):
            count = model.objects.filter(entered_by_id=user_id).count()
            if count:
                return count
    return 0


def refusal_text(user) -> str | None:
    count = user_clinical_footprint(user.pk)
    if not count:
        return None
    return REFUSAL.format(user=user.get_username(), count=count)


def refuse_deleting_authors(sender, instance, **kwargs) -> None:
    """pre_delete of the user model: a delete from the admin, the shell or a queryset is
    refused for a user with clinical history."""
    text = refusal_text(instance)
    if text:
        raise ProtectedError(text, {instance})
