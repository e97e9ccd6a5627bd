"""What the Fake EHR serves and how it misbehaves. The live server runs in a thread of the
test process, so tests set these directly; ``reset()`` before each test."""

from __future__ import annotations

import copy

DEFAULTS = {
    "patient": "pat-1",
    "fhir_user": "Practitioner/dr-1",
    "omit_patient": False,
    "drop_scopes": set(),  # granted = requested minus these
    "permission_v2": False,
    "well_known": True,  # False: 404, so clients fall back to the CapabilityStatement
    "token_fault": None,  # None, 500 or "garbage"
    "fhir_fault": None,  # None, 500 or "garbage"
    "id_token_aud": None,  # an id_token for another client
    "aud": None,  # the FHIR base the authorize endpoint accepts; set by the fixture
}

BEHAVIOUR: dict = {}
RESOURCES: dict[str, dict[str, dict]] = {}
REQUESTS: list[str] = []  # paths the FHIR API served, for assertions


def reset() -> None:
    BEHAVIOUR.clear()
    BEHAVIOUR.update(copy.deepcopy(DEFAULTS))
    RESOURCES.clear()
    RESOURCES.update({"Patient": {}, "Observation": {}, "MedicationRequest": {}})
    REQUESTS.clear()


def put(resource: dict) -> dict:
    """Store a resource (a new versionId when it already exists, as a server would)."""
    store = RESOURCES[resource["resourceType"]]
    previous = store.get(resource["id"])
    version = int(previous["meta"]["versionId"]) + 1 if previous else 1
    resource = copy.deepcopy(resource)
    resource.setdefault("meta", {})["versionId"] = str(version)
    store[resource["id"]] = resource
    return resource


reset()
