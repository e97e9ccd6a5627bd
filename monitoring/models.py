"""Patients, targets, tacrolimus regimens, troughs, concomitant drugs and kidney labs.

Every clinical model keeps its history (django-simple-history). Nothing clinical is deleted:
records are marked entered-in-error with a reason. Fields named ``*_flag`` and the patient's
``alert_codes`` are computed by ``services.patient_reassess`` and stored so that lists are
fast; they are never edited by hand.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.models import HistoricalRecords

from . import followup, rules

# An MRN never begins with '-' (or '+', already outside the alphabet): a spreadsheet would
# take such a cell for a formula, and exports write MRNs as they are.
MRN_RULE = "letters, digits and '-' only, up to 32 characters, and may not begin with '-' or '+'"
MRN_VALIDATOR = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$", MRN_RULE)


class TextGuard:
    """Model mixin: no text field may hold a control character (NUL, escape, bell...), with
    a message on the field, in the admin and every ModelForm (``full_clean``). PostgreSQL
    refuses NUL and SQLite stores it; both would store the others, invisible on every page.
    Multi-line fields (TextField) may hold tabs and line breaks."""

    def clean_fields(self, exclude=None) -> None:
        errors: dict = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        for model_field in self._meta.concrete_fields:
            if model_field.name in (exclude or ()) or model_field.name in errors:
                continue
            if not isinstance(model_field, models.CharField | models.TextField):
                continue
            value = getattr(self, model_field.attname)
            if not isinstance(value, str):
                continue
            try:
                rules.check_text(
                    model_field.name, value, multiline=isinstance(model_field, models.TextField)
                )
            except rules.RuleError as exc:
                errors[model_field.name] = [f"value '{exc.value}': {exc.message}"]
        if errors:
            raise ValidationError(errors)


# The site's default target profile (clinical-rules.md §2), seeded by migration 0002.
DEFAULT_PROFILE_CODE = "ln_maintenance"
# What the history keeps of a reason (django-simple-history's change-reason column).
HISTORY_REASON_LENGTH = 100
DEFAULT_TARGET_REASON = "site default target at registration"


class EvidenceTag(models.TextChoices):
    GUIDELINE = rules.GUIDELINE, "[G] guideline"
    LITERATURE = rules.LITERATURE, "[L] literature"
    DESIGN = rules.DESIGN, "[D] design default"


class RuleSetting(TextGuard, models.Model):
    """A clinical threshold a clinic administrator can see and change (clinical-rules.md)."""

    key = models.CharField(max_length=64, unique=True)
    value = models.DecimalField(max_digits=12, decimal_places=4)
    label = models.CharField(max_length=200)
    evidence = models.CharField(max_length=1, choices=EvidenceTag.choices)
    source = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.label}: {self.value}"


class TargetProfile(TextGuard, models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    low_ng_ml = models.DecimalField(max_digits=6, decimal_places=2)
    high_ng_ml = models.DecimalField(max_digits=6, decimal_places=2)
    evidence = models.CharField(max_length=1, choices=EvidenceTag.choices)
    source = models.TextField()
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(low_ng_ml__gt=0) & Q(high_ng_ml__gt=models.F("low_ng_ml")),
                name="target_profile_band_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.low_ng_ml}–{self.high_ng_ml} ng/mL)"


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "X", "X (unspecified)"


class Cyp3a5Expresser(models.TextChoices):
    """CYP3A5 genotype as the PK models use it: an expresser (*1 carrier) clears
    tacrolimus faster."""

    YES = "yes", "Yes (expresser)"
    NO = "no", "No (non-expresser)"
    UNKNOWN = "unknown", "Unknown"


# The summary services.patients_reassess stores on each patient (not history: computed).
PATIENT_SUMMARY_FIELDS = [
    "alert_codes",
    "warning_count",
    "latest_level",
    "assessed_on",
    "next_action",
    "next_trough_due",
    "acknowledged_codes",
    "urgency_band",
    "problem_since",
]


class Patient(TextGuard, models.Model):
    mrn = models.CharField("MRN", max_length=32, unique=True, validators=[MRN_VALIDATOR])
    family_name = models.CharField(max_length=100)
    given_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=1, choices=Sex.choices)
    height_cm = models.DecimalField(
        max_digits=5,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("30"))],
        help_text="Needed for children's eGFR (bedside CKiD).",
    )
    ln_class = models.CharField("LN class", max_length=20, blank=True)
    cyp3a5_expresser = models.CharField(
        "CYP3A5 expresser",
        max_length=7,
        choices=Cyp3a5Expresser.choices,
        default=Cyp3a5Expresser.UNKNOWN,
        help_text="Used by the PK models; unknown: the model's default is used.",
    )
    pk_model = models.CharField(
        "PK model",
        max_length=40,
        blank=True,
        help_text="Model for the forecast, among the shipped models that cover the regimen's "
        "formulation; empty: the site default.",
    )
    active = models.BooleanField(default=True, help_text="Archived patients leave the worklist.")
    therapy_start = models.DateField(
        null=True,
        blank=True,
        help_text="Start of initial (induction) immunosuppression: the 36-month clock.",
    )
    therapy_end = models.DateField(
        null=True, blank=True, help_text="Actual or planned end of all immunosuppression."
    )
    anchor_date = models.DateField(
        null=True,
        blank=True,
        help_text="Another anchor for the 36-month clock (e.g. complete response).",
    )
    anchor_reason = models.CharField(max_length=200, blank=True)

    # Computed by services.patient_reassess; read by the worklist.
    alert_codes = models.CharField(max_length=400, blank=True, editable=False)
    warning_count = models.PositiveSmallIntegerField(default=0, editable=False)
    latest_level = models.ForeignKey(
        "TroughLevel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    assessed_on = models.DateField(null=True, blank=True, editable=False)
    next_action = models.CharField(max_length=200, blank=True, editable=False)
    next_trough_due = models.DateField(null=True, blank=True, editable=False)
    # Alerts reviewed since the last new data (AlertAcknowledgement): shown, not ranked.
    acknowledged_codes = models.CharField(max_length=400, blank=True, editable=False)
    # The worklist's order (followup.urgency_band), then the oldest problem first.
    urgency_band = models.PositiveSmallIntegerField(default=followup.BAND_NONE, editable=False)
    problem_since = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords(excluded_fields=PATIENT_SUMMARY_FIELDS)

    class Meta:
        ordering = ["mrn"]
        indexes = [
            models.Index(fields=["active", "-warning_count"]),
            models.Index(fields=["active", "next_trough_due"], name="patient_active_next_due"),
            models.Index(
                fields=["active", "urgency_band", "problem_since"], name="patient_active_urgency"
            ),
        ]
        permissions = [
            # The web upload page (CSV and HL7 files): granted to data_entry (migration 0004).
            ("import_data", "Can import data files"),
            # Dose changes, target phases and alert reviews on the patient page: a
            # prescriber's decision, granted to clinicians (migration 0017), not to data entry.
            ("record_clinical_decision", "Can record dose changes, targets and alert reviews"),
            # The contract exports as downloads: every patient's data leaves the site, so its
            # own permission, granted to data_entry (migration 0014) and per account by an admin.
            ("export_data", "Can download the contract exports (levels, patients)"),
        ]

    def __str__(self) -> str:
        return f"{self.mrn} {self.family_name}, {self.given_name}"

    def save(self, *args, **kwargs) -> None:
        """A new patient gets a target assignment from the start of their record (the
        birth date), so every trough has a target in force and a later first phase only
        judges the troughs after it. The importer names the file's profile in
        ``initial_target_profile``; otherwise the site's default profile applies."""
        adding = self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            if adding:
                self._assign_initial_target()

    def _assign_initial_target(self) -> None:
        profile = getattr(self, "initial_target_profile", None)
        if profile is None:
            profile = TargetProfile.objects.filter(code=DEFAULT_PROFILE_CODE).first()
        if profile is None:  # reference data wiped: the judging falls back to the default
            return
        assignment = TargetAssignment(
            patient=self,
            profile=profile,
            # to_python: a date given as text (``create(birth_date="1990-01-02")``) is valid
            effective_from=record_start(
                self._meta.get_field("birth_date").to_python(self.birth_date)
            ),
        )
        assignment._change_reason = DEFAULT_TARGET_REASON
        user = getattr(self, "_history_user", None)
        if user is not None:
            assignment._history_user = user
        assignment.save()

    @property
    def alerts(self) -> list[str]:
        return [code for code in self.alert_codes.split(";") if code]

    @property
    def clock_anchor(self):
        return self.anchor_date or self.therapy_start

    def clean(self) -> None:
        errors = {}
        today = timezone.localdate()
        if self.birth_date and self.birth_date > today:
            errors["birth_date"] = f"value '{self.birth_date}': is in the future"
        if self.therapy_start and self.therapy_end and self.therapy_end < self.therapy_start:
            errors["therapy_end"] = f"value '{self.therapy_end}': is before therapy_start"
        if self.anchor_date and not self.anchor_reason.strip():
            errors["anchor_reason"] = "a reason is required when another anchor date is set"
        if errors:
            raise ValidationError(errors)


