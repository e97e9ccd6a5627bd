"""Concentrations of a subject's records for given ETAs: doses, ADDL/II, steady state.

The records' distinct times are breakpoints. Between two breakpoints the parameters are
those of the last record at the first one (a record's covariates apply from its time on), so
the state moves by one flow matrix Φ(Δ) per interval, plus the doses that fall inside it.
Each dose record is a *train*: doses at ``s0 + q·II`` for q in [qa, ADDL] (qa = −∞ for a
steady-state dose). The doses of one train inside one interval are a geometric series,
``Σ_{q<K} Φ(δ + q·II) e₁ = Φ(δ) g − Φ(δ + K·II) g`` with ``g = (I − Φ(II))⁻¹ e₁``, so three
years of twice-daily dosing cost a handful of matrix products, not two thousand steps.
A steady-state dose resets the state to ``Φ(T − u) g``: the exact sum of the infinite past.

Where the doses fall (the schedule) depends on the records and the lag times only, so
without ALAG it is worked out once per subject and reused by every evaluation of a fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import Subject
from .linear import build_system, flow
from .modelfile import Model

TOLERANCE_H = 1e-7  # doses this close to a breakpoint count as at it


@dataclass
class Schedule:
    """Which doses fall where. Arrays with a leading S axis: 1, or B when lag times vary."""

    breakpoints: np.ndarray  # (M,) distinct record times
    record_of: np.ndarray  # (R,) breakpoint of each record
    interval_records: np.ndarray  # (M-1,) record whose parameters rule each interval
    pair_interval: np.ndarray  # (P,) interval of each (dose record, interval) pair
    pair_column: np.ndarray  # (P,) dose record (column of the dose arrays)
    pair_delta: np.ndarray  # (S, P) time from the pair's last dose to the interval's end
    pair_count: np.ndarray  # (S, P) doses of the pair (0: none for this member)
    pair_key: np.ndarray  # (P,) index into the (record, II) train keys
    reset_at: np.ndarray  # (Z,) breakpoint of each steady-state reset
    reset_column: np.ndarray  # (Z,)
    reset_since: np.ndarray  # (S, Z) time from the latest past dose to the reset
    reset_key: np.ndarray  # (Z,)
    key_record: np.ndarray  # (U,) record whose parameters give Φ(II) for a train key
    key_ii: np.ndarray  # (U,) its interval (0: a single dose, g = e₁)


def _breakpoints(subject: Subject) -> np.ndarray:
    """Times where the state is needed: observations, covariate changes, steady-state resets.

    A dose record alone is no breakpoint: its doses are terms inside an interval, so a
    record per dose costs a term, not a step of the sequential pass.
    """
    needed = subject.evid == 0
    needed[0] = True
    needed |= (subject.evid == 1) & (subject.ss == 1)
    for column in subject.covariates.values():
        needed[1:] |= column[1:] != column[:-1]
    return np.unique(subject.time[needed])


def build_schedule(subject: Subject, start: np.ndarray) -> Schedule:
    """The schedule for dose start times ``start`` (S, D) (record time + lag)."""
    doses = subject.doses
    times = subject.time[doses]
    ii = subject.ii[doses]
    last_q = np.where(ii > 0, subject.addl[doses], 0).astype(float)
    breakpoints = _breakpoints(subject)
    record_of = np.searchsorted(breakpoints, subject.time, side="right") - 1
    count_bp = len(breakpoints)
    interval_records = (np.searchsorted(subject.time, breakpoints, side="right") - 1)[:-1]
    steady = subject.ss[doses] == 1
    safe_ii = np.where(ii > 0, ii, 1.0)

    # Steady-state doses: every dose of the infinite past up to the record is in the reset.
    past = np.floor((times - start) / safe_ii + TOLERANCE_H)  # (S, D), meaningful where SS
    first_q = np.where(steady, past + 1, 0.0)
    reset_columns = np.flatnonzero(steady)
    # A steady-state record is a breakpoint itself: the reset belongs to its own time (a
    # breakpoint a hair later, within the tolerance, must not take it).
    reset_at = np.searchsorted(breakpoints, times[reset_columns])
    reset_since = times[reset_columns] - (start + past * ii)[:, reset_columns]

    first_interval = np.searchsorted(breakpoints, times + TOLERANCE_H, side="right") - 1
    final = (start + last_q * ii).max(axis=0)
    last_interval = np.minimum(
        np.searchsorted(breakpoints, final + TOLERANCE_H, side="right") - 1, count_bp - 2
    )
    spans = np.maximum(last_interval - first_interval + 1, 0)
    column = np.repeat(np.arange(len(doses)), spans)
    offsets = np.cumsum(spans) - spans
    interval = first_interval[column] + np.arange(spans.sum(), dtype=int) - offsets[column]
    low, high = breakpoints[interval], breakpoints[interval + 1]
    start_p, ii_p, safe_p = start[:, column], ii[column], safe_ii[column]
    repeated = ii_p > 0
    q_low = np.where(
        repeated,
        np.maximum(first_q[:, column], np.ceil((low - TOLERANCE_H - start_p) / safe_p)),
        0.0,
    )
    single_inside = (start_p >= low - TOLERANCE_H) & (start_p < high - TOLERANCE_H)
    q_high = np.where(
        repeated,
        np.minimum(last_q[column], np.ceil((high - TOLERANCE_H - start_p) / safe_p) - 1),
        np.where(single_inside, 0.0, -1.0),
    )
    count = q_high - q_low + 1
    keep = np.any(count >= 1, axis=0)
    column, interval, count, q_high = column[keep], interval[keep], count[:, keep], q_high[:, keep]
    delta = high[keep] - (start_p[:, keep] + q_high * ii_p[keep])

    # Train keys: Φ(II) and g depend on the parameters of a record and on II only.
    pair_records = interval_records[interval]
    reset_records = doses[reset_columns]
    all_records = np.concatenate([pair_records, reset_records])
    all_ii = np.concatenate([ii[column], ii[reset_columns]])
    keys, key_index = np.unique(np.stack([all_records, all_ii]), axis=1, return_inverse=True)
    key_index = key_index.reshape(-1)
    return Schedule(
        breakpoints=breakpoints,
        record_of=record_of,
        interval_records=interval_records,
        pair_interval=interval,
        pair_column=column,
        pair_delta=delta,
        pair_count=np.maximum(count, 0.0),
        pair_key=key_index[: len(interval)],
        reset_at=reset_at,
        reset_column=reset_columns,
        reset_since=reset_since,
        reset_key=key_index[len(interval) :],
        key_record=keys[0].astype(int),
        key_ii=keys[1],
    )


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

    def concentrations(self, records: np.ndarray | None = None) -> np.ndarray:
        """(B, n) concentrations at the observation records, or at other EVID 0 records."""
        subject, system = self.subject, self.system
        records = subject.observed if records is None else np.asarray(records, int)
        if np.any(subject.evid[records] != 0):
            raise ValueError("concentrations are computed at observation (EVID 0) records")
        schedule = self._schedule()
        states = self._states(schedule)
        amounts = states[:, schedule.record_of[records], system.central]
        volume = system.volume[:, records]
        return np.maximum(amounts / volume * self.model.scale, 0.0)

    def _schedule(self) -> Schedule:
        doses = self.subject.doses
        lag = self.parameters.get("ALAG")
        if lag is None:
            cached = self.subject.cache.get("schedule")
            if cached is None:
                cached = build_schedule(self.subject, self.subject.time[doses][None, :])
                self.subject.cache["schedule"] = cached
            return cached
        return build_schedule(self.subject, self.subject.time[doses] + lag[:, doses])

    def _states(self, schedule: Schedule) -> np.ndarray:
        """State at each breakpoint (after a steady-state reset there): (B, M, n)."""
        system, subject = self.system, self.subject
        batch, n = self.etas.shape[0], system.size
        count = len(schedule.breakpoints)
        intervals = count - 1
        gaps = np.broadcast_to(np.diff(schedule.breakpoints), (batch, intervals))
        keys = len(schedule.key_ii)
        # One flow evaluation for the intervals and for Φ(II) of every train key.
        matrices = flow(
            system,
            np.concatenate([schedule.interval_records, schedule.key_record]),
            np.concatenate([gaps, np.broadcast_to(schedule.key_ii, (batch, keys))], axis=1),
        )
        flows, phi_ii = matrices[:, :intervals], matrices[:, intervals:]
        dose = np.zeros((batch, keys, n))
        dose[..., 0] = 1.0
        repeated = schedule.key_ii > 0
        if repeated.any():
            dose[:, repeated] = np.linalg.solve(
                np.eye(n) - phi_ii[:, repeated], dose[:, repeated][..., None]
            )[..., 0]

        amount = np.broadcast_to(subject.amt[subject.doses], (batch, len(subject.doses)))
        fraction = self.parameters.get("F")
        if fraction is not None:
            amount = amount * fraction[:, subject.doses]

        # One flow evaluation for every dose term: the near and far ends of each geometric
        # series, and the steady-state resets.
        pairs, resets = len(schedule.pair_interval), len(schedule.reset_at)
        pair_ii = schedule.key_ii[schedule.pair_key]
        delta = np.broadcast_to(schedule.pair_delta, (batch, pairs))
        far_delta = delta + np.broadcast_to(schedule.pair_count, (batch, pairs)) * pair_ii
        pair_records = schedule.interval_records[schedule.pair_interval]
        reset_records = schedule.key_record[schedule.reset_key]
        terms = flow(
            system,
            np.concatenate([pair_records, pair_records, reset_records]),
            np.concatenate(
                [delta, far_delta, np.broadcast_to(schedule.reset_since, (batch, resets))], axis=1
            ),
        )
        vectors = dose[
            :, np.concatenate([schedule.pair_key, schedule.pair_key, schedule.reset_key])
        ]
        moved = np.matmul(terms, vectors[..., None])[..., 0]
        near, far, reset = moved[:, :pairs], moved[:, pairs : 2 * pairs], moved[:, 2 * pairs :]
        far[:, pair_ii == 0] = 0.0
        has_doses = np.broadcast_to(schedule.pair_count, (batch, pairs)) >= 1
        weight = np.where(has_doses, amount[:, schedule.pair_column], 0.0)
        inputs = np.zeros((batch, intervals, n))
        np.add.at(inputs, (slice(None), schedule.pair_interval), weight[..., None] * (near - far))
        reset_states = {
            int(at): amount[:, column, None] * reset[:, z]
            for z, (at, column) in enumerate(
                zip(schedule.reset_at, schedule.reset_column, strict=True)
            )
        }

        # The sequential pass, interval-major so each step reads contiguous memory.
        flows = np.ascontiguousarray(flows.transpose(1, 0, 2, 3))
        inputs = np.ascontiguousarray(inputs.transpose(1, 0, 2))
        states = np.empty((count, batch, n))
        state = np.zeros((batch, n))
        for i in range(count):
            if i in reset_states:
                state = reset_states[i]
            states[i] = state
            if i < intervals:
                state = np.matmul(flows[i], state[..., None])[..., 0] + inputs[i]
        return states.transpose(1, 0, 2)


def predict(model: Model, subject: Subject, eta) -> np.ndarray:
    """Concentrations at the subject's observation records for one ETA vector."""
    return Simulation(model, subject, np.asarray(eta, float)[None, :]).concentrations()[0]


def predict_batch(model: Model, subject: Subject, etas: np.ndarray) -> np.ndarray:
    """(B, n_obs) for B ETA vectors at once."""
    return Simulation(model, subject, etas).concentrations()
