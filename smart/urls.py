from django.urls import path

from . import views

app_name = "smart"

urlpatterns = [
    path("launch", views.launch, name="launch"),
    path("start", views.start, name="start"),
    path("callback", views.callback, name="callback"),
    path("", views.context, name="context"),
    path("import", views.import_records, name="import"),
    path("patient", views.patient_create, name="patient_create"),
    path("proposals/<int:pk>", views.proposal_decide, name="proposal_decide"),
]
