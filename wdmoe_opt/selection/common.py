"""Shared pieces of the P2 methods: per-token device times and a batched WLR evaluator.

Everything here is per layer, because P2 at a fixed bandwidth separates by layer:
``t[i, k]`` (eq. 10) and ``WLR[i, k]`` (eq. 12) only see layer ``i``'s selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InputError
from ..model import Selection, topk_order
from ..model import latency as lat
from ..model.instance import small_int
from ..problems import SelectionProblem


@dataclass(frozen=True, eq=False)
class LayerTimes:
    """The numbers every P2 method reads, at the problem's bandwidth.

    ``comm[i, k]`` is ``c_k`` (eq. 6) in layer ``i``, ``comp[k]`` is ``a_k`` (eq. 7),
    ``onehot[i, e, k]`` says that expert ``e`` of layer ``i`` lives on device ``k``.
    """

    problem: SelectionProblem

    @property
    def instance(self):
        return self.problem.instance

    @cached_property
    def comm(self) -> np.ndarray:
        return lat.comm_time_per_token_s(self.instance, self.problem.bandwidth_hz)

    @cached_property
    def comp(self) -> np.ndarray:
        return lat.compute_time_per_token_s(self.instance)

    @cached_property
    def onehot(self) -> np.ndarray:
        inst = self.instance
        return (inst.placement[:, :, None] == np.arange(inst.n_devices)).astype(np.float64)

    @cached_property
    def tau_expert(self) -> np.ndarray:
        """``[I, E]``: per-token latency ``c + a`` of the device hosting each expert
        (the vector ``t^i_j`` of eq. 18)."""
        pl = self.instance.placement
        tau = self.comm + self.comp
        return np.take_along_axis(tau, pl, axis=1)

    def wlr(self, mask: np.ndarray, layers: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Eq. (12) for masks ``[..., I', J, E]`` of the given layers: ``[..., I', U]``.

        Batched over leading axes (the brute force scores many candidate masks at once);
        ``u`` counts distinct tokens per device, ``p`` pairs, as :func:`device_loads`.
        """
        onehot = self.onehot[layers]
        u, p = lat.mask_loads(mask, onehot)
        num = np.einsum("...ije,ije,iek->...ik", mask, self.instance.gating_weights[layers],
                        onehot)
        return self.wlr_from_loads(u, p, num, layers)

    def wlr_from_loads(self, u, p, num, layers: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Eq. (12) from loads ``u, p`` and numerators ``num`` (``[..., I', U]``)."""
        return lat.wlr_from_times(num, lat.device_time_from_loads(u, p, self.comm[layers],
                                                                  self.comp))


def check_selection(problem: SelectionProblem, mask: np.ndarray) -> Selection:
    """Wrap a method's mask, asserting the P2 constraints (eq. 16 and the support)."""
    if not mask.any(axis=2).all():
        raise AssertionError("a P2 method left a token with no expert")
    if (mask & ~problem.allowed_mask()).any():
        raise AssertionError("a P2 method kept an expert outside the support")
    return Selection(mask)


class RankedSelection:
    """A selection that keeps a prefix of each token's Top-K, best first.

    Algorithms 1 and 2 only ever drop a token's lowest-weight kept expert, so the
    state is ``n_kept[i, j]``; the loads ``u, p`` and the WLR numerator (eqs. 9-12)
    are updated incrementally on each drop, vectorized over the dropped tokens.
    Ids and counts are small integers (:func:`small_int`).
    """

    def __init__(self, times: LayerTimes, k: int):
        inst = times.instance
        self.times = times
        w = inst.gating_weights
        n_layers, n_tokens, _ = w.shape
        ii, jj = np.arange(n_layers)[:, None, None], np.arange(n_tokens)[None, :, None]
        self.order = topk_order(w, k)                                   # [I, J, K]
        self.w = w[ii, jj, self.order]                                  # [I, J, K]
        U = inst.n_devices
        self.dev = inst.placement.astype(small_int(U))[ii, self.order]  # [I, J, K]
        self.n_kept = np.full((n_layers, n_tokens), k, dtype=small_int(k))
        layer = np.broadcast_to(ii, self.dev.shape)
        flat = (layer * U + self.dev).ravel()
        self.p = _cell_sum(flat, None, (n_layers, U)).astype(np.int64)
        self._shared = not inst.identity_placement
        if self._shared:                                   # u counts distinct devices
            first = np.ones(self.dev.shape, dtype=bool)    # first kept expert on its device
            for r in range(1, k):
                first[..., r] = ~(self.dev[..., :r] == self.dev[..., r, None]).any(axis=-1)
            self._u = _cell_sum(flat[first.ravel()], None, (n_layers, U)).astype(np.int64)
        self.num = _cell_sum(flat, self.w.ravel(), (n_layers, U))

    @property
    def u(self) -> np.ndarray:
        """``[I, U]`` distinct tokens per device (``p`` under the identity placement)."""
        return self._u if self._shared else self.p

    def droppable(self) -> np.ndarray:
        """``[I, J]``: tokens that still keep >= 2 experts (eq. 16 keeps >= 1)."""
        return self.n_kept >= 2

    def lowest(self, i: np.ndarray, j: np.ndarray):
        """``(expert, weight, device)`` of tokens ``(i, j)``'s lowest-weight kept expert."""
        r = self.n_kept[i, j] - 1
        return self.order[i, j, r], self.w[i, j, r], self.dev[i, j, r]

    def drop(self, hit: np.ndarray) -> tuple[np.ndarray, ...]:
        """Drop the lowest-weight kept expert of the droppable tokens in ``hit [I, J]``;
        return the drops as ``(i, j, expert, weight)``."""
        i, j = np.nonzero(hit & self.droppable())
        ed, wd, kd = self.lowest(i, j)
        self.n_kept[i, j] -= 1
        shape = self.p.shape
        cell = i * shape[1] + kd
        self.p -= _cell_sum(cell, None, shape).astype(np.int64)
        if self._shared:      # u drops unless another kept expert sits on the same device
            kept = np.arange(self.dev.shape[2]) < self.n_kept[i, j, None]
            still = (kept & (self.dev[i, j] == kd[:, None])).any(axis=1)
            self._u -= _cell_sum(cell[~still], None, shape).astype(np.int64)
        self.num -= _cell_sum(cell, wd, shape)
        return i, j, ed, wd

    def wlr(self) -> np.ndarray:
        """Eq. (12) ``[I, U]`` from the current loads."""
        return self.times.wlr_from_loads(self.u, self.p, self.num)

    def mask(self) -> np.ndarray:
        """The selection as an ``[I, J, E]`` boolean mask."""
        k = self.order.shape[2]
        m = np.zeros(self.n_kept.shape + (self.times.instance.n_experts,), dtype=bool)
        np.put_along_axis(m, self.order, np.arange(k) < self.n_kept[..., None], axis=2)
        return m


def _cell_sum(cell: np.ndarray, weights, shape: tuple[int, int]) -> np.ndarray:
    """Sum ``weights`` (1 if None) into the cells ``cell = i * U + k`` of an ``[I, U]`` grid."""
    return np.bincount(cell, weights=weights, minlength=shape[0] * shape[1]).reshape(shape)


def check_top_k(problem: SelectionProblem, top_k: int | None, owner: str) -> None:
    """A ``top_k`` option may not exceed ``E``, nor the instance's ``K`` under
    ``support="topk"`` (the selection must stay inside the support)."""
    if top_k is None:
        return
    inst = problem.instance
    limit = inst.model.top_k if problem.support == "topk" else inst.n_experts
    if top_k > limit:
        raise InputError(f"the 'top_k' option of {owner}",
                         f"must be at most {limit} under support={problem.support!r}", top_k)


def refuse_large(field: str, counts, limit: float, what: str) -> None:
    """Raise :class:`InputError` when an exponential method would be asked too much:
    the product of ``counts`` (choices per token or per layer) exceeds ``limit``.
    Computed in log space, so huge products never overflow."""
    log_size = float(np.sum(np.log10(np.asarray(counts, dtype=np.float64))))
    if log_size > np.log10(limit):
        raise InputError(field, f"is too large for {what}: about 10^{log_size:.1f} "
                         f"combinations, the limit is {limit:.3g}")
