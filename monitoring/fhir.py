"""FHIR R4 export of a patient's tacrolimus troughs: a ``collection`` Bundle holding the
Patient and one laboratory Observation per trough.

Decisions:
- Entered-in-error troughs are left out (the bundle carries results, not retractions).
- ``valueQuantity.value`` is the canonical ng/mL value rounded half-up to 2 decimals, a JSON
  number (so ``5.20`` is written ``5.2``); censored results carry ``comparator`` ``<``/``>``.
- ``interpretation`` is L / N / H from the range verdict against the patient's LN target in
  force at collection (never the lab's reference range), and that target is given as a
  ``referenceRange`` of type "therapeutic". An indeterminate verdict (e.g. ``<5`` against
  4–6) gets no interpretation: v3 ``IND`` means the test itself could not be determined.
- Full URLs are ``urn:uuid`` derived from the MRN and the record's key, so a re-export of
  the same data gives the same bundle (apart from ``timestamp``).
- The dict holds only JSON types (str, float, list, dict): ``json.dumps`` and Django's
  ``JsonResponse`` write it as is.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from . import rules
from .assessment import LevelAssessment, PatientAssessment
from .models import Assay, LevelStatus, Patient, Sex

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"

TROUGH_CODE = "77348-1"
TROUGH_DISPLAY = "Tacrolimus [Mass/volume] in Blood --trough"

# A fixed namespace: the same record gets the same urn:uuid in every export.
_NAMESPACE = uuid.UUID("6c1f0b52-5d7e-4a53-9a43-2f4f3bb1f9a1")

STATUS = {
    LevelStatus.FINAL: "final",
    LevelStatus.CORRECTED: "corrected",
    LevelStatus.PRELIMINARY: "preliminary",
}
INTERPRETATIONS = {
    rules.BELOW: ("L", "Low"),
    rules.IN_RANGE: ("N", "Normal"),
    rules.ABOVE: ("H", "High"),
}
GENDER = {Sex.FEMALE: "female", Sex.MALE: "male", Sex.OTHER: "other"}


def _urn(kind: str, key: object) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{kind}/{key}')}"


def _instant(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds")


def _number(value: Decimal, places: int = 2) -> float:
    return float(rules.round_to(value, places))


def _quantity(value: Decimal) -> dict:
    return {"value": _number(value), "unit": "ng/mL", "system": UCUM, "code": "ng/mL"}


def patient_resource(patient: Patient) -> dict:
    resource = {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": IDENTIFIER_TYPE,
                            "code": "MR",
                            "display": "Medical record number",
                        }
                    ]
                },
                "value": patient.mrn,
            }
        ],
        "name": [{"family": patient.family_name, "given": [patient.given_name]}],
        "birthDate": patient.birth_date.isoformat(),
    }
    if patient.sex in GENDER:
        resource["gender"] = GENDER[patient.sex]
    return resource


def trough_observation(a: LevelAssessment, subject: str) -> dict:
    level = a.level
    quantity = _quantity(level.value_ng_ml)
    if level.comparator:
        quantity["comparator"] = level.comparator
    observation = {
        "resourceType": "Observation",
        "status": STATUS[level.status],
        "category": [
            {"coding": [{"system": CATEGORY, "code": "laboratory", "display": "Laboratory"}]}
        ],
        "code": {
            "coding": [{"system": LOINC, "code": TROUGH_CODE, "display": TROUGH_DISPLAY}],
            "text": "Tacrolimus trough",
        },
        "subject": {"reference": subject},
        "effectiveDateTime": _instant(level.collected_at),
        "valueQuantity": quantity,
        "referenceRange": [
            {
                "low": _quantity(a.target.low),
                "high": _quantity(a.target.high),
                "type": {
                    "coding": [
                        {
                            "system": RANGE_MEANING,
                            "code": "therapeutic",
                            "display": "Therapeutic Desired Level",
                        }
                    ]
                },
                "text": a.target.name,
            }
        ],
    }
    if level.accession:
        observation["identifier"] = [
            {
                "type": {
                    "coding": [
                        {"system": IDENTIFIER_TYPE, "code": "ACSN", "display": "Accession ID"}
                    ]
                },
                "value": level.accession,
            }
        ]
    if a.range in INTERPRETATIONS:
        code, display = INTERPRETATIONS[a.range]
        observation["interpretation"] = [
            {"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}
        ]
    if level.assay:
        observation["method"] = {"text": Assay(level.assay).label}
    return observation


def patient_bundle(assessment: PatientAssessment) -> dict:
    """A FHIR R4 Bundle (type collection): the Patient (identifier = MRN) and one Observation
    per trough that is not entered in error, oldest first."""
    patient = assessment.records.patient
    subject = _urn("patient", patient.mrn)
    entries = [{"fullUrl": subject, "resource": patient_resource(patient)}]
    for a in assessment.levels:
        if a.level.status == LevelStatus.ENTERED_IN_ERROR:
            continue
        entries.append(
            {
                "fullUrl": _urn("trough", f"{patient.mrn}/{a.level.pk}"),
                "resource": trough_observation(a, subject),
            }
        )
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": _instant(timezone.now()),
        "entry": entries,
    }
