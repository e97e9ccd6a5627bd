"""Review status: the latest sign-off of a patient's report (who, when) and what was
recorded after it, for the patient page, the report and the worklist."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .assessment import PatientAssessment
from .models import ReportSignoff


def person(user) -> str:
    """ "Ana Díaz (adiaz)", or the username alone when no name is recorded."""
    if user is None:
        return "unknown user"
    full = user.get_full_name().strip()
    return f"{full} ({user.get_username()})" if full else user.get_username()


def added_since(assessment: PatientAssessment, moment: datetime) -> list[str]:
    """What was recorded after a sign-off: "2 troughs", "1 regimen record", ..."""
    records = assessment.records
    counts = [
        (sum(1 for lv in records.levels if lv.created_at > moment and not lv.in_error), "trough"),
        (sum(1 for r in records.regimens if r.created_at > moment), "regimen record"),
        (sum(1 for d in records.drugs if d.created_at > moment), "drug record"),
        (sum(1 for lab in records.labs if lab.created_at > moment), "lab result"),
    ]
    return [f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts if n]


@dataclass
class ReviewStatus:
    signoff: ReportSignoff | None
    by: str = ""
    troughs_since: int = 0
    added: list[str] = field(default_factory=list)


def review_status(assessment: PatientAssessment, signoff: ReportSignoff | None) -> ReviewStatus:
    if signoff is None:
        return ReviewStatus(None)
    levels = assessment.records.levels
    return ReviewStatus(
        signoff,
        person(signoff.reviewed_by),
        sum(1 for lv in levels if lv.created_at > signoff.reviewed_at and not lv.in_error),
        added_since(assessment, signoff.reviewed_at),
    )
