from django.conf import settings
from django.http import HttpRequest


def clinic(request: HttpRequest) -> dict[str, str]:
    """Expose the clinic's display name to every template."""
    return {"CLINIC_NAME": settings.CLINIC_NAME}
