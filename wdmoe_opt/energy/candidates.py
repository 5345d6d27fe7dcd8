"""Every token's candidate action profiles with their deviation, energy and device use.

A *profile* assigns each of a token's ``K`` router Top-K experts a code: 0 skip,
1 keep, ``2 + r`` replace by the ``r``-th nearest other expert of the layer
(nearest by ``similarity.replace``). With all ``E - 1`` replacements a token has
``(E + 1)^K`` profiles, SPEC §6's enumeration; a smaller ``replacements`` keeps
the nearest ones only (a restriction, so no longer exact). Profiles that invoke an
expert twice, or a linked device without bandwidth, are invalid.

Tables are ``[I, J, P(, K)]`` numpy arrays (``P`` profiles per token); the energy
of a profile is SPEC §6's: per device visited, one token's transmit energy, plus
each invoked expert's compute energy.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import latency as lat
from ..model.deviation import FEASIBILITY_RTOL
from .problem import EnergyProblem

#: Profiles per token above which building the tables is refused (memory).
MAX_PROFILES = 200_000
#: Elements of a chunk of the deviation table kept in cache while the mask is built.
_CHUNK = 1 << 17


@functools.cache
def profile_codes(K: int, choices: int) -> np.ndarray:
    """``[choices^K, K]`` int8: every code combination (0 skip, 1 keep, 2+ replace)."""
    return np.array(list(itertools.product(range(choices), repeat=K)), dtype=np.int8)


@dataclass(frozen=True, eq=False)
class Candidates:
    """The profile tables of a P4 problem (see the module docstring).

    Per-slot tables are ``[I, J, K, C]`` (``C = R + 2`` codes); per-profile tables
    ``[I, J, P]`` are built from them by broadcasting one code axis per slot, never
    as ``[I, J, P, K]`` arrays. The energy and validity depend on the layer and the
    Top-K tuple only, so they are built once per distinct (layer, tuple) and
    gathered per token; the deviation (weighted by the token's gate) is per token.
    The token-sized ``[I, J, P]`` tables (:attr:`deviation`, :attr:`energy`,
    :attr:`allowed`) are built on first use, layer by layer where a method needs a
    few layers only (:meth:`layer_deviation`, :meth:`layer_energy`).
    :meth:`gather` rebuilds the slots of chosen profiles.
    """

    problem: EnergyProblem
    codes: np.ndarray          # [P, K] profile codes
    slot_target: np.ndarray    # [n, K, C] per row: invoked expert (-1: skip)
    slot_device: np.ndarray    # [n, K, C] per row: its device (-1: skip)
    slot_deviation: np.ndarray  # [K, C, I, J] the slot's deviation (weighted by the gate),
    #                             tokens last: sums over the code axes run along them
    row: np.ndarray            # [I, J] the token's (layer, Top-K tuple) row
    row_layer: np.ndarray      # [n] the layer of each row
    row_energy: np.ndarray     # [n, P] energy per row and profile; inf unless valid
    comm_s: np.ndarray         # [I, U] per-token communication time c
    compute_s: np.ndarray      # [U] per-pair compute time a

    @classmethod
    def build(cls, problem: EnergyProblem, replacements: int | None = None) -> Candidates:
        inst = problem.instance
        I, J, E = inst.gating_weights.shape
        K = inst.model.top_k
        R = E - 1 if replacements is None else min(int(replacements), E - 1)
        if (R + 2) ** K > MAX_PROFILES:
            raise InputError("replacements", f"= {R} gives (R + 2)^K = {(R + 2) ** K} profiles "
                             f"per token, more than {MAX_PROFILES}: the exact methods cannot "
                             "take this model; use p4/relax with a smaller 'replacements' "
                             "option", R)
        sim = inst.similarity
        e = inst.router_topk_experts                                      # [I, J, K]
        # everything but the deviation depends on the layer and the Top-K tuple only:
        # build those tables once per distinct (layer, tuple) row, then gather
        row, inv = _distinct_topk(e, E)
        ri, re = row // J, e.reshape(I * J, K)[row]                       # [n], [n, K]
        li = ri[:, None]
        # nearest replacements: sort each row of D with the expert itself first
        d = sim.replace.copy()
        d[:, np.arange(E), np.arange(E)] = -1.0
        near = np.argsort(d, axis=2, kind="stable")[:, :, 1:R + 1]       # [I, E, R]
        target = np.concatenate([np.full(re.shape + (1,), -1), re[..., None], near[li, re]],
                                axis=-1).astype(np.int16)                 # [n, K, C]
        unit_dev = np.where(target < 0, sim.skip[li, re][..., None],
                            sim.replace[li[..., None], re[..., None], np.maximum(target, 0)])
        device = np.where(target >= 0, inst.placement[li[..., None], np.maximum(target, 0)], -1)
        b = problem.bandwidth_hz
        e_tok = lat.transmit_energy_per_token_j(inst, b)                  # [I, U]
        e_cmp = lat.compute_energy_per_token_j(inst)                      # [U]
        dev0 = np.maximum(device, 0)
        with np.errstate(invalid="ignore"):
            unit_tok = np.where(device >= 0, e_tok[li[..., None], dev0], 0.0)
        unit = unit_tok + np.where(device >= 0, e_cmp[dev0], 0.0)
        codes = profile_codes(K, R + 2)                                   # [P, K]
        # profile tables by broadcasting: slot s varies along axis 1 + s of a
        # [n, C, ..., C] array, whose row-major flattening is the order of `codes`
        ax = lambda table, s: _on_axis(table, s, K)                       # noqa: E731
        energy = sum(ax(unit, s) for s in range(K))
        valid = np.ones(energy.shape, dtype=bool)
        linked = np.isfinite(unit)                      # inf: a linked device without bandwidth
        if not linked.all():
            for s in range(K):
                valid &= ax(linked, s)
        for s in range(1, K):
            for t in range(s):
                valid &= (ax(target, s) < 0) | (ax(target, s) != ax(target, t))
            if not inst.identity_placement:       # device already visited: no transfer
                seen = np.zeros(energy.shape, dtype=bool)
                for t in range(s):
                    seen = seen | ((ax(device, s) >= 0) & (ax(device, s) == ax(device, t)))
                with np.errstate(invalid="ignore"):     # inf - inf: invalid anyway
                    energy = energy - np.where(seen, ax(unit_tok, s), 0.0)
        energy = np.where(valid, energy, np.inf).reshape(len(row), len(codes))
        # per token: the deviation of each slot (weighted by the gate); the profile
        # deviation (their sum) and the budget mask are token-sized, built on use
        w = inst.router_topk_weights                                      # [I, J, K]
        slot_dev = np.take(unit_dev.transpose(1, 2, 0), inv, axis=2)     # [K, C, I, J]
        slot_dev *= w.transpose(2, 0, 1)[:, None]
        return cls(problem, codes, target, device, slot_dev, inv, ri, energy,
                   np.ascontiguousarray(lat.comm_time_per_token_s(inst, b)),
                   lat.compute_time_per_token_s(inst))

    # -- the token-sized tables, on use ---------------------------------------------
    def profile_deviation(self, i) -> np.ndarray:
        """``[..., P, J]`` deviation of every profile of layer(s) ``i`` (an index or a
        slice), tokens last: the slots' deviations summed in slot order."""
        K = self.codes.shape[1]
        t = self.slot_deviation[:, :, i]                                  # [K, C, (.,) J]
        if t.ndim == 4:
            t = np.moveaxis(t, 2, 0)                                       # [., K, C, J]
        dev = sum(_on_axis(t, s, K, tokens_last=True) for s in range(K))
        return dev.reshape(t.shape[:-3] + (len(self.codes), t.shape[-1]))

    def layer_deviation(self, i) -> np.ndarray:
        """``[..., J, P]``: :meth:`profile_deviation` with the tokens first (a view)."""
        return np.swapaxes(self.profile_deviation(i), -1, -2)

    def deviation_at(self, i: np.ndarray, j: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Deviation of profiles ``p`` of tokens ``(i, j)`` (broadcast index arrays):
        the same sums, in the same order, as :meth:`profile_deviation`."""
        K, C, I, J = self.slot_deviation.shape
        code = self.codes[p].astype(np.intp)                              # [..., K]
        return sum(np.take(self.slot_deviation, ((s * C + code[..., s]) * I + i) * J + j)
                   for s in range(K))

    def within_budget(self, i, deviation: np.ndarray) -> np.ndarray:
        """Whether ``deviation`` (of layer(s) ``i``, broadcast on the left) is within
        the layer's budget (with the feasibility tolerance)."""
        budget = self.problem.layer_budget[i] * (1 + FEASIBILITY_RTOL)
        return deviation <= np.reshape(budget, np.shape(budget) + (1,) * (
            deviation.ndim - np.ndim(budget)))

    def layer_allowed(self, i) -> np.ndarray:
        """``[..., J, P]`` :attr:`allowed` of layer(s) ``i`` (an index or a slice)."""
        ok = self.within_budget(i, self.layer_deviation(i))
        ok &= np.take(np.isfinite(self.row_energy), self.row[i], axis=0)
        return ok

    def layer_energy(self, i: int) -> np.ndarray:
        """``[J, P]`` energy of layer ``i``'s profiles, ``inf`` unless allowed."""
        return np.where(self.layer_allowed(i), np.take(self.row_energy, self.row[i], axis=0),
                        np.inf)

    def layer_chunks(self):
        """Slices of consecutive layers whose ``[., J, P]`` tables stay in cache."""
        I, J = self.row.shape
        step = max(1, _CHUNK // (J * self.codes.shape[0]))
        return [slice(i, i + step) for i in range(0, I, step)]

    @functools.cached_property
    def deviation(self) -> np.ndarray:
        """``[I, J, P]`` deviation of every profile (weighted by the gates)."""
        return self.layer_deviation(slice(None))

    @functools.cached_property
    def energy(self) -> np.ndarray:
        """``[I, J, P]`` energy of every profile; ``inf`` unless allowed."""
        return np.where(self.allowed, np.take(self.row_energy, self.row, axis=0), np.inf)

    @functools.cached_property
    def allowed(self) -> np.ndarray:
        """``[I, J, P]``: valid (distinct experts, linked devices with bandwidth) and
        within the layer's budget (built a few layers at a time: only the mask is
        token-sized)."""
        return np.concatenate([self.layer_allowed(i) for i in self.layer_chunks()])

    # -- the slots of chosen profiles ------------------------------------------------
    def gather(self, i: np.ndarray, j: np.ndarray, p: np.ndarray):
        """``(targets, device, first, slot_time)``, each ``[n, K]``, of the profiles
        ``p`` of tokens ``(i, j)`` (index arrays of one shape ``[n]``): the invoked
        expert, its device, whether the slot is its device's first invocation, and the
        time the slot adds to that device (``a``, plus ``c`` if first)."""
        _, K, C = self.slot_target.shape
        i, j = np.asarray(i)[:, None], np.asarray(j)[:, None]
        # flat indices: one np.take per table (much faster than 3-index fancy indexing)
        flat = (self.row[i, j] * K + np.arange(K)) * C + self.codes[np.asarray(p)]
        targets = np.take(self.slot_target, flat)
        device = np.take(self.slot_device, flat)
        first = _first_visit(device)
        dev0 = np.maximum(device, 0)
        with np.errstate(invalid="ignore"):
            st = np.where(device >= 0, self.compute_s[dev0]
                          + np.where(first, np.take(self.comm_s, i * self.comm_s.shape[1]
                                                    + dev0), 0.0), 0.0)
        return targets, device, first, st

    def profile_latency(self) -> np.ndarray:
        """``[I, J, P]`` layer latency if the token were alone (decode): the largest
        device time over the devices it visits (built on the code axes, like the
        energy, with the sums in :meth:`gather`'s order)."""
        K = self.codes.shape[1]
        ax = lambda table, s: _on_axis(table, s, K)                       # noqa: E731
        dev = [ax(self.slot_device, s) for s in range(K)]
        d0 = np.maximum(self.slot_device, 0)
        a = self.compute_s[d0]
        c = np.take(self.comm_s, self.row_layer[:, None, None] * self.comm_s.shape[1] + d0)
        st = []
        for t in range(K):
            first = functools.reduce(np.logical_and, (dev[t] != dev[u] for u in range(t)),
                                     dev[t] >= 0)
            with np.errstate(invalid="ignore"):
                st.append(np.where(dev[t] >= 0, ax(a, t) + np.where(first, ax(c, t), 0.0), 0.0))
        latency = 0.0
        for s in range(K):
            per_slot = sum(np.where(dev[t] == dev[s], st[t], 0.0) for t in range(K))
            latency = np.maximum(latency, np.where(dev[s] >= 0, per_slot, 0.0))
        return np.take(latency.reshape(len(self.row_layer), -1), self.row, axis=0)

    def _chosen(self, choice: np.ndarray, table: np.ndarray) -> np.ndarray:
        """``[I * J, K]`` entries of a row slot table for the chosen profile of every
        token (flat indices: one np.take)."""
        _, K, C = table.shape
        rows = self.row.reshape(-1, 1)
        return np.take(table, (rows * K + np.arange(K)) * C + self.codes[choice.ravel()])

    def loads(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loads ``(u, p)`` ``[I, U]`` of the chosen profile ``choice[i, j]``."""
        I, J = choice.shape
        U = self.problem.instance.n_devices
        dev = self._chosen(choice, self.slot_device)
        on = dev >= 0
        first = _first_visit(dev)
        rows = np.repeat(np.arange(I) * U, J)[:, None] + dev
        p = np.bincount(rows[on], minlength=I * U).reshape(I, U)
        u = np.bincount(rows[first], minlength=I * U).reshape(I, U)
        return u, p

    def device_times(self, choice: np.ndarray) -> np.ndarray:
        """``[I, U]`` device times (eq. 10) of ``choice``."""
        u, p = self.loads(choice)
        with np.errstate(invalid="ignore"):
            return np.where(u > 0, u * self.comm_s, 0.0) + p * self.compute_s

    def actions(self, choice: np.ndarray) -> np.ndarray:
        """``[I, J, K]`` action array of ``choice[i, j]``."""
        I, J = choice.shape
        return self._chosen(choice, self.slot_target).reshape(I, J, -1).astype(np.int64)

    def keep_index(self) -> int:
        """The profile keeping every Top-K expert (all codes 1)."""
        return int(np.flatnonzero((self.codes == 1).all(axis=1))[0])


def lex_rank(columns: np.ndarray, radix: int) -> np.ndarray:
    """``[n]`` int64 rank of each row of ``columns`` ``[n, m]`` (entries in
    ``[0, radix)``) in the lexicographic order of the distinct rows (column 0 first):
    equal rows, equal ranks. Mixed-radix keys, re-ranked before they could overflow."""
    n, m = columns.shape
    key = np.zeros(n, dtype=np.int64)
    for s in range(m):
        if int(key.max(initial=0)) >= np.iinfo(np.int64).max // radix - 1:
            key = np.unique(key, return_inverse=True)[1].ravel()      # order-preserving
        key = key * radix + columns[:, s]
    return key


def _distinct_topk(e: np.ndarray, E: int) -> tuple[np.ndarray, np.ndarray]:
    """``(row, inv)``: one token (flat index ``i * J + j``) per distinct (layer, Top-K
    tuple) of ``e`` ``[I, J, K]`` (experts ``< E``), the rows in key order, and the
    ``[I, J]`` index of each token's in ``row``."""
    I, J, K = e.shape
    if J == 1:                                       # one token per layer: all distinct
        return np.arange(I), np.arange(I)[:, None]
    layer = np.repeat(np.arange(I, dtype=np.int64), J)[:, None]
    key = lex_rank(np.concatenate([layer, e.reshape(I * J, K)], axis=1), max(E, I))
    if int(key.max()) >= 8 * key.size:               # sparse keys: sort them
        _, row, inv = np.unique(key, return_index=True, return_inverse=True)
        return row, inv.reshape(I, J)
    present = np.zeros(int(key.max()) + 1, dtype=bool)   # dense keys: a lookup table
    present[key] = True
    inv = (np.cumsum(present) - 1)[key]
    row = np.empty(int(present.sum()), dtype=np.intp)
    row[inv] = np.arange(key.size)                   # any token of the row will do
    return row, inv.reshape(I, J)


def _first_visit(device: np.ndarray) -> np.ndarray:
    """``[n, K]``: whether each slot's device (``-1``: skipped) is its first visit in
    the row (eq. 10: a token crosses a device's link once, however many experts it
    invokes there)."""
    first = device >= 0
    for s in range(1, device.shape[1]):
        for t in range(s):
            first[:, s] &= device[:, s] != device[:, t]
    return first


def _on_axis(table: np.ndarray, s: int, K: int, tokens_last: bool = False) -> np.ndarray:
    """Slot ``s`` of ``[..., K, C]`` viewed as ``[..., 1, .., C (axis s of the K code
    axes), .., 1]``; with ``tokens_last``, of ``[..., K, C, J]`` as ``[..., 1, .., C,
    .., 1, J]``."""
    t = table[..., s, :, :] if tokens_last else table[..., s, :]
    lead, tail = (t.shape[:-2], t.shape[-1:]) if tokens_last else (t.shape[:-1], ())
    C = t.shape[len(lead)]
    return t.reshape(lead + (1,) * s + (C,) + (1,) * (K - 1 - s) + tail)