def record_start(birth_date) -> datetime:
    """Local midnight of the birth date: the earliest instant a patient's record covers."""
    return timezone.make_aware(datetime.combine(birth_date, time.min))


class TargetAssignment(TextGuard, models.Model):
    """Which target applies from when. An individualised band needs a reason."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="targets")
    profile = models.ForeignKey(TargetProfile, on_delete=models.PROTECT)
    effective_from = models.DateTimeField()
    low_override = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    high_override = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "effective_from"]
        # A target band is a clinical decision, like a sign-off: its own permission, held by
        # the clinician group, not by whoever may key in records.
        permissions = [("set_target", "Set target bands and individualised targets")]

    def __str__(self) -> str:
        return f"{self.profile.name} from {self.effective_from:%Y-%m-%d}"

    @property
    def low(self) -> Decimal:
        return self.low_override if self.low_override is not None else self.profile.low_ng_ml

    @property
    def high(self) -> Decimal:
        return self.high_override if self.high_override is not None else self.profile.high_ng_ml

    @property
    def individualised(self) -> bool:
        return self.low_override is not None or self.high_override is not None

    def clean(self) -> None:
        if self.individualised and not self.reason.strip():
            raise ValidationError({"reason": "an individualised target needs a reason"})
        if self.individualised and self.low >= self.high:
            raise ValidationError(
                {"high_override": f"value '{self.high}': must be above the low bound {self.low}"}
            )


class RecordStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ENTERED_IN_ERROR = "entered_in_error", "Entered in error"


class Source(models.TextChoices):
    MANUAL = "manual", "Manual entry"
    CSV = "csv", "CSV import"
    HL7 = "hl7", "HL7 interface"
    FHIR = "fhir", "EHR (SMART on FHIR)"


class ClinicalRecord(TextGuard, models.Model):
    """Shared fields of the per-patient records: who entered them, and error marking."""

    source = models.CharField(max_length=8, choices=Source.choices, default=Source.MANUAL)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    error_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        abstract = True


class Formulation(models.TextChoices):
    IR = "IR", "IR (Prograf and generics)"
    ER = "ER", "ER (Advagraf / Astagraf XL)"
    LCP = "LCP", "LCP (Envarsus)"


class Frequency(models.TextChoices):
    BID = "BID", "Twice daily (BID)"
    QD = "QD", "Once daily (QD)"


class Regimen(ClinicalRecord):
    """A tacrolimus dose record; it is in force from ``effective_at`` until the next one."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="regimens")
    effective_at = models.DateTimeField()
    formulation = models.CharField(max_length=3, choices=Formulation.choices)
    frequency = models.CharField(max_length=3, choices=Frequency.choices)
    daily_dose_mg = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Total mg per day; 0 records that tacrolimus was stopped.",
    )
    sampling_hours = models.DecimalField(
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        help_text="Expected sampling time after the dose; empty: 12 for BID, 24 for QD.",
    )
    # Stored as entered; empty means the frequency's defaults, applied on read
    # (``clock_times``), so a regimen without times follows a corrected frequency.
    dose_times = models.CharField(
        max_length=40,
        blank=True,
        help_text="Local dosing clock times, ';'-separated, e.g. 08:00;20:00. "
        "Empty: 08:00 and 20:00 for BID, 08:00 for QD.",
    )
    note = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=16, choices=RecordStatus.choices, default=RecordStatus.ACTIVE
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "effective_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(daily_dose_mg__gte=0), name="regimen_dose_not_negative"
            ),
            # The import key (data-formats.md): two imports racing cannot both add it.
            models.UniqueConstraint(
                fields=["patient", "effective_at"],
                condition=Q(status="active"),
                name="regimen_unique_active_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.daily_dose_mg} mg/day {self.formulation} {self.frequency}"

    @property
    def clock_times(self) -> tuple[str, ...]:
        """The dosing clock times in force: the stored ones, or the frequency's defaults."""
        return rules.parse_dose_times(self.dose_times, self.frequency)

    @property
    def nominal_hours(self) -> Decimal:
        if self.sampling_hours:
            return self.sampling_hours
        return rules.default_sampling_hours(self.frequency)


class Assay(models.TextChoices):
    LCMSMS = "LCMSMS", "LC-MS/MS"
    CMIA = "CMIA", "CMIA"
    ECLIA = "ECLIA", "ECLIA"
    EMIT = "EMIT", "EMIT"
    QMS = "QMS", "QMS"
    OTHER = "OTHER", "Other / unknown"


class LevelStatus(models.TextChoices):
    FINAL = "final", "Final"
    CORRECTED = "corrected", "Corrected"
    PRELIMINARY = "preliminary", "Preliminary"
    ENTERED_IN_ERROR = "entered_in_error", "Entered in error"


# The flags services.patients_reassess computes and stores on each trough.
LEVEL_COMPUTED_FIELDS = [
    "target_low",
    "target_high",
    "range_flag",
    "timing_flag",
    "timing_reason",
    "hours_post_dose",
    "steady_state",
]


class TroughLevel(ClinicalRecord):
    patient = models.ForeignKey(
        Patient,
        on_delete=models.PROTECT,
        related_name="levels",
        # Meta.indexes leads with the patient: a second index of it alone only costs writes.
        db_index=False,
    )
    collected_at = models.DateTimeField()
    last_dose_at = models.DateTimeField(null=True, blank=True)
    reported_value = models.CharField(max_length=20, help_text="Exactly as reported.")
    reported_unit = models.CharField(max_length=12, help_text="Exactly as reported.")
    comparator = models.CharField(max_length=1, blank=True, editable=False)
    value_ng_ml = models.DecimalField(max_digits=14, decimal_places=7, editable=False)
    assay = models.CharField(max_length=8, choices=Assay.choices, blank=True, default="")
    accession = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=LevelStatus.choices, default=LevelStatus.FINAL)
    # A trough the model cannot explain (often a wrong time or a missed dose) may be left out
    # of the PK fit by a clinician; it stays on the chart and in every table.
    fit_excluded_reason = models.CharField(
        "excluded from the PK fit because", max_length=300, blank=True
    )

    # Computed by services.patient_reassess.
    target_low = models.DecimalField(max_digits=6, decimal_places=2, null=True, editable=False)
    target_high = models.DecimalField(max_digits=6, decimal_places=2, null=True, editable=False)
    range_flag = models.CharField(max_length=16, blank=True, editable=False)
    timing_flag = models.CharField(max_length=16, blank=True, editable=False)
    timing_reason = models.CharField(max_length=60, blank=True, editable=False)
    hours_post_dose = models.DecimalField(max_digits=8, decimal_places=3, null=True, editable=False)
    steady_state = models.BooleanField(default=True, editable=False)

    # Computed flags are not history: they follow the records they are computed from.
    history = HistoricalRecords(excluded_fields=LEVEL_COMPUTED_FIELDS)

    class Meta:
        ordering = ["patient", "collected_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "accession"],
                condition=~Q(accession=""),
                name="level_accession_unique_per_patient",
            ),
            models.CheckConstraint(condition=Q(value_ng_ml__gt=0), name="level_value_positive"),
            # Without an accession the import key is (patient, collected_at, value); a result
            # marked entered-in-error no longer blocks a corrected entry.
            models.UniqueConstraint(
                fields=["patient", "collected_at", "comparator", "value_ng_ml"],
                condition=Q(accession="") & ~Q(status="entered_in_error"),
                name="level_unique_without_accession",
            ),
        ]
        indexes = [models.Index(fields=["patient", "-collected_at"])]

    def __str__(self) -> str:
        return f"{self.comparator}{self.reported_value} {self.reported_unit} at {self.collected_at}"

    @property
    def in_error(self) -> bool:
        return self.status == LevelStatus.ENTERED_IN_ERROR

    @property
    def counts_for_flags(self) -> bool:
        """Preliminary and entered-in-error results never drive alerts or metrics."""
        return self.status in (LevelStatus.FINAL, LevelStatus.CORRECTED)

    @property
    def value_nmol_l(self) -> Decimal:
        return rules.ng_ml_to_nmol_l(self.value_ng_ml)


