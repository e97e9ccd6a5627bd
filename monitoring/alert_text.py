"""Words for the alert codes: a label, a one-line explanation, the evidence tag and the next
action. Pages, the worklist and the printed report all read them from here."""

from __future__ import annotations

from dataclasses import dataclass

from . import followup, rules


@dataclass(frozen=True)
class AlertText:
    code: str
    label: str
    explanation: str
    evidence: str  # G, L or D (clinical-rules.md)
    action: str
    severity: str

    @property
    def evidence_label(self) -> str:
        return {"G": "[G] guideline", "L": "[L] literature", "D": "[D] design default"}[
            self.evidence
        ]


_TEXTS = [
    (
        rules.TROUGH_BELOW_RANGE,
        "Trough below range",
        "The latest trough is below the target band.",
        "G",
        "review dose",
    ),
    (
        rules.TROUGH_ABOVE_RANGE,
        "Trough above range",
        "The latest trough is above the target band.",
        "G",
        "review dose",
    ),
    (
        rules.C12H_TIMING_MISSING,
        "C12h timing missing",
        "No last-dose time is recorded for the latest trough, so it cannot be judged a true "
        "trough.",
        "G",
        "add last-dose time",
    ),
    (
        rules.SAMPLE_MISTIMED,
        "Sample mistimed",
        "The latest trough was drawn more than 2 h from the end of the dosing interval; early "
        "draws read high, late draws read low.",
        "D",
        "re-check trough",
    ),
    (
        rules.NOT_STEADY_STATE,
        "Not at steady state",
        "The latest trough was drawn less than 72 h after a dose change, formulation switch or "
        "interacting-drug change.",
        "D",
        "re-check trough",
    ),
    (
        rules.DURATION_UNDER_36_MONTHS,
        "Under 36 months",
        "Total immunosuppression is still short of the recommended 36 months.",
        "G",
        "continue therapy",
    ),
    (
        rules.PREMATURE_DISCONTINUATION,
        "Premature discontinuation",
        "The recorded or planned end of immunosuppression comes before 36 months.",
        "G",
        "review planned stop",
    ),
    (
        rules.INTERACTION_RECHECK,
        "Interaction: re-check",
        "An interacting drug was started or stopped recently or since the last trough.",
        "G",
        "re-check trough",
    ),
    (
        rules.CNI_COMBINATION,
        "Two calcineurin inhibitors",
        "A second calcineurin inhibitor (ciclosporin or voclosporin) is active alongside "
        "tacrolimus.",
        "G",
        "review combination",
    ),
    (
        rules.OVERIMMUNOSUPPRESSION,
        "Over-immunosuppression",
        "More than two other immunosuppressants are active alongside tacrolimus.",
        "G",
        "review immunosuppression",
    ),
    (
        rules.PRE_EXISTING_CKD,
        "Pre-existing CKD",
        "Baseline eGFR was below 60 before tacrolimus started.",
        "G",
        "monitor kidney function",
    ),
    (
        rules.NEPHROTOXICITY_WATCH,
        "Nephrotoxicity watch",
        "Creatinine has risen 30 % or more over the pre-tacrolimus baseline.",
        "D",
        "review kidney function",
    ),
    (
        rules.LEVEL_OVERDUE,
        "Trough overdue",
        "No trough in the last 90 days, or none after a recent change.",
        "D",
        "re-check trough",
    ),
    (
        rules.HIGH_VARIABILITY,
        "High variability",
        "Intra-patient variability (CV) of qualifying troughs is above 30 %.",
        "L",
        "review adherence and interactions",
    ),
]

ALERTS: dict[str, AlertText] = {
    code: AlertText(code, label, explanation, evidence, action, rules.ALERT_SEVERITY[code])
    for code, label, explanation, evidence, action in _TEXTS
}

