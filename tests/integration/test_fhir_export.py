"""FHIR R4 export of a patient's troughs (monitoring.fhir, export_fhir), validated with
fhir.resources. fhir.resources 8 ships R5 as its default and R4B as a subpackage (no plain
R4 any more); R4B's Bundle, Patient and Observation are R4's for every element used here."""

from __future__ import annotations

import io
import json
from datetime import datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from fhir.resources.R4B.bundle import Bundle

from monitoring.fhir import TROUGH_CODE, patient_bundle
from monitoring.importers import run_csv_import
from monitoring.models import Patient, TroughLevel
from monitoring.services import patients_assess, record_mark_in_error

pytestmark = pytest.mark.django_db

PATIENTS = (
    b"mrn,family_name,given_name,birth_date,sex\n"
    b"MRN-1001,Doe,Jane,1988-04-12,F\n"
    b"MRN-1002,Roe,Ann,1990-01-02,F\n"
)
LEVELS = (
    b"mrn,collected_at,value,unit,accession,status,assay\n"
    b"MRN-1001,2025-01-10T07:30,5.2,ng/mL,A-IN,final,LCMSMS\n"
    b"MRN-1001,2025-02-10T07:30,3.2,ng/mL,A-LOW,final,\n"
    b"MRN-1001,2025-03-10T07:30,7.456,ng/mL,A-HIGH,corrected,CMIA\n"
    b"MRN-1001,2025-04-10T07:30,<1.0,ng/mL,A-CENS,final,\n"
    b"MRN-1001,2025-05-10T07:30,<5.0,ng/mL,A-IND,final,\n"
    b"MRN-1001,2025-06-10T07:30,6.22,nmol/L,A-NMOL,final,\n"
    b"MRN-1001,2025-07-10T07:30,> 30,ng/mL,A-GT,preliminary,\n"
    b"MRN-1001,2025-08-10T07:30,4.4,ng/mL,A-ERR,final,\n"
    b"MRN-1002,2025-01-10T07:30,5.0,ng/mL,B-1,final,\n"
)


@pytest.fixture
def loaded():
    for kind, data in (("patients", PATIENTS), ("levels", LEVELS)):
        report = run_csv_import(kind, data)
        assert report.ok, [str(p) for p in report.problems]
    record_mark_in_error(TroughLevel.objects.get(accession="A-ERR"), reason="wrong patient")
    return Patient.objects.get(mrn="MRN-1001")


def bundle_for(patient: Patient) -> dict:
    return patient_bundle(patients_assess([patient])[0])


def observations(bundle: dict) -> dict[str, dict]:
    out = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation":
            out[resource["identifier"][0]["value"]] = resource
    return out


def test_the_bundle_validates_as_fhir_r4b(loaded):
    bundle = bundle_for(loaded)
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    assert len(parsed.entry) == 1 + 7  # the patient and every trough but the one in error
    # Plain JSON types only: the dict goes through json as is.
    assert json.loads(json.dumps(bundle)) == bundle


