"""The site's own URLs plus the Fake EHR under /ehr/ (the SMART tests' ROOT_URLCONF)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from oauth2_provider import views as oauth_views

from tdm_site.urls import urlpatterns as site_urlpatterns

from . import views

oauth_patterns = (
    [
        path(
            ".well-known/jwks.json",
            login_not_required(oauth_views.JwksInfoView.as_view()),
            name="jwks-info",
        ),
    ],
    "oauth2_provider",
)

urlpatterns = [
    path("ehr/fhir/.well-known/smart-configuration", views.smart_configuration),
    path("ehr/fhir/.well-known/openid-configuration", views.openid_configuration),
    path("ehr/fhir/metadata", views.metadata),
    path("ehr/fhir/Patient/<str:pk>", views.patient_read),
    path("ehr/fhir/<str:resource_type>", views.search),
    path("ehr/authorize", views.authorize),
    path("ehr/chart", views.launch_page),
    path("ehr/token", views.token),
    path("ehr/o/", include(oauth_patterns)),
    *site_urlpatterns,
]
