"""python manage.py pk_dataset MRN [--output FILE]

A patient's tacrolimus history as the PK engine's NM-TRAN style data set
(model-informed-dosing.md §3, §5), for research and audit: CSV on stdout or to FILE, and the
notes on how the records were read on stderr. The file names nobody (subject ID 1, no MRN);
the export is still written to the access log, since the patient's data leaves the site."""

from django.core.management.base import BaseCommand, CommandError

from monitoring.audit import log_command_access
from monitoring.models import Patient
from monitoring.pk_data import patient_pk_dataset, write_csv


class Command(BaseCommand):
    help = "Write a patient's doses, troughs and covariates as an NM-TRAN style CSV data set."

    def add_arguments(self, parser):
        parser.add_argument("mrn")
        parser.add_argument("--output", help="file to write; default standard output")

    def handle(self, *args, mrn, output, **options):
        patient = Patient.objects.filter(mrn=mrn.strip()).first()
        if patient is None:
            raise CommandError(f"mrn: value '{mrn}': unknown patient")
        dataset = patient_pk_dataset(patient)
        # Logged before writing: an export that fails half-way has still shown data.
        log_command_access(patient, "pk_dataset", "pk_dataset")
        if output:
            with open(output, "w", encoding="utf-8", newline="") as handle:
                write_csv(dataset, handle)
        else:
            write_csv(dataset, self.stdout)
        for note in dataset.notes:
            self.stderr.write(f"note: {note}")
