"""python manage.py import_hl7 FILE [--acks FILE]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from monitoring.importers.hl7 import ack_for, import_hl7_messages


class Command(BaseCommand):
    help = (
        "Import HL7 v2 ORU^R01 lab results (one or more messages). Each message is its own "
        "transaction; exits 1 if any message was not accepted."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--acks", type=Path, help="also write the HL7 ACK of every message to this file"
        )

    def handle(self, *args, file, acks, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # HL7 v2 predates UTF-8 as its default; Latin-1 reads any byte, and the fields
            # this import stores (codes, numbers, units) are ASCII.
            self.stderr.write(f"warning: {file} is not UTF-8; read as Latin-1")
            text = data.decode("latin-1")
        results = import_hl7_messages(text)
        if not results:
            self.stderr.write(f"{file}: no HL7 message found")
            raise SystemExit(1)
        for result in results:
            line = (
                f"message {result.index} {result.control_id or '-'}: {result.status}: "
                f"{result.summary()}"
            )
            self.stdout.write(line)
            for note in result.notes:
                self.stdout.write(f"  note: {note}")
        if acks:
            acks.write_text("\n".join(ack_for(r) for r in results), encoding="utf-8", newline="")
        failed = [r for r in results if not r.accepted]
        if failed:
            self.stderr.write(f"{len(failed)} of {len(results)} message(s) not accepted")
            raise SystemExit(1)
