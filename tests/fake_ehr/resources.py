"""FHIR resources for the Fake EHR's fixture patient (``pat-1``)."""

from __future__ import annotations

LOINC = "http://loinc.org"


def observation(
    rid: str,
    code: str,
    when: str = "2026-11-02T08:00:00+00:00",
    *,
    status: str = "final",
    patient: str = "pat-1",
    **value,
) -> dict:
    """``value`` is one of valueQuantity=…, valueString=…, dataAbsentReason=… (or nothing)."""
    resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
    }
    resource.update(value)
    return resource


def quantity(value, unit: str = "ng/mL", comparator: str | None = None) -> dict:
    q = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    if comparator:
        q["comparator"] = comparator
    return {"valueQuantity": q}


def tacrolimus_order(
    rid: str = "med-1",
    *,
    dose_mg: float = 2,
    frequency: int = 2,
    text: str = "Tacrolimus 1 mg capsule (Prograf)",
    status: str = "active",
    intent: str = "order",
    start: str = "2026-11-01T08:00:00+00:00",
) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": intent,
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": start,
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "42316",
                    "display": "tacrolimus",
                }
            ],
            "text": text,
        },
        "dosageInstruction": [
            {
                "text": f"{dose_mg} mg twice a day" if frequency == 2 else f"{dose_mg} mg daily",
                "timing": {"repeat": {"frequency": frequency, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg"}}],
            }
        ],
    }
