"""The model-informed forecast as stored: each patient's latest fit (``PatientForecast``,
written by ``monitoring.forecasting``, read by the pages) and the results of
``manage.py forecast_check`` (``ForecastCheckRun``). Model estimates, not clinical records:
no history is kept.

Imported by models.py, which holds the patients they belong to.
"""

from __future__ import annotations

from django.db import models

from .models import Patient


class ForecastMethod(models.TextChoices):
    MAP = "map", "Model (MAP-Bayesian, the patient's troughs)"
    POPULATION = "population", "Model (population only: no usable trough)"
    PROPORTIONAL = "proportional", "Proportional rule"
    NONE = "none", "None"


class PatientForecast(models.Model):
    """The stored model-informed forecast of a patient, refitted when a trough, a dose, a
    covariate or the model changes (never on a page view of a fresh fit). Numbers are
    floats: they are model estimates, not clinical records, and carry no history."""

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="forecast")
    stale = models.BooleanField(default=True, help_text="Records changed since the fit.")
    # Counts the marks: a background refit stores its fit only if no change was marked
    # while it was fitting (one that was keeps the row stale for its own refit task).
    change_count = models.PositiveIntegerField(default=0)
    fitted_at = models.DateTimeField(null=True, blank=True)
    method = models.CharField(max_length=12, choices=ForecastMethod.choices, default="none")
    model_id = models.CharField(max_length=40, blank=True)
    message = models.CharField(max_length=300, blank=True)
    formulation = models.CharField(max_length=3, blank=True)
    daily_dose_mg = models.FloatField(null=True, blank=True)
    doses_per_day = models.PositiveSmallIntegerField(null=True, blank=True)
    n_troughs_used = models.PositiveIntegerField(default=0)
    eta = models.JSONField(default=list, blank=True)
    covariance = models.JSONField(default=list, blank=True)
    ofv = models.FloatField(null=True, blank=True)
    cl_individual = models.FloatField(null=True, blank=True)
    cl_typical = models.FloatField(null=True, blank=True)
    predicted_trough = models.FloatField(null=True, blank=True)
    predicted_p10 = models.FloatField(null=True, blank=True)
    predicted_p90 = models.FloatField(null=True, blank=True)
    p_in_range = models.FloatField(null=True, blank=True)
    target_low = models.FloatField(null=True, blank=True)
    target_high = models.FloatField(null=True, blank=True)
    suggested_daily_dose_mg = models.FloatField(null=True, blank=True)
    options = models.JSONField(default=list, blank=True)  # candidate doses
    covariates_defaulted = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=list, blank=True)  # how the records were read
    residuals = models.JSONField(default=dict, blank=True)  # level id -> [ipred, iwres]
    curve = models.JSONField(default=dict, blank=True)  # predicted troughs over time, 80 % band

    class Meta:
        indexes = [models.Index(fields=["stale"])]

    def __str__(self) -> str:
        return f"Forecast of patient {self.patient_id} ({self.method})"


class ForecastCheckRun(models.Model):
    """The result of ``manage.py forecast_check``: how well each method predicted each
    trough from the earlier ones (no patient data: counts and percentages only)."""

    run_at = models.DateTimeField(auto_now_add=True)
    patients = models.PositiveIntegerField()
    seconds = models.FloatField()
    rows = models.JSONField(default=list)  # scope, method, n, median errors, within ±20 %

    class Meta:
        ordering = ["-run_at"]

    def __str__(self) -> str:
        return f"Forecast check of {self.run_at:%Y-%m-%d %H:%M} ({self.patients} patients)"
