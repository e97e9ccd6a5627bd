"""Model files and data sets written on the fly for the pk tests (in the §2 and §3 formats)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SHIPPED_MODELS = ("woillard2011", "chen2020")
MODELS_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "pk" / "models"
DATA_DIR = Path(__file__).resolve().parent / "data"


def model_toml(
    *,
    disposition: str = "one_compartment",
    absorption: str = "first_order",
    transit: int | None = None,
    parameters: dict[str, str],
    etas: list[str],
    variances: list[float] | None = None,
    block: list[list[float]] | None = None,
    covariates: dict[str, float] | None = None,
    proportional_sd: float = 0.2,
    additive_sd: float = 0.0,
    scale: float = 1,
    model_id: str = "test_model",
) -> str:
    """A complete, valid model file; tests break one thing at a time from here."""
    lines = [
        "[model]",
        f'id = "{model_id}"',
        'name = "Test model"',
        'drug = "tacrolimus"',
        'reference = "test"',
        'population = "test subjects"',
        'formulations = ["IR"]',
        'dose_unit = "mg"',
        'concentration_unit = "mg/L"',
        f"scale = {scale}",
        "",
        "[structure]",
        f'disposition = "{disposition}"',
        f'absorption = "{absorption}"',
    ]
    if transit is not None:
        lines.append(f"transit_compartments = {transit}")
    lines += ["", "[covariates]"]
    for name, default in (covariates or {}).items():
        lines.append(f'{name} = {{ description = "{name}", unit = "", default = {default} }}')
    lines += ["", "[parameters]"]
    lines += [f'{name} = "{expression}"' for name, expression in parameters.items()]
    lines += ["", "[omega]", "etas = [" + ", ".join(f'"{e}"' for e in etas) + "]"]
    if block is not None:
        lines.append("block = " + repr([list(map(float, row)) for row in block]))
    else:
        lines.append("variances = " + repr([float(v) for v in (variances or [])]))
    lines += [
        "",
        "[error]",
        f"proportional_sd = {proportional_sd!r}",
        f"additive_sd = {additive_sd!r}",
        "",
    ]
    return "\n".join(lines)


ONE_COMPARTMENT = {
    "parameters": {"CL": "4 * exp(ETA_CL)", "V": "70 * exp(ETA_V)", "KA": "1.2 * exp(ETA_KA)"},
    "etas": ["ETA_CL", "ETA_V", "ETA_KA"],
    "variances": [0.1, 0.1, 0.2],
}


def dataset_csv(rows: list[dict], columns: list[str] | None = None) -> str:
    """An NM-TRAN style CSV; missing cells are '.'."""
    columns = columns or ["ID", "TIME", "EVID", "AMT", "DV", "II", "ADDL", "SS", "CENS"]
    out = [",".join(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "." if column == "DV" else 0)
            is_number = isinstance(value, float | np.floating) and math.isfinite(value)
            cells.append(repr(float(value)) if is_number else str(value))
        out.append(",".join(cells))
    return "\n".join(out) + "\n"