class InteractionDirection(models.TextChoices):
    RAISES = rules.RAISES, "Raises tacrolimus levels"
    LOWERS = rules.LOWERS, "Lowers tacrolimus levels"
    NONE = "none", "No level interaction"


class Strength(models.TextChoices):
    STRONG = "strong", "Strong"
    MODERATE = "moderate", "Moderate"
    WEAK = "weak", "Weak"
    NONE = "", "—"


class DrugCatalogEntry(TextGuard, models.Model):
    """The interaction and immunosuppressant catalogue (clinical-rules.md §6)."""

    name = models.CharField("generic name", max_length=80, unique=True)
    brand_names = models.CharField(
        max_length=300, blank=True, help_text="Comma-separated brand and other names."
    )
    interaction = models.CharField(
        max_length=8, choices=InteractionDirection.choices, default=InteractionDirection.NONE
    )
    strength = models.CharField(max_length=8, choices=Strength.choices, blank=True)
    immunosuppressant = models.BooleanField(
        default=False, help_text="Counts toward over-immunosuppression."
    )
    calcineurin_inhibitor = models.BooleanField(default=False)
    source = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "drug catalogue"

    def __str__(self) -> str:
        return self.name

    def names(self) -> list[str]:
        return [self.name.lower()] + [
            n.strip().lower() for n in self.brand_names.split(",") if n.strip()
        ]


