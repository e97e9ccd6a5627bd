"""Forms for the admin back office and the clinic pages. Every clinical check goes through
``monitoring.validation`` / ``monitoring.rules``, the same functions the importers call."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from . import config, rules, validation
from .catalog import match_drug
from .models import (
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    LevelStatus,
    RecordStatus,
    Regimen,
    TroughLevel,
)


class ErrorReasonMixin:
    """Marking a record entered-in-error needs a reason; nothing is deleted."""

    error_status = RecordStatus.ENTERED_IN_ERROR

    def clean(self):
        cleaned = super().clean()
        if (
            cleaned.get("status") == self.error_status
            and not (cleaned.get("error_reason") or "").strip()
        ):
            self.add_error("error_reason", "a reason is required to mark a record in error")
        return cleaned


class TroughLevelForm(ErrorReasonMixin, forms.ModelForm):
    error_status = LevelStatus.ENTERED_IN_ERROR

    class Meta:
        model = TroughLevel
        fields = [
            "collected_at",
            "last_dose_at",
            "reported_value",
            "reported_unit",
            "assay",
            "accession",
            "status",
            "error_reason",
        ]

    def clean(self):
        cleaned = super().clean()
        thresholds = config.load_thresholds()
        value, unit = cleaned.get("reported_value"), cleaned.get("reported_unit")
        if value is not None and unit is not None:
            try:
                level = rules.parse_level(
                    value, unit, ceiling_ng_ml=thresholds.plausibility_ceiling_ng_ml
                )
            except rules.RuleError as exc:
                field = "reported_unit" if exc.field == "unit" else "reported_value"
                self.add_error(field, f"value '{exc.value}': {exc.message}")
            else:
                self.instance.comparator = level.comparator
                self.instance.value_ng_ml = validation.stored_ng_ml(level.value_ng_ml)
        collected, last_dose = cleaned.get("collected_at"), cleaned.get("last_dose_at")
        if collected:
            try:
                validation.not_in_future(collected, "collected_at")
            except rules.RuleError as exc:
                self.add_error("collected_at", f"value '{exc.value}': {exc.message}")
        if collected and last_dose:
            try:
                validation.level_timing(collected, last_dose, thresholds)
            except rules.RuleError as exc:
                self.add_error("last_dose_at", f"value '{exc.value}': {exc.message}")
        return cleaned


class RegimenForm(ErrorReasonMixin, forms.ModelForm):
    class Meta:
        model = Regimen
        fields = [
            "effective_at",
            "formulation",
            "frequency",
            "daily_dose_mg",
            "sampling_hours",
            "dose_times",
            "note",
            "status",
            "error_reason",
        ]

    def clean_daily_dose_mg(self):
        value = self.cleaned_data.get("daily_dose_mg")
        try:
            return validation.daily_dose_mg(value)
        except rules.RuleError as exc:
            raise ValidationError(f"value '{exc.value}': {exc.message}") from exc

    def clean_sampling_hours(self):
        value = self.cleaned_data.get("sampling_hours")
        try:
            return validation.sampling_hours(value)
        except rules.RuleError as exc:
            raise ValidationError(f"value '{exc.value}': {exc.message}") from exc

    def clean(self):
        cleaned = super().clean()
        frequency = cleaned.get("frequency")
        if frequency:
            try:
                cleaned["dose_times"] = validation.dose_times(cleaned.get("dose_times"), frequency)
            except rules.RuleError as exc:
                self.add_error("dose_times", f"value '{exc.value}': {exc.message}")
        return cleaned


class ConcomitantDrugForm(ErrorReasonMixin, forms.ModelForm):
    class Meta:
        model = ConcomitantDrug
        fields = ["name", "started_on", "stopped_on", "status", "error_reason"]

    def clean(self):
        cleaned = super().clean()
        started, stopped = cleaned.get("started_on"), cleaned.get("stopped_on")
        if started and stopped and stopped < started:
            self.add_error("stopped_on", f"value '{stopped}': is before started_on")
        if cleaned.get("name"):
            self.instance.catalog = match_drug(cleaned["name"], DrugCatalogEntry.objects.all())
        return cleaned


class LabResultForm(ErrorReasonMixin, forms.ModelForm):
    class Meta:
        model = LabResult
        fields = ["collected_at", "test", "value", "unit", "accession", "status", "error_reason"]

    def clean(self):
        cleaned = super().clean()
        test, unit = cleaned.get("test"), cleaned.get("unit")
        if test and unit:
            try:
                cleaned["unit"] = validation.lab_unit(test, unit)
            except rules.RuleError as exc:
                self.add_error("unit", f"value '{exc.value}': {exc.message}")
        value = cleaned.get("value")
        if value is not None and value < 0:
            self.add_error("value", f"value '{value}': must not be negative")
        elif value is not None and test:
            try:
                validation.lab_value(str(value), test=test)
            except rules.RuleError as exc:
                self.add_error("value", f"value '{exc.value}': {exc.message}")
        collected = cleaned.get("collected_at")
        if collected:
            try:
                validation.not_in_future(collected, "collected_at")
            except rules.RuleError as exc:
                self.add_error("collected_at", f"value '{exc.value}': {exc.message}")
        return cleaned


class ErrorReasonForm(forms.Form):
    """The reason asked for when a record is marked entered-in-error."""

    reason = forms.CharField(
        label="Reason it was entered in error",
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("a reason is required")
        return reason