def test_the_patient_is_in_the_bundle_and_every_observation_refers_to_it(loaded):
    bundle = bundle_for(loaded)
    first = bundle["entry"][0]
    patient = first["resource"]
    assert patient["resourceType"] == "Patient"
    assert patient["identifier"][0]["value"] == "MRN-1001"
    assert patient["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert patient["gender"] == "female"
    assert patient["birthDate"] == "1988-04-12"
    for entry in bundle["entry"][1:]:
        assert entry["resource"]["subject"] == {"reference": first["fullUrl"]}
    full_urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    assert all(url.startswith("urn:uuid:") for url in full_urls)


def test_observation_code_value_and_interpretation(loaded):
    obs = observations(bundle_for(loaded))
    inside = obs["A-IN"]
    assert inside["code"]["coding"] == [
        {
            "system": "http://loinc.org",
            "code": TROUGH_CODE,
            "display": "Tacrolimus [Mass/volume] in Blood --trough",
        }
    ]
    assert inside["valueQuantity"] == {
        "value": 5.2,
        "unit": "ng/mL",
        "system": "http://unitsofmeasure.org",
        "code": "ng/mL",
    }
    assert inside["status"] == "final"
    assert inside["method"] == {"text": "LC-MS/MS"}

    def interpretation(resource):
        codings = [c for i in resource.get("interpretation", []) for c in i["coding"]]
        assert all(c["system"].endswith("v3-ObservationInterpretation") for c in codings)
        return [c["code"] for c in codings]

    assert interpretation(inside) == ["N"]
    assert interpretation(obs["A-LOW"]) == ["L"]
    assert interpretation(obs["A-HIGH"]) == ["H"]
    assert obs["A-HIGH"]["valueQuantity"]["value"] == 7.46  # 2 decimals of the canonical value
    assert obs["A-HIGH"]["status"] == "corrected"
    censored = obs["A-CENS"]
    assert censored["valueQuantity"]["comparator"] == "<"
    assert censored["valueQuantity"]["value"] == 1.0
    assert interpretation(censored) == ["L"]
    # <5.0 against 4-6 cannot be placed: no interpretation at all.
    assert obs["A-IND"]["valueQuantity"]["comparator"] == "<"
    assert "interpretation" not in obs["A-IND"]
    assert obs["A-NMOL"]["valueQuantity"]["value"] == 5.0  # 6.22 nmol/L
    assert obs["A-NMOL"]["valueQuantity"]["code"] == "ng/mL"
    assert obs["A-GT"]["status"] == "preliminary"
    assert obs["A-GT"]["valueQuantity"]["comparator"] == ">"
    assert "A-ERR" not in obs  # entered in error: left out
    assert "B-1" not in obs  # another patient's


def test_the_target_is_the_reference_range_never_a_lab_range(loaded):
    inside = observations(bundle_for(loaded))["A-IN"]
    [band] = inside["referenceRange"]
    assert (band["low"]["value"], band["high"]["value"]) == (4.0, 6.0)
    assert band["type"]["coding"][0]["code"] == "therapeutic"


@override_settings(TIME_ZONE="Europe/Berlin")
def test_effective_date_time_carries_the_site_offset():
    assert run_csv_import("patients", PATIENTS).ok
    assert run_csv_import("levels", LEVELS).ok
    obs = observations(bundle_for(Patient.objects.get(mrn="MRN-1001")))
    assert obs["A-IN"]["effectiveDateTime"] == "2025-01-10T07:30:00+01:00"
    assert obs["A-NMOL"]["effectiveDateTime"] == "2025-06-10T07:30:00+02:00"
    moment = datetime.fromisoformat(obs["A-IN"]["effectiveDateTime"])
    assert moment.utcoffset() is not None


def test_the_same_data_exports_the_same_full_urls(loaded):
    first, second = bundle_for(loaded), bundle_for(loaded)
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in second["entry"]]


def test_a_patient_without_troughs_is_a_bundle_with_the_patient_only():
    assert run_csv_import("patients", PATIENTS).ok
    bundle = bundle_for(Patient.objects.get(mrn="MRN-1002"))
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient"]
    Bundle.model_validate(bundle)


def test_the_export_fhir_command_writes_a_valid_bundle(loaded, tmp_path):
    path = tmp_path / "bundle.json"
    call_command("export_fhir", "MRN-1001", "--output", str(path))
    bundle = json.loads(path.read_text(encoding="utf-8"))
    Bundle.model_validate(bundle)
    assert len(observations(bundle)) == 7
    out = io.StringIO()
    call_command("export_fhir", "MRN-1001", stdout=out)
    assert json.loads(out.getvalue())["entry"][0]["resource"]["identifier"][0]["value"] == (
        "MRN-1001"
    )


def test_the_export_fhir_command_on_an_unknown_patient():
    with pytest.raises(CommandError, match="unknown patient"):
        call_command("export_fhir", "MRN-404")
