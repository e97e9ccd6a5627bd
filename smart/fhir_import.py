"""Bringing the launched patient's results and tacrolimus orders in from the EHR's FHIR API.

Observations become importer rows and go through the CSV/HL7 importers (same validation,
same supersede-by-correction rules); the idempotency key is the server + resource type + id
+ versionId (``ImportedResource``). MedicationRequests become ``RegimenProposal``s: an order
is not a dose taken, so a clinician confirms each. A preview is the same run rolled back."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import DatabaseError, transaction
from django.utils import timezone

from monitoring import config, rules, validation
from monitoring.importers.kinds import (
    CREATED,
    UNCHANGED,
    UPDATED,
    Context,
    LabImporter,
    LevelImporter,
    RowErrors,
)
from monitoring.models import LabTest, Patient, Source
from monitoring.services import patients_reassess

from .errors import SmartError
from .models import ImportedResource, RegimenProposal, SmartLaunch
from .services import read

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TACROLIMUS_RXNORM = "42316"  # the ingredient
TROUGH_LOINC = ("77348-1", "11253-2")
# LOINC → lab test. Hematocrit and body weight only where this site has those lab tests.
_LAB_CANDIDATES = {"2160-0": "creatinine", "98979-8": "egfr", "4544-3": "hct", "29463-7": "weight"}
LAB_LOINC = {code: test for code, test in _LAB_CANDIDATES.items() if test in LabTest.values}
SKIPPED_LOINC = {code: test for code, test in _LAB_CANDIDATES.items() if code not in LAB_LOINC}
STATUS = {
    "final": "final",
    "amended": "corrected",
    "corrected": "corrected",
    "preliminary": "preliminary",
}
TACROLIMUS_WORDS = ("tacrolimus", "prograf", "advagraf", "astagraf", "envarsus", "adoport")
MAX_PAGES = 20
_UCUM_ANNOTATION = re.compile(r"\{[^}]*\}")
_VALUE_STRING = re.compile(r"^\s*(<=|>=|<|>)?\s*([0-9]+(?:[.,][0-9]+)?)\s*(\S+)?\s*$")


@dataclass
class Item:
    """One resource as the preview lists it: what it is and what importing does with it."""

    kind: str  # "level", "lab", "order"
    resource: str  # "Observation/abc (version 2)"
    summary: str
    action: str = ""


@dataclass
class ImportReport:
    items: list[Item] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    written: bool = False
    fingerprint: str = ""

    @property
    def counts(self) -> Counter:
        return Counter(i.action for i in self.items)

    @property
    def new_items(self) -> list[Item]:
        return [i for i in self.items if i.action in (CREATED, UPDATED, "proposed")]


class _Rollback(Exception):
    pass


# --- reading -------------------------------------------------------------------------------


def _search(launch: SmartLaunch, resource_type: str, params: dict) -> list[dict]:
    """Every resource of a search, following ``next`` links on the same server."""
    resources: list[dict] = []
    bundle = read(launch, resource_type, params)
    for _page in range(MAX_PAGES):
        if bundle.get("resourceType") != "Bundle":
            raise SmartError("ehr_garbage", "The EHR's search answer is not a Bundle.", status=502)
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise SmartError("ehr_garbage", "The EHR's search answer is malformed.", status=502)
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                raise SmartError("ehr_garbage", "The EHR's search answer is malformed.", status=502)
            if (entry.get("search") or {}).get("mode", "match") != "match":
                continue  # included resources, OperationOutcomes
            resources.append(resource)
        next_url = next(
            (
                link.get("url")
                for link in bundle.get("link") or []
                if isinstance(link, dict) and link.get("relation") == "next"
            ),
            None,
        )
        base = launch.server.base_url + "/"
        if not next_url or not isinstance(next_url, str) or not next_url.startswith(base):
            return resources
        bundle = read(launch, next_url[len(base) :])
    raise SmartError("ehr_too_large", "The EHR's answer has too many pages.", status=502)


def fetch(launch: SmartLaunch) -> tuple[list[dict], list[dict]]:
    codes = [*TROUGH_LOINC, *LAB_LOINC]
    observations = _search(
        launch,
        "Observation",
        {"patient": launch.ehr_patient_id, "code": ",".join(f"{LOINC}|{c}" for c in codes)},
    )
    orders = _search(
        launch, "MedicationRequest", {"patient": launch.ehr_patient_id, "intent": "order,plan"}
    )
    for resource, expected in [(o, "Observation") for o in observations] + [
        (m, "MedicationRequest") for m in orders
    ]:
        if resource.get("resourceType") != expected:
            raise SmartError(
                "ehr_garbage",
                f"The EHR answered a search for {expected} with something else.",
                status=502,
            )
        if not _about(launch, resource):
            raise SmartError(
                "other_patient",
                "The EHR returned a record of another patient: nothing was imported.",
                status=502,
            )
    return observations, orders


def _about(launch: SmartLaunch, resource: dict) -> bool:
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str):
        return False
    wanted = f"Patient/{launch.ehr_patient_id}"
    return reference in (wanted, f"{launch.server.base_url}/{wanted}")


# --- mapping -------------------------------------------------------------------------------


def _label(resource: dict) -> str:
    version = (resource.get("meta") or {}).get("versionId") or ""
    text = f"{resource.get('resourceType')}/{resource.get('id')}"
    return f"{text} (version {version})" if version else text


def _codes(concept: object, system: str) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {
        str(c.get("code"))
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("system") == system
    }


def accession_for(launch: SmartLaunch, resource_id: str) -> str:
    """The stored accession of an EHR result: stable across versions, so a new version finds
    and supersedes the old; hashed when the FHIR id is too long for the column."""
    text = f"ehr{launch.server_id}:{resource_id}"
    if len(text) <= 64:
        return text
    return f"ehr{launch.server_id}:" + hashlib.sha256(resource_id.encode()).hexdigest()[:48]


def _value(resource: dict, label: str, *, unit_default: str) -> tuple[str, str] | None:
    """(value text as the CSV carries it, unit), or None for a result with no value
    (dataAbsentReason). A comparator (valueQuantity.comparator or a ``<2.0`` string) stays
    on the value."""
    if "valueQuantity" in resource:
        quantity = resource["valueQuantity"]
        if not isinstance(quantity, dict) or "value" not in quantity:
            raise rules.RuleError("valueQuantity", str(quantity)[:60], f"{label}: no value")
        comparator = quantity.get("comparator") or ""
        if comparator not in ("", "<", ">", "<=", ">="):
            raise rules.RuleError(
                "valueQuantity.comparator", comparator, f"{label}: unknown comparator"
            )
        try:
            number = Decimal(str(quantity["value"]))
        except InvalidOperation:
            raise rules.RuleError(
                "valueQuantity.value", str(quantity["value"])[:30], f"{label}: not a number"
            ) from None
        unit = quantity.get("unit") or quantity.get("code") or unit_default
        return f"{comparator[:1]}{number}", str(unit)
    if "valueString" in resource:
        text = str(resource["valueString"])
        match = _VALUE_STRING.match(text)
        if not match:
            raise rules.RuleError(
                "valueString", text[:40], f"{label}: not a number with an optional < or >"
            )
        comparator, number, unit = match.groups()
        return f"{(comparator or '')[:1]}{number}", unit or unit_default
    if "dataAbsentReason" in resource:
        return None
    raise rules.RuleError("value[x]", "", f"{label}: no value and no dataAbsentReason")


def observation_row(launch: SmartLaunch, resource: dict, mrn: str) -> tuple[str, dict] | str:
    """("levels"|"labs", importer row), or a note saying why it is skipped. Raises
    RuleError for a malformed Observation."""
    label = _label(resource)
    if not isinstance(resource.get("id"), str) or not resource["id"]:
        raise rules.RuleError("id", "", f"{label}: no id")
    codes = _codes(resource.get("code"), LOINC)
    status = str(resource.get("status") or "")
    if status not in STATUS:
        return f"{label}: status '{status}' not imported"
    when = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start")
    if not isinstance(when, str) or not when:
        raise rules.RuleError("effectiveDateTime", "", f"{label}: no collection time")
    if codes & set(TROUGH_LOINC):
        # Both LOINC codes are mass concentrations: a bare number is ng/mL (= µg/L).
        value = _value(resource, label, unit_default="ng/mL")
        if value is None:
            return f"{label}: no value ({_absent(resource)}), not imported"
        return "levels", {
            "mrn": mrn,
            "collected_at": when,
            "last_dose_at": "",
            "value": value[0],
            "unit": value[1],
            "assay": "",
            "accession": accession_for(launch, resource["id"]),
            "status": STATUS[status],
        }
    test = next((LAB_LOINC[c] for c in sorted(codes) if c in LAB_LOINC), None)
    if test is None:
        return f"{label}: not a monitored code"
    value = _value(resource, label, unit_default="")
    if value is None:
        return f"{label}: no value ({_absent(resource)}), not imported"
    if status == "preliminary":
        return f"{label}: preliminary lab result not stored"
    if value[0][:1] in ("<", ">"):
        return f"{label}: censored lab value '{value[0]}' not stored"
    unit = _UCUM_ANNOTATION.sub("", value[1].replace("{1.73_m2}", "1.73m2"))
    return "labs", {
        "mrn": mrn,
        "collected_at": when,
        "test": test,
        "value": value[0],
        "unit": unit,
        "accession": accession_for(launch, resource["id"]),
    }


def _absent(resource: dict) -> str:
    reason = resource.get("dataAbsentReason") or {}
    codes = [c.get("code") for c in reason.get("coding") or [] if isinstance(c, dict)]
    return str(reason.get("text") or (codes[0] if codes else "absent"))[:40]


def _is_tacrolimus(resource: dict) -> bool:
    concept = resource.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return False
    if TACROLIMUS_RXNORM in _codes(concept, RXNORM):
        return True
    texts = [str(concept.get("text") or "")] + [
        str(c.get("display") or "") for c in concept.get("coding") or [] if isinstance(c, dict)
    ]
    return any(word in t.lower() for t in texts for word in TACROLIMUS_WORDS)


def _formulation(text: str) -> str:
    lowered = text.lower()
    if any(w in lowered for w in ("envarsus", "lcp")):
        return "LCP"
    if any(w in lowered for w in ("advagraf", "astagraf", "extended", " xl", " er ", "prolonged")):
        return "ER"
    if any(w in lowered for w in ("prograf", "immediate", "adoport", "capsule")):
        return "IR"
    return ""


def order_proposal(resource: dict) -> dict | str:
    """A tacrolimus order's regimen proposal fields, or a note saying why it is skipped.
    Raises RuleError for an order it cannot read."""
    label = _label(resource)
    if not _is_tacrolimus(resource):
        return ""  # not ours to look at: no note either
    if resource.get("status") != "active":
        return f"{label}: order status '{resource.get('status')}' not proposed"
    dosages = resource.get("dosageInstruction") or []
    dosage = dosages[0] if dosages and isinstance(dosages[0], dict) else {}
    repeat = ((dosage.get("timing") or {}).get("repeat")) or {}
    frequency, period, unit = (
        repeat.get("frequency"),
        repeat.get("period", 1),
        repeat.get("periodUnit"),
    )
    if unit != "d" or period != 1 or frequency not in (1, 2):
        raise rules.RuleError(
            "dosageInstruction.timing",
            str(repeat)[:80],
            f"{label}: only once or twice a day is understood",
        )
    dose = None
    for dose_rate in dosage.get("doseAndRate") or []:
        quantity = (dose_rate or {}).get("doseQuantity") or {}
        if str(quantity.get("unit") or quantity.get("code") or "").lower() == "mg":
            dose = quantity.get("value")
    try:
        dose_mg = Decimal(str(dose))
    except InvalidOperation:
        raise rules.RuleError("doseQuantity", str(dose)[:30], f"{label}: no dose in mg") from None
    daily = validation.daily_dose_mg(str(dose_mg * frequency))
    concept = resource.get("medicationCodeableConcept") or {}
    text = " ".join(
        [str(concept.get("text") or "")]
        + [str(c.get("display") or "") for c in concept.get("coding") or [] if isinstance(c, dict)]
        + [str(dosage.get("text") or "")]
    )
    start = (repeat.get("boundsPeriod") or {}).get("start") or resource.get("authoredOn")
    effective = validation.parse_datetime(start, "authoredOn") if start else None
    if effective is None:
        raise rules.RuleError("authoredOn", "", f"{label}: no start date")
    authored = resource.get("authoredOn")
    return {
        "effective_at": effective,
        "authored_on": validation.parse_datetime(authored, "authoredOn") if authored else None,
        "formulation": _formulation(f" {text} "),
        "frequency": "BID" if frequency == 2 else "QD",
        "daily_dose_mg": daily,
        "text": text.strip()[:300],
    }


# --- importing -----------------------------------------------------------------------------


def _fingerprint(observations: list[dict], orders: list[dict]) -> str:
    keys = sorted(_label(r) for r in observations + orders)
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]


def ehr_import(launch: SmartLaunch, *, user, dry_run: bool, fingerprint: str = "") -> ImportReport:
    """Read the launch's patient's results and orders and bring in what is new: all or
    nothing. ``dry_run`` is the preview. ``fingerprint`` (from the preview) refuses to write
    when the EHR's data changed since the user looked at it."""
    patient = launch.patient
    if patient is None:
        raise SmartError("patient_not_matched", "The EHR's patient is not in this app.")
    observations, orders = fetch(launch)
    report = ImportReport(fingerprint=_fingerprint(observations, orders))
    report.notes.extend(
        f"{test} (LOINC {code}) is not a lab test of this site yet: not read"
        for code, test in SKIPPED_LOINC.items()
    )
    if fingerprint and fingerprint != report.fingerprint:
        report.problems.append("The EHR's records changed since the preview: review them again.")
        return report
    ctx = Context(thresholds=config.load_thresholds(), user=user, source=Source.FHIR)
    ctx.patients[patient.mrn] = patient
    importers = {"levels": LevelImporter(ctx), "labs": LabImporter(ctx)}
    try:
        with transaction.atomic():
            for resource in observations:
                _import_observation(launch, resource, patient, importers, report, user)
            for resource in orders:
                _propose(launch, resource, patient, report)
            if report.problems or dry_run:
                raise _Rollback
            if ctx.affected:
                patients_reassess(Patient.objects.filter(pk__in=ctx.affected))
            report.written = True
    except _Rollback:
        pass
    return report


