"""The leader's problem restricted to one follower profile, up to the tie surfaces.

For a profile ``q`` (one candidate selection per layer, :mod:`.enumerate`) the
leader's best bilevel-feasible point that keeps ``q`` is

    ``min_B sum_i max_k t[i, k](q_i, B_k)``  s.t.  ``sum_k B_k = B_total``,
    ``WLR_i(q_i, B) >= WLR_i(q', B)`` for every layer ``i`` and candidate ``q'``,

eq. (13) over the closure of ``q``'s best-response region: on its boundary (a tie
surface, where the follower is indifferent) the optimistic tie rule lets the
leader keep ``q``. When P3's optimum for ``q`` (eqs. 19-21) lies outside the
region, this optimum lies on a tie surface, which box sampling never hits; this
module finds it by a local solve (SLSQP on the epigraph form, bandwidth
normalized to the simplex ``sum b = 1``).

Under the identity placement with slow fading the problem is convex in
``y_k = 1 / (c_k(B_k) + a_k)``: ``WLR_i(q, B) = sum_k wbar_k(q) y_k`` with
``wbar_k`` the mean gate weight of the tokens ``q`` sends to device ``k`` (eq. 12
with ``u = p``), so the region is a polyhedral cone in ``y``, the objective
``sum_i max_k u[i, k] / y_k`` is convex, and ``B_k(y_k)`` is convex (``y_k(B_k)``
is concave: a concave increasing function of the harmonic combination of the two
concave link rates). In ``B`` the region is not convex in general (shared
placement or fast fading) and the solve is local: its point is only an
incumbent, scored exactly by :func:`.enumerate.leader_choice`; the proof of
optimality stays with the branch and bound of :mod:`.bilevel`.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize

from ..model import Instance
from ..model import latency as lat
from .enumerate import LayerCandidates, device_times

#: Floor on a device's normalized bandwidth where it is evaluated (``R(0) = 0``).
_B_FLOOR = 1e-12
#: Least normalized bandwidth of a device the profile loads (its time grows as ``1 / B``).
_LOADED_FLOOR = 1e-6


def _comm_slope(instance: Instance, bandwidth_hz: np.ndarray) -> np.ndarray:
    """``d c_k / d B_k = -L R' / R^2`` of eq. (6), summed over both directions, ``[I, U]``
    (:func:`~wdmoe_opt.model.latency.rate_and_slope`; 0 on a ``local`` device)."""
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    rate, d_rate = lat.rate_and_slope(b, instance.received_power_w,           # [2, R, U]
                                      instance.system.noise_psd_w_per_hz)
    slope = -instance.model.token_bits * d_rate / rate ** 2
    slope = np.where(instance.system.local_mask, 0.0, slope.sum(axis=0))
    return np.broadcast_to(slope, (instance.n_layers, instance.n_devices))


def tie_surface_point(instance: Instance, cands: list[LayerCandidates], profile,
                      start_hz: np.ndarray, max_iter: int = 100) -> np.ndarray | None:
    """A local optimum of the leader's problem restricted to ``profile`` (module
    docstring), from ``start_hz``; ``None`` when the solve fails.

    Parameters
    ----------
    instance, cands
        The instance and its per-layer candidate selections.
    profile
        ``[I]`` candidate index per layer.
    start_hz
        ``[U]`` starting bandwidth on the simplex.
    max_iter
        Iteration cap of SLSQP.

    Returns
    -------
    numpy.ndarray or None
        ``[U]`` bandwidth in Hz on the simplex (eq. 21).
    """
    total = instance.system.total_bandwidth_hz
    U, I = instance.n_devices, len(cands)
    profile = [int(s) for s in profile]
    # candidates whose WLR equals q_i's at every bandwidth are permanent ties: no constraint
    rivals = [~((c.u == c.u[s]).all(axis=1) & (c.p == c.p[s]).all(axis=1)
                & (c.num == c.num[s]).all(axis=1)) for c, s in zip(cands, profile, strict=True)]
    memo: dict[bytes, list] = {}

    def layers(b):
        """Per layer: times ``[n, U]``, their slopes in ``b`` and WLR terms ``[n, U]``."""
        key = b.tobytes()
        if key not in memo:
            hz = np.maximum(b, _B_FLOOR) * total
            slope = _comm_slope(instance, hz) * total
            memo.clear()
            memo[key] = [(t := device_times(instance, c, hz), c.u * slope[c.layer],
                          lat.wlr_from_times(c.num, t)) for c in cands]
        return memo[key]

    times0 = layers(np.asarray(start_hz, float) / total)
    t_scale = sum(t[s].max() for (t, _, _), s in zip(times0, profile, strict=True))
    w_scale = [f[s].sum() for (_, _, f), s in zip(times0, profile, strict=True)]
    loaded = [c.u[s] > 0 for c, s in zip(cands, profile, strict=True)]

    def latency(x):
        return np.concatenate([x[U + i] - t[s][m] / t_scale for i, ((t, _, _), s, m)
                               in enumerate(zip(layers(x[:U]), profile, loaded, strict=True))])

    def latency_jac(x):
        rows = []
        for i, ((_, dt, _), s, m) in enumerate(zip(layers(x[:U]), profile, loaded, strict=True)):
            block = np.zeros((int(m.sum()), U + I))
            block[:, :U] = -np.diag(dt[s] / t_scale)[m]
            block[:, U + i] = 1.0
            rows.append(block)
        return np.vstack(rows)

    def ties(x):
        return np.concatenate([(f[s].sum() - f[r].sum(axis=1)) / w0 for (_, _, f), s, r, w0
                               in zip(layers(x[:U]), profile, rivals, w_scale, strict=True)])

    def ties_jac(x):
        rows = []
        for (t, dt, f), s, r, w0 in zip(layers(x[:U]), profile, rivals, w_scale, strict=True):
            dw = np.divide(-f * dt, t, out=np.zeros_like(f), where=t > 0)   # d WLR terms / d b
            block = np.zeros((int(r.sum()), U + I))
            block[:, :U] = (dw[s] - dw[r]) / w0
            rows.append(block)
        return np.vstack(rows)

    x0 = np.concatenate([np.asarray(start_hz, float) / total,
                         [t[s].max() / t_scale
                          for (t, _, _), s in zip(times0, profile, strict=True)]])
    cost = np.concatenate([np.zeros(U), np.ones(I)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = minimize(lambda x: x @ cost, x0, jac=lambda x: cost, method="SLSQP",
                       bounds=[(_LOADED_FLOOR if m else 0.0, 1.0) for m in np.any(loaded, axis=0)]
                       + [(0.0, None)] * I,
                       constraints=[{"type": "eq", "fun": lambda x: x[:U].sum() - 1.0,
                                     "jac": lambda x: np.r_[np.ones(U), np.zeros(I)]},
                                    {"type": "ineq", "fun": latency, "jac": latency_jac},
                                    {"type": "ineq", "fun": ties, "jac": ties_jac}],
                       options={"maxiter": max_iter, "ftol": 1e-12})
    b = np.clip(res.x[:U], 0.0, None)
    if not np.isfinite(b).all() or b.sum() <= 0:
        return None
    return b / b.sum() * total
