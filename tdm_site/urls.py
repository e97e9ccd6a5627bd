from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from tdm_site.health import healthz

admin.site.site_header = "Tacrolimus TDM — back office"
admin.site.site_title = "Tacrolimus TDM"
admin.site.index_title = "Back office"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Sign-in, sign-out and changing one's own password. No self-service password reset:
    # the site sends no e-mail; an administrator resets passwords in the admin.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("healthz", healthz, name="healthz"),
    path("smart/", include("smart.urls")),
    path("", include("monitoring.urls")),
]
