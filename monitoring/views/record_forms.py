"""The patient page's record forms: which forms there are, who may use each, and how each
is built (unbound for the page, bound when a submission comes back with errors).

Kept apart from the views (``views.records``) so the patient page can list the forms
without importing the views that import it."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.urls import reverse
from django.utils import timezone

from ..assessment import PatientAssessment
from ..forms import (
    DrugStartForm,
    DrugStopForm,
    KidneyLabForm,
    RegimenChangeForm,
    TargetPhaseForm,
    TherapyEndForm,
)
from ..models import Patient, RecordStatus

DECISION = "monitoring.record_clinical_decision"


@dataclass(frozen=True)
class RecordKind:
    kind: str
    url_name: str
    title: str
    button: str
    perms: tuple[str, ...]
    form_class: type[forms.BaseForm]


KINDS: dict[str, RecordKind] = {
    k.kind: k
    for k in (
        RecordKind(
            "regimen",
            "monitoring:regimen_add",
            "Record a dose or formulation change",
            "Record the change",
            (DECISION,),
            RegimenChangeForm,
        ),
        RecordKind(
            "target",
            "monitoring:target_add",
            "Set a target phase or an individualised target",
            "Set the target",
            (DECISION, "monitoring.set_target"),  # targets: a clinician's decision twice over
            TargetPhaseForm,
        ),
        RecordKind(
            "drug_start",
            "monitoring:drug_start",
            "Record a concomitant drug start",
            "Record the start",
            ("monitoring.add_concomitantdrug",),
            DrugStartForm,
        ),
        RecordKind(
            "drug_stop",
            "monitoring:drug_stop",
            "Record a concomitant drug stop",
            "Record the stop",
            ("monitoring.change_concomitantdrug",),
            DrugStopForm,
        ),
        RecordKind(
            "lab",
            "monitoring:lab_add",
            "Record a kidney lab result",
            "Record the result",
            ("monitoring.add_labresult",),
            KidneyLabForm,
        ),
        RecordKind(
            "therapy_end",
            "monitoring:therapy_end",
            "Record the end of immunosuppression (actual or planned)",
            "Record the end date",
            ("monitoring.change_patient",),
            TherapyEndForm,
        ),
    )
}


@dataclass
class RecordFormView:
    spec: RecordKind
    form: forms.BaseForm
    url: str

    @property
    def kind(self) -> str:
        return self.spec.kind


def stoppable_drugs(assessment: PatientAssessment | None, patient: Patient) -> list:
    """Active records without a stop date: those a stop can be recorded for."""
    drugs = assessment.records.drugs if assessment else patient.drugs.all()
    return [d for d in drugs if d.status == RecordStatus.ACTIVE and d.stopped_on is None]


def build_form(
    spec: RecordKind,
    patient: Patient,
    *,
    data=None,
    assessment: PatientAssessment | None = None,
) -> forms.BaseForm:
    kwargs: dict = {"patient": patient, "auto_id": f"{spec.kind}_%s"}
    if spec.kind == "drug_stop":
        kwargs["drugs"] = stoppable_drugs(assessment, patient)
    if data is None:
        if spec.kind == "regimen":
            # Most changes are recorded as they are made: now, in the current formulation.
            kwargs["initial"] = {
                "effective_at": timezone.localtime().replace(second=0, microsecond=0)
            }
            if assessment and assessment.current_regimen:
                current = assessment.current_regimen
                kwargs["initial"] |= {
                    "formulation": current.formulation,
                    "frequency": current.frequency,
                }
        if spec.kind == "therapy_end" and patient.therapy_end:
            kwargs["initial"] = {"therapy_end": patient.therapy_end}
        return spec.form_class(**kwargs)
    return spec.form_class(data, **kwargs)


def record_forms(
    user,
    patient: Patient,
    assessment: PatientAssessment,
    bound: RecordFormView | None = None,
) -> list[RecordFormView]:
    """The forms this user may use, in page order; ``bound`` replaces its kind's form."""
    shown = []
    for spec in KINDS.values():
        if not user.has_perms(spec.perms):
            continue
        if bound is not None and bound.kind == spec.kind:
            shown.append(bound)
            continue
        url = reverse(spec.url_name, args=[patient.pk])
        shown.append(RecordFormView(spec, build_form(spec, patient, assessment=assessment), url))
    return shown
