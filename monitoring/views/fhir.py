"""A patient's tacrolimus troughs as a FHIR R4 Bundle, downloaded from the patient page
(the same bundle as ``manage.py export_fhir MRN``; decisions in monitoring/fhir.py)."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from ..audit import logs_access
from ..fhir import patient_bundle
from ..models import Patient
from ..services import patients_assess

FHIR_JSON = "application/fhir+json"


@require_GET
@permission_required("monitoring.view_patient", raise_exception=True)
@logs_access("fhir")
def patient_fhir(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_object_or_404(Patient, pk=pk)
    bundle = patient_bundle(patients_assess([patient])[0])
    response = HttpResponse(
        json.dumps(bundle, indent=2, ensure_ascii=False) + "\n",
        content_type=f"{FHIR_JSON}; charset=utf-8",
    )
    filename = f"{patient.mrn}-tacrolimus-fhir-{timezone.localdate():%Y%m%d}.json"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
