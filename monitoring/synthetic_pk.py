"""Trough values for synthetic patients from a pharmacokinetic simulation.

The forecast check must not be a model fitting its own simulation, so the "true" patients
follow a model unlike the shipped ones: one compartment, first-order absorption (slower for
extended release), CYP3A5 expressers clearing twice as fast, between-patient and
between-occasion variability on clearance, interacting drugs that change clearance, the
dosing history as the patient really took it (late, early, missed doses) and assay noise.
Plain Python (no numpy, no engine): an independent implementation as well.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

CL_TYPICAL = 22.0  # L/h: a 4 mg/day twice-daily regimen gives troughs near 5 ng/mL
V_TYPICAL = 300.0  # L
KA = {"IR": 1.5, "ER": 0.45, "LCP": 0.35}  # /h: once-daily forms absorb slowly
RELATIVE_F = {"IR": 1.0, "ER": 0.9, "LCP": 1.35}  # LCP is given at ~70 % of the IR dose
BETWEEN_OCCASION_SD = 0.12  # on log clearance, per trough
ASSAY_PROPORTIONAL_SD = 0.07
ASSAY_ADDITIVE_SD = 0.15  # ng/mL


@dataclass(frozen=True)
class TruePk:
    clearance: float  # L/h, before interactions and occasion
    volume: float  # L


def draw_patient(rng: random.Random, expresser: bool) -> TruePk:
    clearance = CL_TYPICAL * math.exp(rng.gauss(0, 0.3)) * (2.0 if expresser else 1.0)
    return TruePk(clearance=clearance, volume=V_TYPICAL * math.exp(rng.gauss(0, 0.25)))


def concentration(
    pk: TruePk,
    doses: list[tuple[float, float, str]],
    *,
    clearance_factor: float = 1.0,
    occasion: float = 0.0,
) -> float:
    """ng/mL at the draw: ``doses`` are (hours before the draw, mg, formulation)."""
    clearance = pk.clearance * clearance_factor * math.exp(occasion)
    k = clearance / pk.volume
    total = 0.0
    for hours, mg, formulation in doses:
        if hours < 0:
            continue
        ka = KA[formulation]
        amount = mg * 1000 * RELATIVE_F[formulation] / pk.volume  # µg/L = ng/mL
        total += amount * ka / (ka - k) * (math.exp(-k * hours) - math.exp(-ka * hours))
    return total


def measured(rng: random.Random, value: float) -> float:
    """What the assay reports for a true concentration."""
    noisy = value * math.exp(rng.gauss(0, ASSAY_PROPORTIONAL_SD))
    return max(noisy + rng.gauss(0, ASSAY_ADDITIVE_SD), 0.05)
