"""python manage.py export_fhir MRN [--output FILE]"""

import json

from django.core.management.base import BaseCommand, CommandError

from monitoring.fhir import patient_bundle
from monitoring.models import Patient
from monitoring.services import patients_assess


class Command(BaseCommand):
    help = "Export a patient's tacrolimus troughs as a FHIR R4 Bundle (JSON)."

    def add_arguments(self, parser):
        parser.add_argument("mrn")
        parser.add_argument("--output", help="file to write; default standard output")

    def handle(self, *args, mrn, output, **options):
        patient = Patient.objects.filter(mrn=mrn.strip()).first()
        if patient is None:
            raise CommandError(f"mrn: value '{mrn}': unknown patient")
        bundle = patient_bundle(patients_assess([patient])[0])
        text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
