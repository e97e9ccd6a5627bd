"""Exact solution of the linear compartment models, without a numerical ODE solver.

The state is ``[a_1 … a_N, central, (peripheral)]``: an absorption chain of N compartments
that all empty at the same rate k (N = 1 with k = KA is first-order absorption; N transit
compartments with k = KTR is the Erlang chain), feeding one- or two-compartment disposition.
The flow over a time t, Φ(t) = exp(A t), is written in closed form:

- the chain block is the Erlang/Poisson kernel ``e^{-kt} (kt)^p / p!`` (a Jordan block, so
  an eigen-decomposition would fail exactly where the transit model lives);
- the disposition block is ``W diag(e^{μt}) W⁻¹`` with the one or two (always distinct)
  disposition eigenvalues μ;
- the chain-to-disposition coupling is ``I_m(μ, t) = ∫₀ᵗ e^{μ(t−s)} k (ks)^m/m! e^{−ks} ds
  = k^{m+1} t^{m+1} e^{−kt} E_m((k+μ)t)`` with ``E_m(z) = Σ_j z^j/(j+m+1)!``, evaluated by
  whichever form is accurate for z (series near 0, the regularised incomplete gamma function
  of integer order for large z > 0, the finite closed form far below 0). This is the
  classical Bateman function made safe for k ≈ elimination rate, where textbook formulas
  divide by zero.

Every function works on a batch: parameter sets (B) × evaluation points (P).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_FACTORIALS = np.array([math.factorial(i) for i in range(171)], float)


@dataclass
class System:
    """Per parameter set (B) and record (R): what Φ(t) needs, precomputed once."""

    chain: int  # N
    k: np.ndarray  # (B, R) absorption (or transit) rate
    mu: np.ndarray  # (B, R, nd) disposition eigenvalues (negative)
    w: np.ndarray  # (B, R, nd, nd) eigenvectors (columns)
    w_inv: np.ndarray  # (B, R, nd, nd)
    volume: np.ndarray  # (B, R) central volume

    @property
    def size(self) -> int:
        return self.chain + self.mu.shape[-1]

    @property
    def central(self) -> int:
        return self.chain


def build_system(parameters: dict[str, np.ndarray], disposition: str, absorption: str, chain: int):
    k = parameters["KA"] if absorption == "first_order" else parameters["KTR"]
    cl = parameters["CL"]
    if disposition == "one_compartment":
        volume = parameters["V"]
        mu = (-cl / volume)[..., None]
        w = np.ones(mu.shape + (1,))
        w_inv = np.ones_like(w)
    else:
        volume, q, v2 = parameters["V1"], parameters["Q"], parameters["V2"]
        k10, k12, k21 = cl / volume, q / volume, q / v2
        s = k10 + k12 + k21
        root = np.sqrt(np.maximum(s * s - 4 * k10 * k21, 0.0))
        alpha = (s + root) / 2
        beta = np.where(alpha > 0, k10 * k21 / np.where(alpha > 0, alpha, 1.0), 0.0)
        mu = np.stack([-alpha, -beta], axis=-1)
        # Eigenvector of eigenvalue m: (k21, m + k10 + k12).
        w = np.empty(mu.shape + (2,))
        w[..., 0, :] = k21[..., None]
        w[..., 1, :] = mu + (k10 + k12)[..., None]
        det = w[..., 0, 0] * w[..., 1, 1] - w[..., 0, 1] * w[..., 1, 0]
        w_inv = np.empty_like(w)
        w_inv[..., 0, 0] = w[..., 1, 1] / det
        w_inv[..., 0, 1] = -w[..., 0, 1] / det
        w_inv[..., 1, 0] = -w[..., 1, 0] / det
        w_inv[..., 1, 1] = w[..., 0, 0] / det
    return System(chain=chain, k=np.asarray(k, float), mu=mu, w=w, w_inv=w_inv, volume=volume)


def _series(z: np.ndarray, m: int, terms: int) -> np.ndarray:
    """E_m(z) = Σ_{j<terms} z^j / (j+m+1)!, by Horner's rule."""
    result = np.zeros_like(z)
    for j in range(terms - 1, -1, -1):
        result = result * z + 1.0 / _FACTORIALS[j + m + 1]
    return result


def coupling(m: int, k: np.ndarray, mu: np.ndarray, t: np.ndarray) -> np.ndarray:
    """I_m(μ, t) for arrays of equal shape (k and μ broadcast to t)."""
    return couplings(m + 1, k, mu, t)[m]


