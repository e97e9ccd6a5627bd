"""Population PK model files (TOML): reading, validating and writing them back.

The format is the contract of the model-informed dosing specification (§2). Every file is
checked whole before anything runs, and every refusal names the file, the section or
parameter, and the token, so a pharmacist editing a model sees exactly what to mend.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .expressions import Expression, ExpressionError

MODELS_DIR = Path(__file__).resolve().parent / "models"

DISPOSITIONS = {
    "one_compartment": ("CL", "V"),
    "two_compartment": ("CL", "V1", "Q", "V2"),
}
ABSORPTIONS = {"first_order": ("KA",), "transit": ("KTR",)}
OPTIONAL_PARAMETERS = ("ALAG", "F")

_SECTIONS = {
    "model": {
        "required": ("id", "name", "drug", "reference", "population", "formulations"),
        "optional": (
            "dose_unit",
            "concentration_unit",
            "scale",
            # Not in the minimal contract; read by the clinic pages to say plainly when a
            # patient is outside the population the model was built on.
            "evidence",
            "indication",
            "age_range",
        ),
    },
    "structure": {"required": ("disposition", "absorption"), "optional": ("transit_compartments",)},
    "covariates": None,  # any name: one table per covariate
    "parameters": None,  # checked against the structure below
    "omega": {"required": ("etas",), "optional": ("variances", "block")},
    "error": {"required": (), "optional": ("proportional_sd", "additive_sd")},
}
_COVARIATE_KEYS = {"description", "unit", "default"}


class ModelError(ValueError):
    """A model file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Covariate:
    name: str
    description: str
    unit: str
    default: float


