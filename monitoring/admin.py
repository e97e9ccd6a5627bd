"""The back office: data entry with history. Clinical records are never deleted; staff mark
them entered-in-error with a reason (an inline status, or the changelist action)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from . import rules, services
from .accounts import refusal_text
from .audit import log_access, log_bulk_access
from .forms import (
    ConcomitantDrugForm,
    ErrorReasonForm,
    LabResultForm,
    RegimenForm,
    TroughLevelForm,
)
from .models import (
    LEVEL_COMPUTED_FIELDS,
    ConcomitantDrug,
    DrugCatalogEntry,
    InterfaceToken,
    LabResult,
    Patient,
    Regimen,
    RuleSetting,
    TargetAssignment,
    TargetProfile,
    TroughLevel,
)

admin.site.site_header = "Tacrolimus TDM — back office"
admin.site.site_title = "Tacrolimus TDM"


class NoDeleteMixin:
    """Delete is replaced by entered-in-error: no role may delete clinical data here. The
    delete page answers 403 with what to do instead, not a bare "Forbidden"."""

    def has_delete_permission(self, request, obj=None):
        return False

    def delete_view(self, request, object_id, extra_context=None):
        if not self.has_view_or_change_permission(request):
            return super().delete_view(request, object_id, extra_context)
        opts = self.model._meta
        try:
            change_url = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id]
            )
        except NoReverseMatch:
            change_url = ""
        return TemplateResponse(
            request,
            "admin/monitoring/no_delete.html",
            {
                **self.admin_site.each_context(request),
                "title": "Records are not deleted",
                "opts": opts,
                "change_url": change_url,
            },
            status=403,
        )


class AccessLoggedMixin:
    """The back office shows patient data as much as the front office does: each change
    page (a form re-shown with errors too), each history page and each list page shown is
    written to the access log as ``admin <model>``, ``admin <model> history`` and ``admin
    <model> list`` (one row per patient listed, plus the search and filters, if any)."""

    def _access_name(self) -> str:
        return f"admin {self.model._meta.model_name}"

    @staticmethod
    def _patient_id(obj) -> int:
        return obj.pk if isinstance(obj, Patient) else obj.patient_id

    def _log_object(self, request: HttpRequest, response, object_id, what: str) -> None:
        if response.status_code != 200 or object_id is None:
            return
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            log_access(request, self._patient_id(obj), what)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        self._log_object(request, response, object_id, self._access_name())
        return response

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        self._log_object(request, response, object_id, f"{self._access_name()} history")
        return response

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        response = super().history_form_view(request, object_id, version_id, extra_context)
        self._log_object(request, response, object_id, f"{self._access_name()} history")
        return response

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        if response.status_code == 200 and "cl" in context:
            shown = dict.fromkeys(self._patient_id(obj) for obj in context["cl"].result_list)
            search = "; ".join(
                f"{key}={value}"
                for key, value in request.GET.items()
                if key not in ("p", "o") and value
            )
            log_bulk_access(request, shown, f"{self._access_name()} list", search=search)
        return response


class ReassessOnSaveMixin:
    """Stored flags follow every change, so lists never show a stale verdict."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and hasattr(obj, "entered_by_id") and obj.entered_by_id is None:
            type(obj).objects.filter(pk=obj.pk).update(entered_by=request.user)
        services.patient_reassess(obj if isinstance(obj, Patient) else obj.patient)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if isinstance(form.instance, Patient):
            services.patient_reassess(form.instance)


class RejudgeAllOnSaveMixin:
    """Thresholds, target profiles and the drug catalogue change verdicts of any patient: a
    save marks every stored summary for a full re-judge (flags included), which the next
    worklist request runs (``views.worklist.refresh_stale_summaries``) or, for thousands of
    patients, ``manage.py refresh_summaries`` right after the change."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.patients_mark_for_rejudging()


class ClinicalInline(NoDeleteMixin, admin.TabularInline):
    extra = 0
    show_change_link = True


class SetTargetMixin:
    """Setting a target (a band or an individualised one) is a clinician's decision: it
    needs ``monitoring.set_target`` as well as the model's own add/change permission."""

    def has_add_permission(self, request, *args):
        return request.user.has_perm("monitoring.set_target") and super().has_add_permission(
            request, *args
        )

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("monitoring.set_target") and super().has_change_permission(
            request, obj
        )


class TargetInline(SetTargetMixin, NoDeleteMixin, admin.TabularInline):
    model = TargetAssignment
    extra = 0
    fields = ["profile", "effective_from", "low_override", "high_override", "reason"]


class RegimenInline(ClinicalInline):
    model = Regimen
    form = RegimenForm
    fields = RegimenForm.Meta.fields