# Which alert decides the worklist's "next action" when several apply.
ACTION_PRIORITY = [
    rules.C12H_TIMING_MISSING,
    rules.TROUGH_ABOVE_RANGE,
    rules.TROUGH_BELOW_RANGE,
    rules.CNI_COMBINATION,
    rules.INTERACTION_RECHECK,
    rules.SAMPLE_MISTIMED,
    rules.NOT_STEADY_STATE,
    rules.LEVEL_OVERDUE,
    rules.NEPHROTOXICITY_WATCH,
    rules.OVERIMMUNOSUPPRESSION,
    rules.PREMATURE_DISCONTINUATION,
    rules.HIGH_VARIABILITY,
    rules.PRE_EXISTING_CKD,
    rules.DURATION_UNDER_36_MONTHS,
]


def alert_texts(codes: list[str]) -> list[AlertText]:
    """Warnings first, then the rest, each group in action priority."""
    order = {code: i for i, code in enumerate(ACTION_PRIORITY)}
    severity_rank = {rules.WARNING: 0, rules.CAUTION: 1, rules.INFORMATION: 2}
    known = [ALERTS[c] for c in codes if c in ALERTS]
    return sorted(known, key=lambda a: (severity_rank[a.severity], order[a.code]))


def next_action(codes: list[str]) -> str:
    """The action of the first alert in priority order: for a list of codes alone (the
    stored summaries carry the full next action, ``action_text``)."""
    for code in ACTION_PRIORITY:
        if code in codes:
            return ALERTS[code].action
    return "no action"


def _expect(direction: str | None) -> str:
    return f" (expect the level to {direction})" if direction else ""


def action_text(action: followup.NextAction) -> str:
    """The next action in words: "re-check trough at steady state, due by 2026-12-20"."""
    due = f", due by {action.due:%Y-%m-%d}" if action.due else ""
    if action.code == followup.ACTION_ADD_LAST_DOSE:
        return "add last-dose time"
    if action.code == followup.ACTION_RECHECK_AFTER_CHANGE:
        return f"re-check trough at steady state{_expect(action.direction)}{due}"
    if action.code == followup.ACTION_REPEAT_SENSITIVE_ASSAY:
        return "repeat the trough with a more sensitive assay (result censored inside the band)"
    if action.code == followup.ACTION_RECHECK_TIMED:
        return "re-check a correctly timed trough"
    if action.code == followup.ACTION_RECHECK_STEADY:
        timed = " correctly timed" if action.timed else ""
        return f"re-check a{timed} trough at steady state".replace("a trough", "trough")
    if action.code == followup.ACTION_REVIEW_DOSE:
        return "review dose"
    if action.code == followup.ACTION_RECHECK_INTERACTION:
        return f"re-check trough{_expect(action.direction)}{due}"
    if action.code == followup.ACTION_ALERT and action.alert in ALERTS:
        text = ALERTS[action.alert].action
        if action.alert == rules.LEVEL_OVERDUE and action.due:
            text += f" (due {action.due:%Y-%m-%d})"
        return text
    return "no action"


# What a clinician's review of an alert is called (the button and the record). A missing
# last-dose time is answered by recording it, not by a review, so it has none.
ACK_LABELS = {
    rules.TROUGH_BELOW_RANGE: "dose reviewed",
    rules.TROUGH_ABOVE_RANGE: "dose reviewed",
    rules.SAMPLE_MISTIMED: "timing reviewed",
    rules.NOT_STEADY_STATE: "steady state reviewed",
    rules.DURATION_UNDER_36_MONTHS: "duration reviewed",
    rules.PREMATURE_DISCONTINUATION: "planned stop reviewed",
    rules.INTERACTION_RECHECK: "interaction reviewed",
    rules.CNI_COMBINATION: "combination reviewed",
    rules.OVERIMMUNOSUPPRESSION: "immunosuppression reviewed",
    rules.PRE_EXISTING_CKD: "kidney function reviewed",
    rules.NEPHROTOXICITY_WATCH: "kidney function reviewed",
    rules.LEVEL_OVERDUE: "recall arranged",
    rules.HIGH_VARIABILITY: "variability reviewed",
}