@dataclass
class Model:
    """A parsed, validated population PK model."""

    id: str
    name: str
    drug: str
    reference: str
    population: str
    formulations: list[str]
    disposition: str
    absorption: str
    transit_compartments: int
    covariates: dict[str, Covariate]
    parameters: dict[str, Expression]
    eta_names: list[str]
    omega: np.ndarray
    proportional_sd: float
    additive_sd: float
    dose_unit: str = "mg"
    concentration_unit: str = "ng/mL"
    scale: float = 1.0
    evidence: str = ""
    indication: str = ""
    age_range: tuple[float, float] | None = None
    source: str = "<text>"
    omega_is_block: bool = field(default=False, repr=False)

    @property
    def central_volume(self) -> str:
        return "V" if self.disposition == "one_compartment" else "V1"

    @property
    def absorption_rate(self) -> str:
        return "KA" if self.absorption == "first_order" else "KTR"

    @property
    def chain_length(self) -> int:
        """Compartments before the central one: 1 depot, or the N transit compartments."""
        return 1 if self.absorption == "first_order" else self.transit_compartments

    @property
    def omega_inverse(self) -> np.ndarray:
        return np.linalg.inv(self.omega)

    def typical_value(self, parameter: str, covariates: dict[str, float] | None = None) -> float:
        """A parameter at η = 0 for the given covariates (defaults where not given)."""
        values = {name: np.asarray(c.default, float) for name, c in self.covariates.items()}
        for name, value in (covariates or {}).items():
            values[name] = np.asarray(value, float)
        values.update({eta: np.asarray(0.0) for eta in self.eta_names})
        return float(self.parameters[parameter](values))

    def individual_parameters(
        self, covariates: dict[str, np.ndarray], etas: np.ndarray, records: int | None = None
    ) -> dict[str, np.ndarray]:
        """Every parameter for each ETA row (B, n_eta) and record (covariates: (R,)).

        Returns arrays of shape (B, R).
        """
        etas = np.atleast_2d(np.asarray(etas, float))
        if records is None:
            records = len(next(iter(covariates.values()))) if covariates else 1
        values: dict[str, np.ndarray] = {
            name: np.asarray(column, float)[None, :] for name, column in covariates.items()
        }
        for index, name in enumerate(self.eta_names):
            values[name] = etas[:, index : index + 1]
        shape = (etas.shape[0], records)
        return {
            name: np.broadcast_to(expression(values), shape).astype(float)
            for name, expression in self.parameters.items()
        }

    def to_toml(self) -> str:
        """The model as a model file; reading it back gives the same model."""
        lines = ["[model]"]
        lines += [
            f"id = {_toml_string(self.id)}",
            f"name = {_toml_string(self.name)}",
            f"drug = {_toml_string(self.drug)}",
            f"reference = {_toml_string(self.reference)}",
            f"population = {_toml_string(self.population)}",
            f"formulations = [{', '.join(_toml_string(f) for f in self.formulations)}]",
            f"dose_unit = {_toml_string(self.dose_unit)}",
            f"concentration_unit = {_toml_string(self.concentration_unit)}",
            f"scale = {self.scale!r}",
        ]
        if self.evidence:
            lines.append(f"evidence = {_toml_string(self.evidence)}")
        if self.indication:
            lines.append(f"indication = {_toml_string(self.indication)}")
        if self.age_range is not None:
            lines.append(f"age_range = [{self.age_range[0]!r}, {self.age_range[1]!r}]")
        lines += ["", "[structure]", f"disposition = {_toml_string(self.disposition)}"]
        lines.append(f"absorption = {_toml_string(self.absorption)}")
        if self.absorption == "transit":
            lines.append(f"transit_compartments = {self.transit_compartments}")
        lines += ["", "[covariates]"]
        for c in self.covariates.values():
            lines.append(
                f"{c.name} = {{ description = {_toml_string(c.description)}, "
                f"unit = {_toml_string(c.unit)}, default = {c.default!r} }}"
            )
        lines += ["", "[parameters]"]
        lines += [f"{name} = {_toml_string(e.text)}" for name, e in self.parameters.items()]
        lines += ["", "[omega]", f"etas = [{', '.join(_toml_string(e) for e in self.eta_names)}]"]
        if self.omega_is_block:
            rows = [
                "[" + ", ".join(repr(float(v)) for v in self.omega[i, : i + 1]) + "]"
                for i in range(len(self.eta_names))
            ]
            lines.append(f"block = [{', '.join(rows)}]")
        else:
            diagonal = ", ".join(repr(float(v)) for v in np.diag(self.omega))
            lines.append(f"variances = [{diagonal}]")
        lines += [
            "",
            "[error]",
            f"proportional_sd = {self.proportional_sd!r}",
            f"additive_sd = {self.additive_sd!r}",
            "",
        ]
        return "\n".join(lines)


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def shipped_models() -> list[str]:
    """Ids of the model files that ship with the application."""
    return sorted(path.stem for path in MODELS_DIR.glob("*.toml"))


