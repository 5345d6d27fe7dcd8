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
from ..model.deviation import FEASIBILITY_RTOL, duplicate_invocations, topk_experts
from .problem import EnergyProblem

#: Profiles per token above which building the tables is refused (memory).
MAX_PROFILES = 200_000


@functools.cache
def profile_codes(K: int, choices: int) -> np.ndarray:
    """``[choices^K, K]`` int8: every code combination (0 skip, 1 keep, 2+ replace)."""
    return np.array(list(itertools.product(range(choices), repeat=K)), dtype=np.int8)


@dataclass(frozen=True, eq=False)
class Candidates:
    """The profile tables of a P4 problem (see the module docstring)."""

    problem: EnergyProblem
    codes: np.ndarray          # [P, K] profile codes
    targets: np.ndarray        # [I, J, P, K] invoked expert (-1: skip)
    device: np.ndarray         # [I, J, P, K] its device (-1: skip)
    first: np.ndarray          # [I, J, P, K] the slot is its device's first invocation
    deviation: np.ndarray      # [I, J, P]
    energy: np.ndarray         # [I, J, P] (inf when invalid)
    allowed: np.ndarray        # [I, J, P] valid and within the layer's budget
    comm_s: np.ndarray         # [I, U] per-token communication time c
    compute_s: np.ndarray      # [U] per-pair compute time a

    @classmethod
    def build(cls, problem: EnergyProblem, replacements: int | None = None) -> Candidates:
        inst = problem.instance
        I, J, E = inst.gating_weights.shape
        K = inst.model.top_k
        R = E - 1 if replacements is None else min(int(replacements), E - 1)
        if (R + 2) ** K > MAX_PROFILES:
            raise InputError("replacements", f"gives {(R + 2) ** K} profiles per token "
                             f"(more than {MAX_PROFILES}); allow fewer replacements", R)
        sim = inst.similarity
        e = topk_experts(inst)                                            # [I, J, K]
        li = np.arange(I)[:, None, None]
        # nearest replacements: sort each row of D with the expert itself first
        d = sim.replace.copy()
        d[:, np.arange(E), np.arange(E)] = -1.0
        near = np.argsort(d, axis=2, kind="stable")[:, :, 1:R + 1]       # [I, E, R]
        slot_target = np.concatenate(
            [np.full(e.shape + (1,), -1), e[..., None], near[li, e]], axis=-1)   # [I,J,K,R+2]
        w = np.take_along_axis(inst.gating_weights, e, axis=2)            # [I, J, K]
        slot_dev = np.where(slot_target < 0, sim.skip[li, e][..., None],
                            sim.replace[li[..., None], e[..., None], np.maximum(slot_target, 0)])
        codes = profile_codes(K, R + 2)                                   # [P, K]
        ks = np.arange(K)
        targets = slot_target[:, :, ks, codes]                            # [I, J, P, K]
        deviation = (w[:, :, None, :] * slot_dev[:, :, ks, codes]).sum(axis=-1)
        device = np.where(targets >= 0,
                          inst.placement[np.arange(I)[:, None, None, None],
                                         np.maximum(targets, 0)], -1)
        first = device >= 0
        for s in range(1, K):
            for t in range(s):
                first[..., s] &= device[..., s] != device[..., t]
        b = problem.bandwidth_hz
        e_tok = lat.transmit_energy_per_token_j(inst, b)                  # [I, U]
        e_cmp = lat.compute_energy_per_token_j(inst)                      # [U]
        dev0 = np.maximum(device, 0)
        with np.errstate(invalid="ignore"):
            energy = (np.where(first, e_tok[np.arange(I)[:, None, None, None], dev0], 0.0)
                      + np.where(device >= 0, e_cmp[dev0], 0.0)).sum(axis=-1)
        valid = ~duplicate_invocations(targets) & np.isfinite(energy)
        energy = np.where(valid, energy, np.inf)
        budget = problem.layer_budget[:, None, None]
        allowed = valid & (deviation <= budget * (1 + FEASIBILITY_RTOL))
        return cls(problem, codes, targets, device, first, deviation, energy, allowed,
                   np.ascontiguousarray(lat.comm_time_per_token_s(inst, b)),
                   lat.compute_time_per_token_s(inst))

    # -- device use -------------------------------------------------------------------
    def slot_time(self) -> np.ndarray:
        """``[I, J, P, K]`` time each slot adds to its device: ``a`` per invocation plus
        ``c`` for the device's first invocation (0 for a skipped slot)."""
        I = self.device.shape[0]
        dev0 = np.maximum(self.device, 0)
        c = self.comm_s[np.arange(I)[:, None, None, None], dev0]
        with np.errstate(invalid="ignore"):
            return np.where(self.device >= 0, self.compute_s[dev0] + np.where(self.first, c, 0),
                            0.0)

    def profile_latency(self) -> np.ndarray:
        """``[I, J, P]`` layer latency if the token were alone (decode): the largest
        device time over the devices it visits."""
        st = self.slot_time()
        same = self.device[..., :, None] == self.device[..., None, :]       # [.., K, K]
        per_slot = (st[..., None, :] * same).sum(axis=-1)
        return np.where(self.device >= 0, per_slot, 0.0).max(axis=-1)

    def loads(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loads ``(u, p)`` ``[I, U]`` of the chosen profile ``choice[i, j]``."""
        I, J = choice.shape
        U = self.problem.instance.n_devices
        dev = np.take_along_axis(self.device, choice[:, :, None, None], axis=2)[:, :, 0]
        first = np.take_along_axis(self.first, choice[:, :, None, None], axis=2)[:, :, 0]
        rows = np.broadcast_to(np.arange(I)[:, None, None] * U, dev.shape)
        on = dev >= 0
        p = np.bincount((rows + dev)[on], minlength=I * U).reshape(I, U)
        u = np.bincount((rows + dev)[first], minlength=I * U).reshape(I, U)
        return u, p

    def device_times(self, choice: np.ndarray) -> np.ndarray:
        """``[I, U]`` device times (eq. 10) of ``choice``."""
        u, p = self.loads(choice)
        with np.errstate(invalid="ignore"):
            return np.where(u > 0, u * self.comm_s, 0.0) + p * self.compute_s

    def actions(self, choice: np.ndarray) -> np.ndarray:
        """``[I, J, K]`` action array of ``choice[i, j]``."""
        return np.take_along_axis(self.targets, choice[:, :, None, None],
                                  axis=2)[:, :, 0].astype(np.int64)

    def keep_index(self) -> int:
        """The profile keeping every Top-K expert (all codes 1)."""
        return int(np.flatnonzero((self.codes == 1).all(axis=1))[0])