def couplings(count: int, k: np.ndarray, mu: np.ndarray, t: np.ndarray) -> np.ndarray:
    """I_0 … I_{count−1} at once: (count, *shape). Most points lie where z = (k+μ)t is
    large, and there all orders share one pass (one exp each, the partial sums of e^z
    grown term by term); the few points elsewhere are done order by order."""
    k, mu, t = np.broadcast_arrays(k, mu, t)
    d = k + mu
    z = d * t
    result = np.empty((count,) + t.shape)
    # P(m+1, z) = 1 − e^{−z} Σ_{i≤m} z^i/i! (integer order): accurate for z ≥ m + 2,
    # where P > 0.6; the highest order needs the largest z, so it decides for all.
    above = z >= count + 1.0
    if above.any():
        za = z[above]
        ratio = k[above] / d[above]
        decay = np.exp(-za)
        modes = np.exp(mu[above] * t[above])
        term = np.ones_like(za)
        partial = term.copy()
        power = ratio.copy()
        for m in range(count):
            if m:
                term = term * za / m
                partial = partial + term
                power = power * ratio
            result[m][above] = power * modes * (1.0 - decay * partial)
    rest = ~above
    if rest.any():
        for m in range(count):
            result[m][rest] = _coupling_rest(m, k[rest], mu[rest], t[rest], z[rest])
    return result


def _coupling_rest(m, k, mu, t, z) -> np.ndarray:
    """I_m where z < count + 1: the series near zero, the closed forms below it."""
    kt = k * t
    result = np.empty_like(t)
    # Near zero, and below the closed form's cancellation zone: the series (positive terms
    # for z > 0, so no cancellation; 30 terms reach 1e-16 for z < m + 2 up to m = 10).
    near = (z > -1.0) & (z < m + 2.0)
    if near.any():
        result[near] = (k[near] * t[near]) ** (m + 1) * np.exp(-kt[near]) * _series(z[near], m, 30)
    above = z >= m + 2.0
    if above.any():
        za = z[above]
        term = np.ones_like(za)
        partial = term.copy()
        for i in range(1, m + 1):
            term = term * za / i
            partial = partial + term
        ratio = k[above] / (za / t[above])
        result[above] = (
            ratio ** (m + 1) * np.exp(mu[above] * t[above]) * (1.0 - np.exp(-za) * partial)
        )
    below = z <= -1.0
    if below.any():
        zb, kb, tb = z[below], k[below], t[below]
        if m == 0:
            result[below] = kb * tb * np.exp(-kt[below]) * np.expm1(zb) / zb
        else:
            far = -zb > m + 10
            values = np.empty_like(zb)
            if far.any():
                zf = zb[far]
                partial = sum(zf**i / _FACTORIALS[i] for i in range(m + 1))
                values[far] = (np.exp(zf) - partial) / zf ** (m + 1)
            if (~far).any():
                values[~far] = _series(zb[~far], m, 90)
            result[below] = (kb * tb) ** (m + 1) * np.exp(-kt[below]) * values
    return result


def flow(system: System, records: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Φ(t) = exp(A t) as matrices: (B, P, n, n) for records (P,) and times (B, P)."""
    n_chain, n = system.chain, system.size
    k = system.k[:, records]  # (B, P)
    mu = system.mu[:, records]  # (B, P, nd)
    w = system.w[:, records]
    w_inv = system.w_inv[:, records]
    out = np.zeros(t.shape + (n, n))

    kt = k * t
    poisson = np.exp(-kt)
    for p in range(n_chain):  # chain: e^{-kt} (kt)^p / p! below the diagonal
        if p:
            poisson = poisson * kt / p
        for j in range(n_chain - p):
            out[..., j + p, j] = poisson

    modes = np.exp(mu * t[..., None])  # (B, P, nd)
    out[..., n_chain:, n_chain:] = np.matmul(w * modes[..., None, :], w_inv)
    into_central = w_inv[..., :, 0]  # how a unit into the central compartment loads each mode
    t_modes = np.broadcast_to(t[..., None], mu.shape)
    k_modes = np.broadcast_to(k[..., None], mu.shape)
    for m, integral in enumerate(couplings(n_chain, k_modes, mu, t_modes)):
        loaded = into_central * integral
        out[..., n_chain:, n_chain - 1 - m] = np.matmul(w, loaded[..., None])[..., 0]
    return out
