"""§9 The patient's alert list: each code from its input, stable lowercase codes, sorted."""

from datetime import date
from decimal import Decimal as D

import pytest

from monitoring import rules
from monitoring.rules import AlertInputs, DrugEvent

EVENT = DrugEvent(date(2025, 6, 1), "start", "fluconazole", rules.RAISES)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, []),
        ({"latest_range": "below"}, ["trough_below_range"]),
        ({"latest_range": "above"}, ["trough_above_range"]),
        ({"latest_range": "in_range"}, []),
        ({"latest_range": "indeterminate"}, []),
        ({"latest_range": None}, []),
        (
            {"latest_timing": "unknown", "latest_timing_reason": rules.NO_LAST_DOSE},
            ["c12h_timing_missing"],
        ),
        # only the missing last dose is the C12h-timing flag, not a missing regimen
        ({"latest_timing": "unknown", "latest_timing_reason": rules.NO_REGIMEN}, []),
        ({"latest_timing": "unknown", "latest_timing_reason": ""}, []),
        ({"latest_timing": "mistimed"}, ["sample_mistimed"]),
        ({"latest_timing": "borderline"}, []),
        ({"latest_timing": "valid"}, []),
        ({"latest_steady_state": False}, ["not_steady_state"]),
        ({"latest_steady_state": True}, []),
        ({"latest_steady_state": None}, []),
        ({"duration_code": "duration_under_36_months"}, ["duration_under_36_months"]),
        ({"duration_code": "premature_discontinuation"}, ["premature_discontinuation"]),
        ({"duration_code": "met"}, []),
        ({"duration_code": "unknown"}, []),
        ({"interaction_events": [EVENT]}, ["interaction_recheck"]),
        ({"interaction_events": []}, []),
        ({"immunosuppression_codes": {"cni_combination"}}, ["cni_combination"]),
        ({"immunosuppression_codes": {"overimmunosuppression"}}, ["overimmunosuppression"]),
        (
            {"immunosuppression_codes": {"overimmunosuppression", "cni_combination"}},
            ["cni_combination", "overimmunosuppression"],
        ),
        ({"pre_existing_ckd": True}, ["pre_existing_ckd"]),
        ({"nephrotoxicity_watch": True}, ["nephrotoxicity_watch"]),
        ({"level_overdue": True}, ["level_overdue"]),
        ({"cv_percent": D("30.01")}, ["high_variability"]),
        ({"cv_percent": D(30)}, []),  # CV > 30 %, not ≥
        ({"cv_percent": D("16.3")}, []),
        ({"cv_percent": None}, []),
        ({"cv_percent": D(25), "cv_high_percent": D(20)}, ["high_variability"]),
    ],
)
def test_each_code_from_its_input(kwargs, expected):
    assert rules.patient_alerts(AlertInputs(**kwargs)) == expected


def test_all_codes_together_sorted():
    inputs = AlertInputs(
        latest_range="above",
        latest_timing="mistimed",
        latest_steady_state=False,
        duration_code="premature_discontinuation",
        interaction_events=[EVENT],
        immunosuppression_codes={"overimmunosuppression", "cni_combination"},
        pre_existing_ckd=True,
        nephrotoxicity_watch=True,
        level_overdue=True,
        cv_percent=D(45),
    )
    result = rules.patient_alerts(inputs)
    assert result == sorted(result)
    assert result == [
        "cni_combination",
        "high_variability",
        "interaction_recheck",
        "level_overdue",
        "nephrotoxicity_watch",
        "not_steady_state",
        "overimmunosuppression",
        "pre_existing_ckd",
        "premature_discontinuation",
        "sample_mistimed",
        "trough_above_range",
    ]


def test_missing_timing_together_with_below():
    inputs = AlertInputs(
        latest_range="below", latest_timing="unknown", latest_timing_reason=rules.NO_LAST_DOSE
    )
    assert rules.patient_alerts(inputs) == ["c12h_timing_missing", "trough_below_range"]


def test_codes_are_the_stable_lowercase_codes():
    assert set(rules.ALERT_CODES) == {
        "trough_below_range",
        "trough_above_range",
        "c12h_timing_missing",
        "sample_mistimed",
        "not_steady_state",
        "duration_under_36_months",
        "premature_discontinuation",
        "interaction_recheck",
        "cni_combination",
        "overimmunosuppression",
        "pre_existing_ckd",
        "nephrotoxicity_watch",
        "level_overdue",
        "high_variability",
    }
    assert set(rules.ALERT_SEVERITY) == set(rules.ALERT_CODES)
    assert (rules.BELOW, rules.IN_RANGE, rules.ABOVE, rules.INDETERMINATE) == (
        "below",
        "in_range",
        "above",
        "indeterminate",
    )
    assert (rules.VALID, rules.BORDERLINE, rules.MISTIMED, rules.UNKNOWN) == (
        "valid",
        "borderline",
        "mistimed",
        "unknown",
    )


@pytest.mark.parametrize(
    "code, severity",
    [
        ("premature_discontinuation", "warning"),  # §5: warning
        ("duration_under_36_months", "information"),  # §5: information
        ("pre_existing_ckd", "caution"),  # §6: caution
        ("nephrotoxicity_watch", "warning"),  # §6: warning
    ],
)
def test_severity_named_in_spec(code, severity):
    assert rules.ALERT_SEVERITY[code] == severity


@pytest.mark.parametrize(
    "a, b",
    [
        (["trough_below_range", "level_overdue"], ["trough_below_range"]),
        (["trough_below_range"], ["not_steady_state", "duration_under_36_months"]),
        (["trough_below_range", "pre_existing_ckd"], ["trough_below_range"]),
    ],
)
def test_urgency_key_orders_more_urgent_first(a, b):
    assert rules.urgency_key(a) < rules.urgency_key(b)
