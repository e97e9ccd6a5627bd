"""The vocabulary every rules module shares: the stable codes of §9, ``RuleError`` and the
configurable ``Thresholds`` (docs/clinical-rules.md).

Apart from rules.py so that the rules split by section (rules_metrics.py: §7) can import
what they need without importing rules.py, which re-exports them: every caller still says
``rules.X``, and no rules module imports another in a circle. Pure like rules.py: no Django
import.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# --- stable codes (§9) -------------------------------------------------------------------

BELOW, IN_RANGE, ABOVE, INDETERMINATE = "below", "in_range", "above", "indeterminate"
VALID, BORDERLINE, MISTIMED, UNKNOWN = "valid", "borderline", "mistimed", "unknown"

TROUGH_BELOW_RANGE = "trough_below_range"
TROUGH_ABOVE_RANGE = "trough_above_range"
C12H_TIMING_MISSING = "c12h_timing_missing"
SAMPLE_MISTIMED = "sample_mistimed"
NOT_STEADY_STATE = "not_steady_state"
DURATION_UNDER_36_MONTHS = "duration_under_36_months"
PREMATURE_DISCONTINUATION = "premature_discontinuation"
INTERACTION_RECHECK = "interaction_recheck"
CNI_COMBINATION = "cni_combination"
OVERIMMUNOSUPPRESSION = "overimmunosuppression"
PRE_EXISTING_CKD = "pre_existing_ckd"
NEPHROTOXICITY_WATCH = "nephrotoxicity_watch"
LEVEL_OVERDUE = "level_overdue"
HIGH_VARIABILITY = "high_variability"

ALERT_CODES = (
    TROUGH_BELOW_RANGE,
    TROUGH_ABOVE_RANGE,
    C12H_TIMING_MISSING,
    SAMPLE_MISTIMED,
    NOT_STEADY_STATE,
    DURATION_UNDER_36_MONTHS,
    PREMATURE_DISCONTINUATION,
    INTERACTION_RECHECK,
    CNI_COMBINATION,
    OVERIMMUNOSUPPRESSION,
    PRE_EXISTING_CKD,
    NEPHROTOXICITY_WATCH,
    LEVEL_OVERDUE,
    HIGH_VARIABILITY,
)

# Severity decides the worklist order: warnings before information.
WARNING, INFORMATION, CAUTION = "warning", "information", "caution"
ALERT_SEVERITY = {
    TROUGH_BELOW_RANGE: WARNING,
    TROUGH_ABOVE_RANGE: WARNING,
    C12H_TIMING_MISSING: WARNING,
    SAMPLE_MISTIMED: WARNING,
    NOT_STEADY_STATE: INFORMATION,
    DURATION_UNDER_36_MONTHS: INFORMATION,
    PREMATURE_DISCONTINUATION: WARNING,
    INTERACTION_RECHECK: WARNING,
    CNI_COMBINATION: WARNING,
    OVERIMMUNOSUPPRESSION: WARNING,
    PRE_EXISTING_CKD: CAUTION,
    NEPHROTOXICITY_WATCH: WARNING,
    LEVEL_OVERDUE: WARNING,
    HIGH_VARIABILITY: WARNING,
}

# Duration verdicts (export column duration_flag).
DURATION_MET = "met"
DURATION_UNKNOWN = "unknown"

# Evidence tags shown in the UI.
GUIDELINE, LITERATURE, DESIGN = "G", "L", "D"


class RuleError(ValueError):
    """Bad clinical input. ``field`` and ``value`` name what was wrong, for the message."""

    def __init__(self, field: str, value: object, message: str):
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}: value '{value}': {message}")


@dataclass(frozen=True)
class Thresholds:
    """Configurable thresholds with the defaults of clinical-rules.md (tag in the comment)."""

    plausibility_ceiling_ng_ml: Decimal = Decimal("100")  # [D]
    timing_valid_hours: Decimal = Decimal("1")  # [D]
    timing_borderline_hours: Decimal = Decimal("2")  # [D]
    max_dose_to_draw_hours: Decimal = Decimal("48")  # [D]
    steady_state_hours: Decimal = Decimal("72")  # [D]
    required_months: Decimal = Decimal("36")  # [G]
    days_per_month: Decimal = Decimal("30.4375")
    creatinine_rise_percent: Decimal = Decimal("30")  # [D]
    ckd_egfr: Decimal = Decimal("60")  # [G]
    max_other_immunosuppressants: int = 2  # [G]
    interaction_recent_days: int = 14  # [D]
    metrics_window_days: int = 365  # [D]
    ttr_max_gap_days: int = 56  # [D]
    cv_high_percent: Decimal = Decimal("30")  # [L]
    cv_min_n: int = 3
    cd_fast_metaboliser: Decimal = Decimal("1.0")  # [L]
    dose_step_mg: Decimal = Decimal("0.5")
    overdue_days: int = 90  # [D]
    post_change_trough_days: int = 14  # [D]
    off_time_percent_per_hour: Decimal = Decimal("7")  # [L]
    critical_high_ng_ml: Decimal = Decimal("15")  # [D]
    critical_low_ng_ml: Decimal = Decimal("2")  # [D]


DEFAULT_THRESHOLDS = Thresholds()
