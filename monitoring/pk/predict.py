"""Concentrations of a subject's records for given ETAs: doses, ADDL/II, steady state.

The records' distinct times are breakpoints. Between two breakpoints the parameters are
those of the last record at the first one (a record's covariates apply from its time on), so
the state moves by one flow matrix Φ(Δ) per interval, plus the doses that fall inside it.
Each dose record is a *train*: doses at ``s0 + q·II`` for q in [qa, ADDL] (qa = −∞ for a
steady-state dose). The doses of one train inside one interval are a geometric series,
``Σ_{q<K} Φ(δ + q·II) e₁ = Φ(δ) g − Φ(δ + K·II) g`` with ``g = (I − Φ(II))⁻¹ e₁``, so three
years of twice-daily dosing cost a handful of matrix products, not two thousand steps.
A steady-state dose resets the state to ``Φ(T − u) g``: the exact sum of the infinite past.
"""

from __future__ import annotations

import numpy as np

from .dataset import Subject
from .linear import build_system, flow, propagate
from .modelfile import Model

TOLERANCE_H = 1e-7  # doses this close to a breakpoint count as at it


class Simulation:
    """Amounts and concentrations of one subject for a batch of ETA vectors."""

    def __init__(self, model: Model, subject: Subject, etas: np.ndarray):
        self.model = model
        self.subject = subject
        self.etas = np.atleast_2d(np.asarray(etas, float))
        self.parameters = model.individual_parameters(
            subject.covariates, self.etas, records=len(subject.time)
        )
        self.system = build_system(
            self.parameters, model.disposition, model.absorption, model.chain_length
        )

    def concentrations(self, at: np.ndarray | None = None) -> np.ndarray:
        """(B, n_obs) concentrations at the observation records (or at record indices `at`)."""
        subject, system = self.subject, self.system
        records = subject.observed if at is None else np.asarray(at, int)
        breakpoints, record_of = np.unique(subject.time, return_inverse=True)
        states = self._states(breakpoints)
        amounts = states[:, record_of[records], system.central]
        volume = system.volume[:, records]
        return np.maximum(amounts / volume * self.model.scale, 0.0)

    def _states(self, breakpoints: np.ndarray) -> np.ndarray:
        """State at each breakpoint (after a steady-state reset there): (B, M, n)."""
        subject, system = self.subject, self.system
        batch, n, count = self.etas.shape[0], system.size, len(breakpoints)
        # The parameters over interval i are those of the last record at breakpoint i.
        last_record = np.searchsorted(subject.time, breakpoints, side="right") - 1
        interval_records = last_record[:-1]
        flows = flow(
            system, interval_records, np.broadcast_to(np.diff(breakpoints), (batch, count - 1))
        )
        inputs = np.zeros((batch, max(count - 1, 0), n))
        resets = self._steady_state_resets(breakpoints)

        pairs = self._dose_pairs(breakpoints, interval_records)
        if pairs is not None:
            interval, records, delta, doses, ii, amount = pairs
            g = self._train_vectors(records, np.broadcast_to(ii, delta.shape))
            near = propagate(system, records, delta, g)
            far = propagate(system, records, delta + doses * ii, g)
            far[:, ii == 0] = 0.0
            contribution = amount[..., None] * (near - far)
            np.add.at(inputs, (slice(None), interval), contribution)

        reset_states = {}
        for at, (record, last_dose, amount, interval_ii) in resets.items():
            records = np.array([record])
            g = self._train_vectors(records, np.full((batch, 1), interval_ii))
            since = (breakpoints[at] - last_dose)[:, None]
            reset_states[at] = amount[:, None] * propagate(system, records, since, g)[:, 0]

        states = np.empty((batch, count, n))
        state = np.zeros((batch, n))
        for i in range(count):
            if i in reset_states:
                state = reset_states[i]
            states[:, i] = state
            if i < count - 1:
                state = np.einsum("bij,bj->bi", flows[:, i], state) + inputs[:, i]
        return states

    def _doses(self):
        """Per dose record: first dose time (B, D), amount (B, D), interval, last q."""
        subject = self.subject
        doses = subject.doses
        batch = self.etas.shape[0]
        lag = self.parameters.get("ALAG")
        fraction = self.parameters.get("F")
        start = np.broadcast_to(subject.time[doses], (batch, len(doses))).copy()
        if lag is not None:
            start += lag[:, doses]
        amount = np.broadcast_to(subject.amt[doses], (batch, len(doses))).copy()
        if fraction is not None:
            amount *= fraction[:, doses]
        ii = subject.ii[doses]
        last_q = np.where(ii > 0, subject.addl[doses], 0).astype(float)
        return doses, start, amount, ii, last_q

    def _steady_state_resets(self, breakpoints):
        """Breakpoint → (record, time of the latest past dose, amount, II) of each SS dose."""
        subject = self.subject
        doses, start, amount, ii, _ = self._doses()
        resets = {}
        for column in np.flatnonzero(subject.ss[doses] == 1):
            record, time = doses[column], subject.time[doses[column]]
            q0 = np.floor((time - start[:, column]) / ii[column] + TOLERANCE_H)
            at = int(np.searchsorted(breakpoints, time + TOLERANCE_H, side="right") - 1)
            resets[at] = (record, start[:, column] + q0 * ii[column], amount[:, column], ii[column])
        return resets

    def _dose_pairs(self, breakpoints, interval_records):
        """Every (dose record, interval) that holds doses: the geometric-series terms."""
        subject = self.subject
        doses, start, amount, ii, last_q = self._doses()
        if len(doses) == 0 or len(breakpoints) < 2:
            return None
        first_q = np.zeros_like(start)
        steady = subject.ss[doses] == 1
        if steady.any():
            past = np.floor(
                (subject.time[doses][steady] - start[:, steady]) / ii[steady] + TOLERANCE_H
            )
            first_q[:, steady] = past + 1
        times = subject.time[doses]
        first_interval = np.searchsorted(breakpoints, times + TOLERANCE_H, side="right") - 1
        final = (start + last_q * ii).max(axis=0)
        last_interval = np.minimum(
            np.searchsorted(breakpoints, final + TOLERANCE_H, side="right") - 1,
            len(breakpoints) - 2,
        )
        spans = np.maximum(last_interval - first_interval + 1, 0)
        if spans.sum() == 0:
            return None
        column = np.repeat(np.arange(len(doses)), spans)
        offsets = np.cumsum(spans) - spans
        interval = first_interval[column] + np.arange(spans.sum()) - offsets[column]
        low, high = breakpoints[interval], breakpoints[interval + 1]
        start_p, ii_p = start[:, column], ii[column]
        repeated = ii_p > 0
        safe_ii = np.where(repeated, ii_p, 1.0)
        q_low = np.where(
            repeated,
            np.maximum(first_q[:, column], np.ceil((low - TOLERANCE_H - start_p) / safe_ii)),
            0.0,
        )
        single_inside = (start_p >= low - TOLERANCE_H) & (start_p < high - TOLERANCE_H)
        q_high = np.where(
            repeated,
            np.minimum(last_q[column], np.ceil((high - TOLERANCE_H - start_p) / safe_ii) - 1),
            np.where(single_inside, 0.0, -1.0),
        )
        count = q_high - q_low + 1
        keep = np.any(count >= 1, axis=0)
        if not keep.any():
            return None
        count, q_high = count[:, keep], q_high[:, keep]
        ii_p, interval, start_p = ii_p[keep], interval[keep], start_p[:, keep]
        delta = high[keep] - (start_p + q_high * ii_p)
        amount_p = np.where(count >= 1, amount[:, column[keep]], 0.0)
        return (
            interval,
            interval_records[interval],
            delta,
            np.maximum(count, 0.0),
            ii_p,
            amount_p,
        )

    def _train_vectors(self, records: np.ndarray, ii: np.ndarray) -> np.ndarray:
        """g = (I − Φ(II))⁻¹ e₁ per pair; e₁ itself where II = 0 (a single dose)."""
        n = self.system.size
        batch, points = ii.shape
        dose = np.zeros((batch, points, n))
        dose[..., 0] = 1.0
        repeated = ii[0] > 0
        if repeated.any():
            phi = flow(self.system, records[repeated], ii[:, repeated])
            dose[:, repeated] = np.linalg.solve(np.eye(n) - phi, dose[:, repeated][..., None])[
                ..., 0
            ]
        return dose


def predict(model: Model, subject: Subject, eta) -> np.ndarray:
    """Concentrations at the subject's observation records for one ETA vector."""
    return Simulation(model, subject, np.asarray(eta, float)[None, :]).concentrations()[0]


def predict_batch(model: Model, subject: Subject, etas: np.ndarray) -> np.ndarray:
    """(B, n_obs) for B ETA vectors at once."""
    return Simulation(model, subject, etas).concentrations()