def load_model(name_or_path: str | Path) -> Model:
    """A shipped model by id, or a model file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = MODELS_DIR / f"{name_or_path}.toml"
        if not shipped.is_file():
            known = ", ".join(shipped_models()) or "none"
            raise ModelError(
                f"model {str(name_or_path)!r}: no such file and no shipped model with that id "
                f"(shipped: {known})"
            )
        path = shipped
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"model file '{path}': cannot be read: {exc}") from None
    return parse_model(text, source=str(path))


def parse_model(text: str, source: str = "<text>") -> Model:
    """Validate a model file's text; raises ModelError naming the file and the token."""
    where = f"model file '{source}'"
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{where}: not valid TOML: {exc}") from None

    def fail(message: str) -> ModelError:
        return ModelError(f"{where}: {message}")

    for section in document:
        if section not in _SECTIONS:
            raise fail(f"unknown section [{section}] (known: {', '.join(_SECTIONS)})")
    for section, keys in _SECTIONS.items():
        table = document.get(section)
        if table is None:
            if section == "covariates":
                continue
            raise fail(f"missing section [{section}]")
        if not isinstance(table, dict):
            raise fail(f"[{section}] must be a table")
        if keys is None:
            continue
        allowed = set(keys["required"]) | set(keys["optional"])
        for key in table:
            if key not in allowed:
                raise fail(
                    f"[{section}] unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
                )
        for key in keys["required"]:
            if key not in table:
                raise fail(f"[{section}] missing key {key!r}")

    info = document["model"]
    for key in ("id", "name", "drug", "reference", "population"):
        if not isinstance(info[key], str) or not info[key].strip():
            raise fail(f"[model] {key}: value {info[key]!r}: must be a non-empty text")
    model_id = info["id"]
    if model_id != model_id.lower() or not model_id.replace("_", "").isalnum():
        raise fail(f"[model] id: value {model_id!r}: lowercase letters, digits and _ only")
    formulations = info["formulations"]
    if (
        not isinstance(formulations, list)
        or not formulations
        or not all(isinstance(f, str) and f for f in formulations)
    ):
        raise fail(f"[model] formulations: value {formulations!r}: a list of formulation codes")
    scale = _number(info.get("scale", 1.0), f"{where}: [model] scale", positive=True)
    age_range = info.get("age_range")
    if age_range is not None:
        if (
            not isinstance(age_range, list)
            or len(age_range) != 2
            or not all(isinstance(v, int | float) for v in age_range)
            or age_range[0] > age_range[1]
        ):
            raise fail(f"[model] age_range: value {age_range!r}: [lowest, highest] age in years")
        age_range = (float(age_range[0]), float(age_range[1]))

    structure = document["structure"]
    disposition, absorption = structure["disposition"], structure["absorption"]
    if disposition not in DISPOSITIONS:
        raise fail(
            f"[structure] disposition: value {disposition!r}: one of {', '.join(DISPOSITIONS)}"
        )
    if absorption not in ABSORPTIONS:
        raise fail(f"[structure] absorption: value {absorption!r}: one of {', '.join(ABSORPTIONS)}")
    transit = structure.get("transit_compartments")
    if absorption == "transit":
        if isinstance(transit, bool) or not isinstance(transit, int) or not 1 <= transit <= 50:
            raise fail(
                f"[structure] transit_compartments: value {transit!r}: a whole number 1 to 50"
            )
    elif transit is not None:
        raise fail('[structure] transit_compartments: only for absorption = "transit"')

    covariates: dict[str, Covariate] = {}
    for name, spec in document.get("covariates", {}).items():
        if not name.isidentifier() or name.upper().startswith("ETA"):
            raise fail(f"[covariates] {name}: not a usable name")
        if not isinstance(spec, dict):
            raise fail(
                f"[covariates] {name}: value {spec!r}: a table with description, unit, default"
            )
        unknown = set(spec) - _COVARIATE_KEYS
        if unknown:
            raise fail(f"[covariates] {name}: unknown key {sorted(unknown)[0]!r}")
        if "default" not in spec:
            raise fail(f"[covariates] {name}: missing key 'default'")
        covariates[name] = Covariate(
            name=name,
            description=str(spec.get("description", "")),
            unit=str(spec.get("unit", "")),
            default=_number(spec["default"], f"{where}: [covariates] {name}: default"),
        )

    omega_table = document["omega"]
    etas = omega_table["etas"]
    if not isinstance(etas, list) or not all(isinstance(e, str) for e in etas):
        raise fail(f"[omega] etas: value {etas!r}: a list of ETA names")
    for eta in etas:
        if not eta.isidentifier() or not eta.upper().startswith("ETA"):
            raise fail(f"[omega] etas: value {eta!r}: ETA names start with ETA")
        if eta in covariates:
            raise fail(f"[omega] etas: value {eta!r}: also a covariate name")
    if len(set(etas)) != len(etas):
        raise fail(f"[omega] etas: value {etas!r}: a name appears twice")
    omega, is_block = _omega(omega_table, etas, fail)

    names = set(covariates) | set(etas)
    required = DISPOSITIONS[disposition] + ABSORPTIONS[absorption]
    allowed_parameters = set(required) | set(OPTIONAL_PARAMETERS)
    parameters: dict[str, Expression] = {}
    for name, text_value in document["parameters"].items():
        if name not in allowed_parameters:
            raise fail(
                f"[parameters] {name}: unknown parameter for a {disposition} model with "
                f"{absorption} absorption (allowed: {', '.join(sorted(allowed_parameters))})"
            )
        if not isinstance(text_value, str | int | float) or isinstance(text_value, bool):
            raise fail(f"[parameters] {name}: value {text_value!r}: an expression in quotes")
        try:
            parameters[name] = Expression(str(text_value), names)
        except ExpressionError as exc:
            raise fail(f"[parameters] {name}: {exc}") from None
    for name in required:
        if name not in parameters:
            raise fail(f"[parameters] missing parameter {name!r} (a {disposition} model needs it)")
    used = set().union(*(e.names for e in parameters.values()))
    for eta in etas:
        if eta not in used:
            raise fail(f"[omega] etas: {eta!r} is used by no parameter")

    error = document["error"]
    proportional = _number(error.get("proportional_sd", 0.0), f"{where}: [error] proportional_sd")
    additive = _number(error.get("additive_sd", 0.0), f"{where}: [error] additive_sd")
    if proportional < 0 or additive < 0:
        raise fail("[error] standard deviations cannot be negative")
    if proportional == 0 and additive == 0:
        raise fail("[error] proportional_sd and additive_sd are both 0: no residual error")

    model = Model(
        id=model_id,
        name=info["name"],
        drug=info["drug"],
        reference=info["reference"],
        population=info["population"],
        formulations=list(formulations),
        disposition=disposition,
        absorption=absorption,
        transit_compartments=int(transit or 1),
        covariates=covariates,
        parameters=parameters,
        eta_names=list(etas),
        omega=omega,
        proportional_sd=proportional,
        additive_sd=additive,
        dose_unit=str(info.get("dose_unit", "mg")),
        concentration_unit=str(info.get("concentration_unit", "ng/mL")),
        scale=scale,
        evidence=str(info.get("evidence", "")),
        indication=str(info.get("indication", "")),
        age_range=age_range,
        source=source,
        omega_is_block=is_block,
    )
    _check_typical_values(model, fail)
    return model