class LevelInline(ClinicalInline):
    model = TroughLevel
    form = TroughLevelForm
    fields = TroughLevelForm.Meta.fields + [
        "correction_reason",
        "range_flag",
        "timing_flag",
        "steady_state",
    ]
    readonly_fields = ["range_flag", "timing_flag", "steady_state"]
    ordering = ["-collected_at"]


class DrugInline(ClinicalInline):
    model = ConcomitantDrug
    form = ConcomitantDrugForm
    fields = ConcomitantDrugForm.Meta.fields + ["catalog"]
    readonly_fields = ["catalog"]


class LabInline(ClinicalInline):
    model = LabResult
    form = LabResultForm
    fields = LabResultForm.Meta.fields


class AlertFilter(admin.SimpleListFilter):
    title = "alert"
    parameter_name = "alert"

    def lookups(self, request, model_admin):
        return [(code, code) for code in rules.ALERT_CODES]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(alert_codes__contains=self.value())
        return queryset


def badge_list(codes: list[str]) -> str:
    return ", ".join(codes) if codes else "—"


@admin.register(Patient)
class PatientAdmin(AccessLoggedMixin, ReassessOnSaveMixin, NoDeleteMixin, SimpleHistoryAdmin):
    list_display = [
        "mrn",
        "family_name",
        "given_name",
        "latest_trough",
        "latest_flags",
        "alerts_display",
        "active",
    ]
    list_select_related = ["latest_level"]
    search_fields = ["mrn", "family_name", "given_name"]
    list_filter = [AlertFilter, "active", "sex", "cyp3a5_expresser"]
    readonly_fields = ["alerts_display", "assessed_on"]
    inlines = [TargetInline, RegimenInline, LevelInline, DrugInline, LabInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "mrn",
                    "family_name",
                    "given_name",
                    "birth_date",
                    "sex",
                    "height_cm",
                    "ln_class",
                    "active",
                ]
            },
        ),
        ("Pharmacokinetics", {"fields": ["cyp3a5_expresser"]}),
        (
            "Therapy course (36-month clock)",
            {"fields": ["therapy_start", "therapy_end", "anchor_date", "anchor_reason"]},
        ),
        ("Computed (read-only)", {"fields": ["alerts_display", "assessed_on"]}),
    ]

    @admin.display(description="latest trough")
    def latest_trough(self, obj: Patient) -> str:
        level = obj.latest_level
        if level is None:
            return "—"
        return (
            f"{level.comparator}{rules.round_to(level.value_ng_ml, 2)} ng/mL "
            f"({level.collected_at:%Y-%m-%d})"
        )

    @admin.display(description="range / timing")
    def latest_flags(self, obj: Patient) -> str:
        level = obj.latest_level
        return f"{level.range_flag} / {level.timing_flag}" if level else "—"

    @admin.display(description="alerts")
    def alerts_display(self, obj: Patient) -> str:
        return badge_list(obj.alerts)


