"""CSV (and, later, HL7) importers sharing one validation path and one transaction rule:
a file with any bad row writes nothing."""

from .runner import ImportReport, RowResult, run_csv_import

__all__ = ["ImportReport", "RowResult", "run_csv_import"]
