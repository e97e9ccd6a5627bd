"""python manage.py pk_fit MODEL DATA [--output FILE] [--predictions FILE]

MAP-Bayesian estimates for every ID of an NM-TRAN style data set (model-informed dosing
specification, §3 and §4). MODEL is a model file's path or a shipped model's id.
"""

import csv
import sys

from django.core.management.base import BaseCommand, CommandError

from monitoring import pk
from monitoring.csv_safety import safe_cell


def number(value: float) -> str:
    """8 significant digits; NA where a value could not be computed."""
    return "NA" if value != value else f"{value:.8g}"  # noqa: PLR0124 (NaN check)


class Command(BaseCommand):
    help = "Fit a population PK model to a data set by MAP-Bayesian estimation (one row per ID)."

    def add_arguments(self, parser):
        parser.add_argument("model", help="model file path, or the id of a shipped model")
        parser.add_argument("data", help="NM-TRAN style CSV data set")
        parser.add_argument("--output", help="estimates CSV; default standard output")
        parser.add_argument("--predictions", help="write ID, TIME, DV, PRED, IPRED, IWRES here")

    def handle(self, *args, model, data, output, predictions, **options):
        try:
            loaded = pk.load_model(model)
            subjects = pk.read_dataset(data, loaded)
        except pk.ModelError as exc:
            raise CommandError(str(exc)) from None
        except pk.DatasetError as exc:
            raise CommandError("the data set is refused:\n" + "\n".join(exc.problems)) from None
        if not subjects:
            raise CommandError(f"data set '{data}': no rows")

        results = [pk.fit(loaded, subject) for subject in subjects]
        names = loaded.eta_names
        header = ["ID", *names, *(f"SD_{name}" for name in names), "OFV"]
        rows = []
        for result in results:
            if result.converged:
                values = [*result.eta, *result.sd, result.ofv]
            else:
                values = [float("nan")] * (2 * len(names) + 1)
            rows.append([safe_cell(result.subject_id), *(number(v) for v in values)])
        self._write(output, header, rows)

        if predictions:
            prediction_rows = []
            for result in results:
                for i in range(len(result.time)):
                    prediction_rows.append(
                        [
                            safe_cell(result.subject_id),
                            f"{result.time[i]:.10g}",
                            number(result.dv[i]),
                            number(result.pred[i]),
                            number(result.ipred[i]),
                            number(result.iwres[i]),
                        ]
                    )
            self._write(
                predictions, ["ID", "TIME", "DV", "PRED", "IPRED", "IWRES"], prediction_rows
            )

        for result in results:
            if result.defaulted:
                self.stderr.write(
                    f"ID {result.subject_id}: no value for {', '.join(result.defaulted)} in some "
                    "or all rows: the model's default was used"
                )
        failed = [r for r in results if not r.converged]
        for result in failed:
            self.stderr.write(f"ID {result.subject_id}: {result.message}")
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} subjects did not converge "
                f"(IDs {', '.join(r.subject_id for r in failed)}): their row says NA"
            )

    def _write(self, path, header, rows):
        if path:
            with open(path, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(rows)
        else:
            writer = csv.writer(self.stdout, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            sys.stdout.flush()
