"""The exact P2 as a MILP, per layer: the data both routes (Pyomo, highspy) build from.

P2 separates by layer (``t[i, k]`` and ``WLR[i, k]`` only see layer ``i``), so each
layer is one MILP. The objective ``sum_k N_k / t_k`` (eq. 12) is a sum of ratios
whose denominator ``t_k = u_k c_k + p_k a_k`` (eq. 10) takes finitely many values,
one per *level* ``(u, p)`` of the loads. It is linearized exactly:

* ``q[j, e]`` binary for each allowed (token, expert) pair; each token keeps >= 1
  (eq. 16);
* ``x[j, k]`` binary, "token ``j`` is sent to device ``k``" (shared placement only;
  ``x >= q[j, e]`` for ``e`` on ``k`` and ``x <= sum_e q[j, e]``); under the identity
  placement ``x = q`` and ``u = p``;
* ``z[k, l]`` binary picks device ``k``'s level ``l`` (at most one; none = no load),
  with ``sum_l u_l z = sum_j x[j, k]`` and ``sum_l p_l z = sum q`` on ``k``;
* ``y[k, l] >= 0`` carries the numerator at the chosen level:
  ``sum_l y = sum_{j, e on k} w q`` and ``y <= M_l z`` with
  ``M_l`` = the sum of the ``p_l`` largest allowed weights on ``k`` (a tight bound);
* objective ``max sum_{k, l} y[k, l] / (u_l c_k + p_l a_k)``.

Every level is exact (no approximation): at a binary ``z`` the objective equals
eq. (12)'s total for that layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .common import LayerTimes


@dataclass(frozen=True)
class LayerMilp:
    """One layer's MILP data (0-based ids; columns ``q | x | z | y``).

    ``pair_*`` index the allowed (token, expert) pairs (the ``q`` columns);
    ``x_token, x_device`` the (token, device) links (empty under identity, where
    ``pair_x`` then points at the pair itself); ``level_*`` the (device, u, p)
    levels with their objective coefficient ``1 / t`` and big-M.
    """

    n_tokens: int
    n_devices: int
    identity: bool
    pair_token: np.ndarray
    pair_expert: np.ndarray
    pair_device: np.ndarray
    pair_weight: np.ndarray
    pair_x: np.ndarray
    x_token: np.ndarray
    x_device: np.ndarray
    level_device: np.ndarray
    level_u: np.ndarray
    level_p: np.ndarray
    level_coef: np.ndarray
    level_bound: np.ndarray

    @property
    def n_q(self) -> int:
        return len(self.pair_token)

    @property
    def n_x(self) -> int:
        return len(self.x_token)

    @property
    def n_levels(self) -> int:
        return len(self.level_device)

    def start(self, kept: np.ndarray) -> dict[str, np.ndarray]:
        """Column values of a feasible point from a ``[J, E]`` mask (a warm start)."""
        q = kept[self.pair_token, self.pair_expert].astype(np.float64)
        p_of = np.bincount(self.pair_device, weights=q, minlength=self.n_devices)
        x = np.zeros(self.n_x)
        if self.identity:
            u_of = p_of
        else:
            np.maximum.at(x, self.pair_x, q)
            u_of = np.bincount(self.x_device, weights=x, minlength=self.n_devices)
        n_of = np.bincount(self.pair_device, weights=q * self.pair_weight,
                           minlength=self.n_devices)
        z = ((self.level_u == u_of[self.level_device])
             & (self.level_p == p_of[self.level_device])).astype(np.float64)
        return {"q": q, "x": x, "z": z, "y": z * n_of[self.level_device]}

    def mask(self, q: np.ndarray, n_experts: int) -> np.ndarray:
        """The ``[J, E]`` mask of a (rounded) ``q`` column vector."""
        kept = np.zeros((self.n_tokens, n_experts), dtype=bool)
        on = np.asarray(q) > 0.5
        kept[self.pair_token[on], self.pair_expert[on]] = True
        return kept


#: Levels above which a layer's MILP is refused (shared placement grows as u x p).
MAX_LEVELS = 200_000


def layer_milp(times: LayerTimes, allowed: np.ndarray, i: int) -> LayerMilp:
    """Build layer ``i``'s MILP data (see the module docstring)."""
    inst = times.instance
    U = inst.n_devices
    pl = inst.placement[i]
    j_idx, e_idx = np.nonzero(allowed[i])
    k_idx = pl[e_idx]
    w = inst.gating_weights[i, j_idx, e_idx]
    identity = inst.identity_placement
    if identity:
        link = np.arange(len(j_idx))
        x_tok = x_dev = np.zeros(0, dtype=np.int64)
    else:
        keys, link = np.unique(j_idx * U + k_idx, return_inverse=True)
        x_tok, x_dev = keys // U, keys % U
    comm, comp = times.comm[i], times.comp
    dev, lu, lp, bound = [], [], [], []
    for k in range(U):  # per device: its feasible load levels (u, p)
        on = k_idx == k
        wk = np.sort(w[on])[::-1]
        n_pairs = len(wk)
        n_links = n_pairs if identity else int(np.count_nonzero(x_dev == k))
        m_k = 1 if identity else int(np.count_nonzero(pl == k))
        u = np.arange(1, n_links + 1)
        p_lo, p_hi = u, np.minimum(n_pairs, m_k * u)
        count = p_hi - p_lo + 1
        uu = np.repeat(u, count)
        pp = np.repeat(p_lo, count) + np.arange(count.sum()) - np.repeat(
            np.cumsum(count) - count, count)
        dev.append(np.full(len(uu), k))
        lu.append(uu)
        lp.append(pp)
        bound.append(np.concatenate([[0.0], np.cumsum(wk)])[pp])
    level_device = np.concatenate(dev).astype(np.int64)
    if len(level_device) > MAX_LEVELS:
        raise InputError("instance", f"gives layer {i} too many load levels for the MILP "
                         f"({len(level_device)} > {MAX_LEVELS})", len(level_device))
    level_u, level_p = np.concatenate(lu), np.concatenate(lp)
    with np.errstate(divide="ignore"):
        t = level_u * comm[level_device] + level_p * comp[level_device]
        coef = np.where(np.isfinite(t), 1.0 / t, 0.0)
    return LayerMilp(allowed.shape[1], U, identity, j_idx, e_idx, k_idx, w, link,
                     x_tok, x_dev, level_device, level_u, level_p, coef,
                     np.concatenate(bound))