class ConcomitantDrug(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="drugs")
    name = models.CharField(max_length=120)
    catalog = models.ForeignKey(
        DrugCatalogEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Matched from the name against the catalogue.",
    )
    started_on = models.DateField()
    stopped_on = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=RecordStatus.choices, default=RecordStatus.ACTIVE
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "started_on", "name"]
        constraints = [
            models.UniqueConstraint(
                "patient",
                Lower("name"),
                "started_on",
                condition=Q(status="active"),
                name="drug_unique_active_start",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.started_on and self.stopped_on and self.stopped_on < self.started_on:
            raise ValidationError(
                {"stopped_on": f"value '{self.stopped_on}': is before started_on"}
            )


class LabTest(models.TextChoices):
    CREATININE = "creatinine", "Creatinine"
    EGFR = "egfr", "eGFR"
    UPCR = "upcr", "UPCR"
    POTASSIUM = "potassium", "Potassium"
    MAGNESIUM = "magnesium", "Magnesium"
    C3 = "c3", "C3"
    C4 = "c4", "C4"
    ANTI_DSDNA = "anti_dsdna", "Anti-dsDNA"
    # Covariates of the tacrolimus PK models.
    HCT = "hct", "Hematocrit"
    WEIGHT = "weight", "Body weight"


class LabResult(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="labs")
    collected_at = models.DateTimeField()
    test = models.CharField(max_length=12, choices=LabTest.choices)
    value = models.DecimalField(max_digits=12, decimal_places=4)
    unit = models.CharField(max_length=20)
    accession = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=RecordStatus.choices, default=RecordStatus.ACTIVE
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "collected_at"]
        indexes = [models.Index(fields=["patient", "test", "collected_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "test", "collected_at"],
                condition=Q(status="active"),
                name="lab_unique_active_result",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_test_display()} {self.value} {self.unit}"


class ReportSignoff(TextGuard, models.Model):
    """The clinician's interpretation of a patient's printed TDM report, and who signed it
    off when. One per patient: signing off again replaces the text and the
    reviewer, and every earlier version stays in the history."""

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="report_signoff")
    interpretation = models.TextField(max_length=4000)
    # PROTECT: the account of someone who signed a clinical document is deactivated, never
    # deleted, so the report can still name them.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField()

    history = HistoricalRecords()

    class Meta:
        verbose_name = "report sign-off"
        # Granted to the clinician group (migration 0005); viewers read and print only.
        permissions = [("sign_off_report", "Can sign off TDM reports")]

    def __str__(self) -> str:
        return f"Sign-off of patient {self.patient_id} at {self.reviewed_at}"


class AlertAcknowledgement(TextGuard, models.Model):
    """A clinician's review of one alert ("dose reviewed", "interaction reviewed"...). It
    holds while the patient's data stay as they were when it was made (``data_mark``,
    ``assessment.data_mark``): the alert stays shown, marked reviewed, but no longer drives
    the next action or the worklist rank until a new trough, dose or drug change."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="acknowledgements")
    code = models.CharField(max_length=40)
    note = models.CharField(max_length=300, blank=True)
    data_mark = models.CharField(max_length=64, editable=False)
    # PROTECT: a clinical review names its author; accounts are deactivated, not deleted.
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "acknowledged_at"]
        indexes = [models.Index(fields=["patient", "code"])]

    def __str__(self) -> str:
        return f"{self.code} reviewed for patient {self.patient_id} at {self.acknowledged_at}"


# Modules of their own, to keep this one about clinical records (and under its size limit);
# imported so Django finds their models and ``from .models import ...`` keeps working:
# access (the read trail, interface tokens), forecasts (stored fits and checks) and
# background work (import jobs, the daily re-judge's claims).
from .models_access import AccessLog, InterfaceToken  # noqa: E402, F401
from .models_forecast import ForecastCheckRun, ForecastMethod, PatientForecast  # noqa: E402, F401
from .models_jobs import ImportJob, JobStatus  # noqa: E402, F401
from .models_schedule import DailyRun  # noqa: E402, F401
