"""The site's URLs plus the bench's floor: a bare view timed beside every page.

Login required (the site's middleware), one indexed query for 50 patients, a trivial
template: what any page of this stack costs at least, measured in the same run, so pages
can be reported as multiples of it (this machine's absolute speed varies from day to day).
Only the bench uses this URLconf (``ROOT_URLCONF`` is switched in its worker).
"""

from django.http import HttpResponse
from django.template import engines
from django.urls import path

from monitoring.models import Patient
from tdm_site.urls import urlpatterns as site_patterns

FLOOR_TEMPLATE = engines["django"].from_string(
    "<!doctype html><title>floor</title><ul>{% for mrn, name in rows %}"
    "<li>{{ mrn }} {{ name }}</li>{% endfor %}</ul>"
)


def floor(request):
    rows = list(
        Patient.objects.filter(active=True).order_by("mrn").values_list("mrn", "family_name")[:50]
    )
    return HttpResponse(FLOOR_TEMPLATE.render({"rows": rows}, request))


urlpatterns = [path("bench/floor", floor, name="bench-floor"), *site_patterns]