class MarkInErrorAction:
    """An admin action asking for the reason before it marks the chosen records."""

    actions = ["mark_entered_in_error"]

    @admin.action(description="Mark selected as entered in error (asks for a reason)")
    def mark_entered_in_error(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponse | None:
        if "apply" in request.POST:
            form = ErrorReasonForm(request.POST)
            if form.is_valid():
                for record in queryset.select_related("patient"):
                    services.record_mark_in_error(
                        record, reason=form.cleaned_data["reason"], user=request.user
                    )
                self.message_user(
                    request,
                    f"{queryset.count()} record(s) marked entered in "
                    "error; they stay in the history.",
                    messages.SUCCESS,
                )
                return None
        else:
            form = ErrorReasonForm()
        return TemplateResponse(
            request,
            "admin/monitoring/mark_in_error.html",
            {
                **self.admin_site.each_context(request),
                "title": "Mark as entered in error",
                "records": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


class ClinicalRecordAdmin(
    AccessLoggedMixin, MarkInErrorAction, ReassessOnSaveMixin, NoDeleteMixin, SimpleHistoryAdmin
):
    list_select_related = ["patient"]
    search_fields = ["patient__mrn", "patient__family_name"]
    autocomplete_fields = ["patient"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            actions.pop("mark_entered_in_error", None)
        return actions


@admin.register(TroughLevel)
class TroughLevelAdmin(ClinicalRecordAdmin):
    form = TroughLevelForm
    list_display = [
        "patient",
        "collected_at",
        "reported",
        "range_flag",
        "timing_flag",
        "steady_state",
        "assay",
        "accession",
        "status",
        "source",
    ]
    list_filter = ["range_flag", "timing_flag", "status", "assay", "source"]
    readonly_fields = [
        "comparator",
        "value_ng_ml",
        *LEVEL_COMPUTED_FIELDS,
        "source",
        "entered_by",
    ]
    fields = ["patient", *TroughLevelForm.Meta.fields, "correction_reason", *readonly_fields]
    search_fields = ClinicalRecordAdmin.search_fields + ["accession"]

    @admin.display(description="value")
    def reported(self, obj: TroughLevel) -> str:
        text = f"{obj.reported_value} {obj.reported_unit}"
        return format_html("<s>{}</s>", text) if obj.in_error else text


@admin.register(Regimen)
class RegimenAdmin(ClinicalRecordAdmin):
    form = RegimenForm
    list_display = [
        "patient",
        "effective_at",
        "daily_dose_mg",
        "formulation",
        "frequency",
        "clock_times_display",
        "status",
    ]
    list_filter = ["formulation", "frequency", "status"]
    fields = ["patient"] + RegimenForm.Meta.fields

    @admin.display(description="dose times")
    def clock_times_display(self, obj: Regimen) -> str:
        times = " / ".join(obj.clock_times)
        return times if obj.dose_times else f"{times} (default)"


@admin.register(ConcomitantDrug)
class ConcomitantDrugAdmin(ClinicalRecordAdmin):
    form = ConcomitantDrugForm
    list_display = ["patient", "name", "catalog", "started_on", "stopped_on", "status"]
    list_filter = ["status", "catalog__interaction", "catalog__immunosuppressant"]
    fields = ["patient"] + ConcomitantDrugForm.Meta.fields + ["catalog"]
    readonly_fields = ["catalog"]


@admin.register(LabResult)
class LabResultAdmin(ClinicalRecordAdmin):
    form = LabResultForm
    list_display = ["patient", "collected_at", "test", "value", "unit", "status"]
    list_filter = ["test", "status"]
    fields = ["patient"] + LabResultForm.Meta.fields


@admin.register(TargetAssignment)
class TargetAssignmentAdmin(
    SetTargetMixin, AccessLoggedMixin, ReassessOnSaveMixin, NoDeleteMixin, SimpleHistoryAdmin
):
    list_display = ["patient", "profile", "effective_from", "low_override", "high_override"]
    autocomplete_fields = ["patient"]


@admin.register(TargetProfile)
class TargetProfileAdmin(RejudgeAllOnSaveMixin, NoDeleteMixin, SimpleHistoryAdmin):
    list_display = ["code", "name", "low_ng_ml", "high_ng_ml", "evidence", "active"]


@admin.register(DrugCatalogEntry)
class DrugCatalogAdmin(RejudgeAllOnSaveMixin, SimpleHistoryAdmin):
    list_display = [
        "name",
        "brand_names",
        "interaction",
        "strength",
        "immunosuppressant",
        "calcineurin_inhibitor",
    ]
    list_filter = ["interaction", "immunosuppressant", "calcineurin_inhibitor"]
    search_fields = ["name", "brand_names"]


@admin.register(RuleSetting)
class RuleSettingAdmin(RejudgeAllOnSaveMixin, NoDeleteMixin, SimpleHistoryAdmin):
    list_display = ["label", "value", "evidence", "source"]
    readonly_fields = ["key"]

    def has_add_permission(self, request):
        return False  # the keys are the rules' own; values are what clinics change


@admin.register(InterfaceToken)
class InterfaceTokenAdmin(admin.ModelAdmin):
    """Tokens for the HL7 endpoint. The token is made here and shown once, on the page that
    follows "Save"; only its SHA-256 is stored. Deactivate a token rather than delete it."""

    list_display = ["name", "active", "created_at", "last_used_at"]
    list_filter = ["active"]
    fields = ["name", "active", "created_at", "last_used_at"]
    readonly_fields = ["created_at", "last_used_at"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if not change:
            obj._plain_token = obj.set_new_token()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        token = getattr(obj, "_plain_token", "")
        if not token:  # pragma: no cover - save_model always sets it on add
            return super().response_add(request, obj, post_url_continue)
        return TemplateResponse(
            request,
            "admin/monitoring/interfacetoken_created.html",
            {
                **self.admin_site.each_context(request),
                "title": "Interface token created",
                "interface": obj,
                "token": token,
                "endpoint": request.build_absolute_uri(reverse("monitoring:hl7_inbound")),
                "changelist_url": reverse("admin:monitoring_interfacetoken_changelist"),
                "opts": self.model._meta,
            },
        )


class ClinicalAuthorUserAdmin(UserAdmin):
    """Users who changed clinical data are deactivated, never deleted: the delete page and
    the bulk delete action list them as protected, with the reason, and delete nothing."""

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        refusals = [text for text in (refusal_text(user) for user in objs) if text]
        return deleted, counts, perms_needed, list(protected) + refusals


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, ClinicalAuthorUserAdmin)
