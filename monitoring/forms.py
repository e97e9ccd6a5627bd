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
    LabTest,
    LevelStatus,
    Patient,
    RecordStatus,
    Regimen,
    TargetAssignment,
    TargetProfile,
    TroughLevel,
)


def form_message(exc: rules.RuleError, typed: str | None = None) -> str:
    """A rule's refusal as a form shows it: the value as the user typed it (``typed``: the
    rules quote a parsed date-time in ISO form), and no words about files."""
    message = exc.message
    if message == rules.DECIMAL_COMMA_IN_FILE:
        message = "write the decimal with a decimal point, e.g. 5.2"
    value = typed if typed not in (None, "") else exc.value
    return f"value '{value}': {message}"


class TypedValues:
    """Form mixin: what the user typed in a field, as typed (a split date and time joined)."""

    def typed(self, name: str) -> str:
        data = self[name].data
        if isinstance(data, list | tuple):
            return " ".join(str(part).strip() for part in data if part)
        return str(data or "").strip()


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


CORRECTION_NEEDED = (
    "a stored result's value is changed only as a correction: set status to 'corrected' "
    "and give the reason; or mark this result entered in error and add the new result"
)


class TroughLevelForm(TypedValues, ErrorReasonMixin, forms.ModelForm):
    """A trough as the back office enters or edits it. A stored result's value is never
    changed silently: as in the import contract, a new value needs status ``corrected`` and
    a reason, which the history keeps next to the old value."""

    error_status = LevelStatus.ENTERED_IN_ERROR

    correction_reason = forms.CharField(
        label="Reason for the correction",
        required=False,
        max_length=100,  # simple-history's change reason
        validators=[validation.no_control_characters],
        help_text="Required when a stored result's value changes (status 'corrected').",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stored_value = (
            (self.instance.comparator, self.instance.value_ng_ml) if self.instance.pk else None
        )

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
                self.add_error(field, form_message(exc, self.typed(field)))
            else:
                self.instance.comparator = level.comparator
                self.instance.value_ng_ml = validation.stored_ng_ml(level.value_ng_ml)
                self._check_correction(cleaned)
        collected, last_dose = cleaned.get("collected_at"), cleaned.get("last_dose_at")
        if collected:
            try:
                validation.not_in_future(collected, "collected_at")
            except rules.RuleError as exc:
                self.add_error("collected_at", form_message(exc, self.typed("collected_at")))
        if collected and last_dose:
            try:
                validation.level_timing(collected, last_dose, thresholds)
            except rules.RuleError as exc:
                self.add_error("last_dose_at", form_message(exc, self.typed("last_dose_at")))
        return cleaned

    def _check_correction(self, cleaned: dict) -> None:
        stored = self._stored_value
        if stored is None or stored == (self.instance.comparator, self.instance.value_ng_ml):
            return
        reason = (cleaned.get("correction_reason") or "").strip()
        if cleaned.get("status") != LevelStatus.CORRECTED:
            self.add_error(
                "reported_value", f"value '{cleaned.get('reported_value')}': {CORRECTION_NEEDED}"
            )
        elif not reason:
            self.add_error("correction_reason", "a reason is required to correct a value")
        else:
            self.instance._change_reason = reason


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
            raise ValidationError(form_message(exc)) from exc

    def clean_sampling_hours(self):
        value = self.cleaned_data.get("sampling_hours")
        try:
            return validation.sampling_hours(value)
        except rules.RuleError as exc:
            raise ValidationError(form_message(exc)) from exc

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


class LabResultForm(TypedValues, ErrorReasonMixin, forms.ModelForm):
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
                self.add_error("unit", form_message(exc))
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
                self.add_error("collected_at", form_message(exc, self.typed("collected_at")))
        return cleaned


class ErrorReasonForm(forms.Form):
    """The reason asked for when a record is marked entered-in-error."""

    reason = forms.CharField(
        label="Reason it was entered in error",
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        validators=[validation.no_control_characters],
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("a reason is required")
        return reason


# --- the patient page's record forms (the front office) --------------------------------------
# Each builds on the admin form of its model, so the checks are those of the admin and of the
# importers (``monitoring.validation``); each asks for the reason the history keeps.

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
KIDNEY_TESTS = (
    LabTest.CREATININE,
    LabTest.EGFR,
    LabTest.UPCR,
    LabTest.POTASSIUM,
    LabTest.MAGNESIUM,
)


def _datetime_input() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _reason_field(*, required: bool, label: str = "Reason") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text="Kept in the change history." + ("" if required else " Optional."),
    )


class PatientRecordForm:
    """A page form bound to one patient (for the duplicate checks the constraints make)."""

    def __init__(self, *args, patient: Patient, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient

    def clean_reason(self) -> str:
        reason = (self.cleaned_data.get("reason") or "").strip()
        if self.fields["reason"].required and not reason:
            raise ValidationError("a reason is required")
        return reason


class RegimenChangeForm(PatientRecordForm, RegimenForm):
    """A dose or formulation change from an effective time."""

    reason = _reason_field(required=True, label="Reason for the change")

    class Meta(RegimenForm.Meta):
        fields = ["effective_at", "formulation", "frequency", "daily_dose_mg", "dose_times"]
        widgets = {"effective_at": _datetime_input()}
        labels = {"effective_at": "Effective from", "daily_dose_mg": "Total daily dose (mg/day)"}
        help_texts = {"daily_dose_mg": "0 records that tacrolimus was stopped."}

    def clean_effective_at(self):
        at = self.cleaned_data.get("effective_at")
        if (
            at
            and Regimen.objects.filter(
                patient=self.patient, effective_at=at, status=RecordStatus.ACTIVE
            ).exists()
        ):
            raise ValidationError(f"value '{at:%Y-%m-%d %H:%M}': a regimen already starts then")
        return at


class TargetPhaseForm(PatientRecordForm, forms.ModelForm):
    """A new target phase from a date, optionally individualised (a clinician's decision)."""

    reason = _reason_field(required=True)

    class Meta:
        model = TargetAssignment
        fields = ["profile", "effective_from", "low_override", "high_override"]
        widgets = {"effective_from": _datetime_input()}
        labels = {
            "profile": "Target profile",
            "effective_from": "Effective from",
            "low_override": "Individualised low (ng/mL)",
            "high_override": "Individualised high (ng/mL)",
        }
        help_texts = {"low_override": "Leave both empty to use the profile's band."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = TargetProfile.objects.filter(active=True)

    def clean(self):
        cleaned = super().clean()
        for name in ("low_override", "high_override"):
            value = cleaned.get(name)
            if value is not None and value <= 0:
                self.add_error(name, f"value '{value}': must be greater than zero")
        self.instance.reason = cleaned.get("reason") or ""
        return cleaned


class DrugStartForm(PatientRecordForm, ConcomitantDrugForm):
    reason = _reason_field(required=False)

    class Meta(ConcomitantDrugForm.Meta):
        fields = ["name", "started_on", "stopped_on"]
        widgets = {"started_on": _date_input(), "stopped_on": _date_input()}
        labels = {"name": "Drug (generic or brand name)", "stopped_on": "Stopped on (if known)"}

    def clean(self):
        cleaned = super().clean()
        name, started = (cleaned.get("name") or "").strip(), cleaned.get("started_on")
        if (
            name
            and started
            and ConcomitantDrug.objects.filter(
                patient=self.patient,
                name__iexact=name,
                started_on=started,
                status=RecordStatus.ACTIVE,
            ).exists()
        ):
            self.add_error("name", f"value '{name}': already recorded as started on {started}")
        return cleaned


class DrugStopForm(PatientRecordForm, forms.Form):
    drug = forms.TypedChoiceField(label="Drug to stop", coerce=int)
    stopped_on = forms.DateField(label="Stopped on", widget=_date_input())
    reason = _reason_field(required=False)

    def __init__(self, *args, drugs: list[ConcomitantDrug] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.drugs = {d.pk: d for d in drugs}
        self.fields["drug"].choices = [("", "choose a drug")] + [
            (d.pk, f"{d.name} (since {d.started_on})") for d in drugs
        ]

    def clean(self):
        cleaned = super().clean()
        drug, stopped = self.drugs.get(cleaned.get("drug")), cleaned.get("stopped_on")
        if drug is not None and stopped is not None and stopped < drug.started_on:
            self.add_error("stopped_on", f"value '{stopped}': is before started_on")
        cleaned["record"] = drug
        return cleaned


class KidneyLabForm(PatientRecordForm, LabResultForm):
    reason = _reason_field(required=False)

    class Meta(LabResultForm.Meta):
        fields = ["collected_at", "test", "value", "unit"]
        widgets = {"collected_at": _datetime_input()}
        # Not "Collected at": the trough form on the same page has that label, and labels
        # should tell the two apart.
        labels = {"collected_at": "Lab sample drawn at"}
        help_texts = {"unit": "Creatinine mg/dL or umol/L; eGFR mL/min/1.73m2; UPCR g/g …"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["test"].choices = [(t.value, t.label) for t in KIDNEY_TESTS]

    def clean(self):
        cleaned = super().clean()
        test, at = cleaned.get("test"), cleaned.get("collected_at")
        if (
            test
            and at
            and LabResult.objects.filter(
                patient=self.patient, test=test, collected_at=at, status=RecordStatus.ACTIVE
            ).exists()
        ):
            self.add_error("collected_at", f"value '{at:%Y-%m-%d %H:%M}': already recorded")
        return cleaned


class TherapyEndForm(PatientRecordForm, forms.Form):
    therapy_end = forms.DateField(
        label="End of all immunosuppression",
        widget=_date_input(),
        help_text="Actual (past) or planned (future) end date.",
    )
    reason = _reason_field(required=True)

    def clean_therapy_end(self):
        end = self.cleaned_data["therapy_end"]
        start = self.patient.therapy_start
        if start and end < start:
            raise ValidationError(f"value '{end}': is before therapy_start {start}")
        return end


class FitExclusionForm(ErrorReasonForm):
    """Why a trough is left out of the PK fit, or taken back in: a reason, as for an error."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = "Reason"
