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


def _timed_devices(time: np.ndarray, deadline: float) -> np.ndarray:
    """Devices of ``time`` ``[n, U]`` whose deadline row can bind: a finite deadline
    and some use."""
    if not np.isfinite(deadline):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero((time > 0).any(axis=0))


@dataclass(frozen=True)
class LayerSets:
    """The invoked sets ``S`` of layer ``layer``: which each token may take, and what
    each costs. Set ids are the ranks of the sets' expert bit masks among the sets
    some token may take."""

    layer: int
    allowed: np.ndarray      # [J, S] bool: some allowed profile of the token invokes S
    energy: np.ndarray       # [S]
    time: np.ndarray         # [S, U] device time one token of the set adds
    deadline: float
    token_row: np.ndarray    # [J] the token's row among the layer's distinct rows
    members: np.ndarray      # [R, S, m] profiles of each (row, set), ascending; -1: none

    @property
    def n_tokens(self) -> int:
        return self.allowed.shape[0]

    @property
    def timed_devices(self) -> np.ndarray:
        """Devices whose deadline row can bind (a finite deadline and some use)."""
        return _timed_devices(self.time, self.deadline)

    def profiles(self, cand: Candidates, token: np.ndarray, sets: np.ndarray) -> np.ndarray:
        """The profile that realizes set ``sets[k]`` for token ``token[k]``: the least
        deviation among its allowed profiles of that set (ties: the first)."""
        return _least_deviation(cand, self.layer, self.members[self.token_row[token], sets],
                                token)


def _least_deviation(cand: Candidates, i: int, q: np.ndarray, token: np.ndarray) -> np.ndarray:
    """Per row of ``q`` ``[n, m]`` (profiles of layer ``i``, ``-1``: none), the allowed
    one of least deviation for token ``token[k]`` (ties: the first)."""
    q0 = np.maximum(q, 0)
    dev = cand.deviation_at(np.full((len(token), 1), i), token[:, None], q0)
    ok = (q >= 0) & cand.within_budget(i, dev)
    return q0[np.arange(len(q0)), np.argmin(np.where(ok, dev, np.inf), axis=1)]


def layer_sets(cand: Candidates, i: int) -> LayerSets:
    """Build layer ``i``'s sets from the candidate tables (tokens of one row share its
    profiles' sets: they are built once per row)."""
    J, K = cand.row.shape[1], cand.codes.shape[1]
    P = len(cand.codes)
    U = cand.problem.instance.n_devices
    rows, token_row = np.unique(cand.row[i], return_inverse=True)
    # each profile's invoked set as an expert bit mask, per row on the code axes
    tg = cand.slot_target[rows]                                       # [R, K, C]
    bit = np.where(tg >= 0, np.left_shift(np.int64(1), np.maximum(tg, 0)), 0)
    keys = sum(_on_axis(bit, s, K) for s in range(K)).reshape(len(rows), P)   # [R, P]
    j, p = np.nonzero(cand.layer_allowed(i))
    rp = token_row[j] * P + p                                         # (row, profile)
    used = np.zeros(len(rows) * P, dtype=bool)
    used[rp] = True
    uk = np.unique(keys.ravel()[used])                                # the sets, by key
    S = len(uk)
    set_of = np.where(used, np.searchsorted(uk, keys.ravel()), S)     # [R * P]; S: unused
    allowed = np.zeros((J, S), dtype=bool)
    allowed[j, set_of[rp]] = True
    # members[r, S, k]: the profiles of row r invoking set S, ascending
    order = np.argsort(set_of.reshape(len(rows), P), axis=1, kind="stable")
    sorted_set = np.take_along_axis(set_of.reshape(len(rows), P), order, axis=1)
    new = np.c_[np.ones(len(rows), dtype=bool), sorted_set[:, 1:] != sorted_set[:, :-1]]
    start = np.maximum.accumulate(np.where(new, np.arange(P), 0), axis=1)
    k = np.arange(P) - start
    on = sorted_set < S
    m = int(k[on].max(initial=0)) + 1
    members = np.full((len(rows), S + 1, m), -1, dtype=np.intp)
    r = np.nonzero(on)
    members[r[0], sorted_set[r], k[r]] = order[r]
    members = members[:, :S]
    # a set's energy and device time, from one token taking it (the last, as the
    # columns gave it: its energy may differ from another profile's in the last bit
    # for K > 2, the sums running in another slot order); the device time depends on
    # the set only (per device, the first invoked expert adds a + c and every later
    # one a), summed slot by slot as np.add.at would
    last = J - 1 - np.argmax(allowed[::-1], axis=0)                   # [S]
    rep = _least_deviation(cand, i, members[token_row[last], np.arange(S)], last)
    _, d, _, st = cand.gather(np.full(S, i), last, rep)                # [S, K]
    flat = (np.arange(S)[:, None] * U + d).T.ravel()
    on = d.T.ravel() >= 0
    set_time = np.bincount(flat[on], weights=st.T.ravel()[on],
                           minlength=S * U).reshape(S, U)
    energy = cand.row_energy[rows[token_row[last]], rep]
    return LayerSets(i, allowed, energy, set_time, float(cand.problem.layer_deadline[i]),
                     token_row, members)


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
        return _timed_devices(self.time, self.deadline)

    def choice(self, columns: np.ndarray) -> np.ndarray:
        """``[J]`` profile per token from one chosen column per token."""
        out = np.empty(self.n_tokens, dtype=np.int64)
        out[self.token[columns]] = self.profile[columns]
        return out


def layer_choices(cand: Candidates, i: int) -> LayerChoices:
    """Layer ``i``'s columns (sorted by token, then set) from its sets."""
    ls = layer_sets(cand, i)
    j, set_id = np.nonzero(ls.allowed)
    p = ls.profiles(cand, j, set_id)
    return LayerChoices(i, ls.n_tokens, j, p, set_id,
                        cand.row_energy[np.asarray(cand.row[i])[j], p], ls.time[set_id],
                        ls.deadline)
