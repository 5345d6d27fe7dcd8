"""One layer of prefill P4 as a multiple-choice knapsack: the data every prefill
method (the MILP routes, the LP relaxation) builds from.

Per token the choices are the *invoked sets* its allowed profiles reach (profiles
with the same set cost the same energy and device time; the one with the least
deviation represents it). The layer's problem:
``min sum_j energy(S_j)`` s.t. ``sum_j time_k(S_j) <= T`` for every device ``k``
(eq. 10 with the loads of the chosen sets), one set per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .candidates import Candidates, _on_axis


@dataclass(frozen=True)
class LayerChoices:
    """Columns ``n`` = the (token, invoked set) pairs of layer ``layer``."""

    layer: int
    n_tokens: int
    token: np.ndarray        # [n] token of the column
    profile: np.ndarray      # [n] profile index that realizes it (least deviation)
    set_id: np.ndarray       # [n] index of its invoked set in this layer
    energy: np.ndarray       # [n]
    time: np.ndarray         # [n, U] device time the column adds
    deadline: float

    @property
    def timed_devices(self) -> np.ndarray:
        """Devices whose deadline row can bind (a finite deadline and some use)."""
        if not np.isfinite(self.deadline):
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero((self.time > 0).any(axis=0))

    def choice(self, columns: np.ndarray) -> np.ndarray:
        """``[J]`` profile per token from one chosen column per token."""
        out = np.empty(self.n_tokens, dtype=np.int64)
        out[self.token[columns]] = self.profile[columns]
        return out


def layer_choices(cand: Candidates, i: int) -> LayerChoices:
    """Build layer ``i``'s columns from the candidate tables."""
    _, J, K, _ = cand.slot_target.shape
    U = cand.problem.instance.n_devices
    # each profile's invoked set as an expert bit mask, on the code axes (no gather)
    tg = cand.slot_target[i]
    bit = np.where(tg >= 0, np.left_shift(np.int64(1), np.maximum(tg, 0)), 0)
    keys = sum(_on_axis(bit, s, K) for s in range(K)).reshape(J, -1)      # [J, P]
    energy = cand.layer_energy(i)                                       # [J, P]
    j, p = np.nonzero(np.isfinite(energy))
    _, set_all = np.unique(keys[j, p], return_inverse=True)  # every set occurs: same ids
    pair = j * (int(set_all.max(initial=0)) + 1) + set_all           # (token, set)
    # per (token, set): the least deviation, ties the first profile (one stable integer
    # sort and a segment minimum; the same pick as a lexsort by (pair, deviation))
    order = np.argsort(pair, kind="stable")
    pair, dev = pair[order], cand.layer_deviation(i)[j[order], p[order]]
    start = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    least = np.repeat(np.minimum.reduceat(dev, start), np.diff(np.r_[start, len(pair)]))
    first = np.flatnonzero(dev == least)
    seg = np.searchsorted(start, first, side="right") - 1
    keep = order[first[np.r_[True, seg[1:] != seg[:-1]]]]
    j, p, set_id = j[keep], p[keep], set_all[keep].astype(np.int64)
    # the device time of a column depends on its set only (per device, the first
    # invoked expert adds a + c and every later one a, in any slot order): sum it once
    # per set, slot by slot in the order np.add.at would add them (same sums)
    _, rep = np.unique(set_id, return_index=True)
    _, d, _, st = cand.gather(np.full(len(rep), i), j[rep], p[rep])     # [S, K]
    flat = (np.arange(len(rep))[:, None] * U + d).T.ravel()
    on = d.T.ravel() >= 0
    set_time = np.bincount(flat[on], weights=st.T.ravel()[on],
                           minlength=len(rep) * U).reshape(len(rep), U)
    return LayerChoices(i, J, j, p, set_id, energy[j, p], set_time[set_id],
                        float(cand.problem.layer_deadline[i]))