def _number(value: object, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelError(f"{where}: value {value!r}: must be a number")
    if positive and value <= 0:
        raise ModelError(f"{where}: value {value!r}: must be positive")
    return float(value)


def _omega(table: dict, etas: list[str], fail) -> tuple[np.ndarray, bool]:
    n = len(etas)
    if "variances" in table and "block" in table:
        raise fail("[omega] give either variances (diagonal) or block (full matrix), not both")
    if "variances" in table:
        variances = table["variances"]
        if not isinstance(variances, list):
            raise fail(f"[omega] variances: value {variances!r}: a list of numbers")
        if len(variances) != n:
            missing = etas[len(variances) :] or ["(none)"]
            raise fail(
                f"[omega] variances: {len(variances)} values for {n} ETAs "
                f"(ETA without a variance: {missing[0]})"
            )
        values = [
            _number(v, f"[omega] variances ({eta})") for v, eta in zip(variances, etas, strict=True)
        ]
        omega, is_block = np.diag(values), False
    elif "block" in table:
        block = table["block"]
        if not isinstance(block, list) or len(block) != n:
            raise fail(f"[omega] block: needs {n} rows (the lower triangle), one per ETA")
        omega = np.zeros((n, n))
        for i, row in enumerate(block):
            if not isinstance(row, list) or len(row) != i + 1:
                raise fail(f"[omega] block: row {i + 1} ({etas[i]}) needs {i + 1} values")
            for j, value in enumerate(row):
                omega[i, j] = omega[j, i] = _number(value, f"[omega] block row {i + 1}")
        is_block = True
    else:
        raise fail("[omega] missing key 'variances' (or 'block'): every ETA needs a variance")
    try:
        np.linalg.cholesky(omega)
    except np.linalg.LinAlgError:
        raise fail(
            f"[omega]: the matrix is not positive definite (variances {np.diag(omega).tolist()})"
        ) from None
    return omega, is_block


def _check_typical_values(model: Model, fail) -> None:
    """Every parameter must be a positive, finite number for the default covariates."""
    for name in model.parameters:
        value = model.typical_value(name)
        if not math.isfinite(value) or (value <= 0 and name not in ("ALAG",)) or value < 0:
            raise fail(
                f"[parameters] {name}: value {value!r} at the covariates' defaults and η = 0: "
                "must be a positive number"
            )