def _already(launch: SmartLaunch, resource_type: str, resource: dict) -> bool:
    return ImportedResource.objects.filter(
        server=launch.server,
        resource_type=resource_type,
        resource_id=str(resource.get("id")),
        version_id=str((resource.get("meta") or {}).get("versionId") or ""),
    ).exists()


def _remember(launch, resource_type, resource, patient, user) -> None:
    ImportedResource.objects.create(
        server=launch.server,
        resource_type=resource_type,
        resource_id=str(resource["id"])[:64],
        version_id=str((resource.get("meta") or {}).get("versionId") or "")[:64],
        patient=patient,
        imported_by=user if getattr(user, "pk", None) else None,
    )


def _import_observation(launch, resource, patient, importers, report, user) -> None:
    label = _label(resource)
    if _already(launch, "Observation", resource):
        report.items.append(Item("result", label, "already imported", UNCHANGED))
        return
    try:
        mapped = observation_row(launch, resource, patient.mrn)
    except rules.RuleError as exc:
        report.problems.append(f"{exc.message}: {exc.field} value '{exc.value}'")
        return
    if isinstance(mapped, str):
        report.notes.append(mapped)
        return
    kind, row = mapped
    summary = (
        f"tacrolimus {row['value']} {row['unit']} collected {row['collected_at']}"
        if kind == "levels"
        else f"{row['test']} {row['value']} {row['unit']} collected {row['collected_at']}"
    )
    try:
        with transaction.atomic():
            action, _mrn = importers[kind].import_row(row)
    except RowErrors as exc:
        report.problems.extend(
            f"{label}: {e.field} value '{e.value}': {e.message}" for e in exc.errors
        )
        return
    except DatabaseError:
        report.problems.append(f"{label}: refused by the database")
        return
    report.items.append(Item("level" if kind == "levels" else "lab", label, summary, action))
    _remember(launch, "Observation", resource, patient, user)


def _propose(launch, resource, patient, report) -> None:
    label = _label(resource)
    version = str((resource.get("meta") or {}).get("versionId") or "")
    try:
        proposal = order_proposal(resource)
    except rules.RuleError as exc:
        report.problems.append(f"{exc.message}: {exc.field} value '{exc.value}'")
        return
    if isinstance(proposal, str):
        if proposal:
            report.notes.append(proposal)
        return
    summary = (
        f"{proposal['daily_dose_mg']} mg/day {proposal['formulation'] or '(formulation?)'} "
        f"{proposal['frequency']} from {timezone.localtime(proposal['effective_at']):%Y-%m-%d}"
    )
    if RegimenProposal.objects.filter(
        server=launch.server, resource_id=resource["id"], version_id=version
    ).exists():
        report.items.append(Item("order", label, summary, UNCHANGED))
        return
    RegimenProposal.objects.create(
        server=launch.server,
        resource_id=str(resource["id"])[:64],
        version_id=version[:64],
        patient=patient,
        **proposal,
    )
    report.items.append(Item("order", label, summary, "proposed"))
