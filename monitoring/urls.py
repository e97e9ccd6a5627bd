"""The clinic's pages, grouped by page family. The back office is the Django admin
(tdm_site/urls.py); who may use each URL is docs/permissions.md, enforced by
tests/integration/test_permissions.py."""

from django.urls import path

from .views import audit as audit_views
from .views import exports as export_views
from .views import fhir as fhir_views
from .views import forecast as forecast_views
from .views import hl7_endpoint
from .views import import_jobs as import_job_views
from .views import imports as import_views
from .views import patient as patient_views
from .views import records as record_views
from .views import report as report_views
from .views import worklist as worklist_views

app_name = "monitoring"

urlpatterns = [
    # Worklist: the home page (every active patient, most urgent first) and its CSV.
    path("", worklist_views.worklist, name="worklist"),
    path("worklist/export.csv", worklist_views.worklist_export, name="worklist_export"),
    path("worklist/recall.csv", worklist_views.recall_csv, name="recall_csv"),
    # Patient page: one patient's troughs, chart and alerts, and its htmx writes.
    path("patients/<int:pk>/", patient_views.patient_detail, name="patient"),
    path("patients/<int:pk>/levels/add/", patient_views.level_add, name="level_add"),
    path(
        "patients/<int:pk>/levels/<int:level_pk>/last-dose/",
        patient_views.level_last_dose,
        name="level_last_dose",
    ),
    path(
        "patients/<int:pk>/levels/<int:level_pk>/error/",
        patient_views.level_mark_error,
        name="level_mark_error",
    ),
    *(
        path(
            f"patients/<int:pk>/record/{slug}/", record_views.record_add, {"kind": kind}, name=name
        )
        for kind, slug, name in (
            ("regimen", "regimen", "regimen_add"),
            ("target", "target", "target_add"),
            ("drug_start", "drug-start", "drug_start"),
            ("drug_stop", "drug-stop", "drug_stop"),
            ("lab", "lab", "lab_add"),
            ("therapy_end", "therapy-end", "therapy_end"),
        )
    ),
    path(
        "patients/<int:pk>/alerts/<slug:code>/acknowledge/",
        record_views.alert_acknowledge,
        name="alert_acknowledge",
    ),
    path(
        "patients/<int:pk>/levels/<int:level_pk>/fit/",
        forecast_views.level_fit,
        name="level_fit",
    ),
    path("patients/<int:pk>/model/", forecast_views.patient_model, name="patient_model"),
    path("patients/<int:pk>/fhir.json", fhir_views.patient_fhir, name="patient_fhir"),
    # Forecast check: how well the models predict this clinic's troughs.
    path("forecast-check/", forecast_views.forecast_check_page, name="forecast_check"),
    # Report: the printable report of one patient, its sign-off, the worklist's batch print.
    path("patients/<int:pk>/report/", report_views.patient_report, name="report"),
    path(
        "patients/<int:pk>/report/sign-off/", report_views.report_sign_off, name="report_sign_off"
    ),
    path("reports/batch/", report_views.batch_report, name="report_batch"),
    # Audit: a patient's change history; the access log for superusers.
    path("patients/<int:pk>/history/", audit_views.patient_history_view, name="patient_history"),
    path("audit/access-log/", audit_views.access_log, name="access_log"),
    path("audit/access-log.csv", audit_views.access_log_csv, name="access_log_csv"),
    # Import: the web upload page (preview, confirm, error rows) and the HL7 interface.
    path("imports/", import_views.import_page, name="import"),
    path("imports/confirm/", import_views.import_confirm, name="import_confirm"),
    path("imports/errors.csv", import_views.import_errors_csv, name="import_errors"),
    path("imports/jobs/<int:pk>/", import_job_views.import_job, name="import_job"),
    path("hl7/inbound/", hl7_endpoint.hl7_inbound, name="hl7_inbound"),
    # Export: the contract exports (levels, patients) as downloads.
    path("exports/", export_views.export_page, name="export"),
]
