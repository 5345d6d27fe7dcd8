"""Every selection of a tiny instance, layer by layer, with its loads (eqs. 9-12).

P2 (eqs. 15-17) separates by layer at a fixed bandwidth, and the P1 objective
(eq. 13) is a sum over layers, so the exact P1 methods work on per-layer
candidate lists: for layer ``i``, every allowed mask ``q[i] in {0,1}^{J x E}``
that keeps >= 1 expert per token, with its loads ``u, p`` and its WLR numerator.
The follower's optimal set at a bandwidth is then an argmax per layer (with a
stated relative tie tolerance), and the optimistic leader picks, per layer, the
tie with the lowest layer latency.

Everything broadcasts over leading bandwidth axes ``[..., U]`` so the bilevel
search scores many bandwidth points (or boxes) at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..model import Instance
from ..model import latency as lat
from ..problems import SelectionProblem
from ..selection.brute_force import subsets
from ..selection.common import refuse_large

#: Default cap on the candidate masks of one layer.
MAX_LAYER_CANDIDATES = 20_000

#: Relative tolerance under which two WLR values count as a tie for the follower.
TIE_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class LayerCandidates:
    """Every allowed selection of layer ``layer``: ``masks [n, J, E]``, loads
    ``u, p [n, U]`` (eq. 9, distinct tokens and pairs) and WLR numerators
    ``num [n, U]`` (eq. 12)."""

    layer: int
    masks: np.ndarray
    u: np.ndarray
    p: np.ndarray
    num: np.ndarray

    def __len__(self) -> int:
        return self.masks.shape[0]


def layer_candidates(instance: Instance, support: str, layer: int,
                     limit: int = MAX_LAYER_CANDIDATES) -> LayerCandidates:
    """All selections of one layer under ``support`` (refuses more than ``limit``)."""
    allowed = SelectionProblem(instance, support=support).allowed_mask()[layer]
    options = [subsets(row) for row in allowed]
    refuse_large("instance", [len(o) for o in options], limit,
                 f"enumerating the selections of layer {layer}")
    grid = np.array(list(itertools.product(*[range(len(o)) for o in options])))
    masks = np.stack([options[j][grid[:, j]] for j in range(len(options))], axis=1)
    onehot = (instance.placement[layer][:, None] == np.arange(instance.n_devices))
    u, p = lat.mask_loads(masks, onehot)
    num = np.einsum("nje,je,ek->nk", masks, instance.gating_weights[layer], onehot)
    return LayerCandidates(layer, masks, u, p, num)


def all_candidates(instance: Instance, support: str,
                   limit: int = MAX_LAYER_CANDIDATES) -> list[LayerCandidates]:
    """:func:`layer_candidates` of every layer."""
    return [layer_candidates(instance, support, i, limit) for i in range(instance.n_layers)]


def device_times(instance: Instance, cands: LayerCandidates, bandwidth_hz) -> np.ndarray:
    """Eq. (10) for every candidate: ``[..., n, U]`` for bandwidth ``[..., U]``
    (any non-negative vector: the bilevel search evaluates box corners too)."""
    c = lat.comm_time_per_token_s(instance, bandwidth_hz)[..., cands.layer, None, :]
    return lat.device_time_from_loads(cands.u, cands.p, c, lat.compute_time_per_token_s(instance))


def layer_wlr(cands: LayerCandidates, times: np.ndarray) -> np.ndarray:
    """Eq. (12) summed over devices, ``[..., n]``, from :func:`device_times`."""
    return lat.wlr_from_times(cands.num, times).sum(axis=-1)


def follower_optimal(wlr_values: np.ndarray, tie_tol: float = TIE_TOL) -> np.ndarray:
    """``[..., n]`` bool: the candidates within ``tie_tol`` (relative) of the best WLR."""
    best = wlr_values.max(axis=-1, keepdims=True)
    return wlr_values >= best * (1.0 - tie_tol)


def leader_choice(instance: Instance, cands: list[LayerCandidates], bandwidth_hz,
                  tie_tol: float = TIE_TOL, follower_bandwidth_hz=None):
    """The optimistic bilevel point at a bandwidth: per layer, the follower's optimal
    set (P2 at ``follower_bandwidth_hz``, default ``bandwidth_hz``), and among it the
    candidate of least layer latency (eq. 11) at ``bandwidth_hz``.

    Returns ``(latency [...], choice [..., I])`` with ``choice`` candidate indices.
    """
    fb = bandwidth_hz if follower_bandwidth_hz is None else follower_bandwidth_hz
    total, choice = 0.0, []
    for c in cands:
        times = device_times(instance, c, bandwidth_hz)
        tf = times if follower_bandwidth_hz is None else device_times(instance, c, fb)
        value, k = least_latency(follower_optimal(layer_wlr(c, tf), tie_tol), times)
        choice.append(k)
        total = total + value
    return total, np.stack(choice, axis=-1)


def least_latency(ok: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Among the candidates ``ok`` (``[..., n]``), the least layer latency (eq. 11, the
    device maximum of ``times`` ``[..., n, U]``) and its candidate index (``inf`` and
    0 where none is ok)."""
    layer_t = np.where(ok, times.max(axis=-1), np.inf)
    k = layer_t.argmin(axis=-1)
    return np.take_along_axis(layer_t, k[..., None], axis=-1)[..., 0], k


def selection_mask(cands: list[LayerCandidates], choice) -> np.ndarray:
    """The ``[I, J, E]`` mask of one candidate index per layer."""
    return np.stack([c.masks[int(k)] for c, k in zip(cands, choice, strict=True)])


def optimal_selections(instance: Instance, cands: list[LayerCandidates], bandwidth_hz,
                       tie_tol: float = TIE_TOL) -> list[np.ndarray]:
    """Per layer, the masks ``[m_i, J, E]`` optimal for P2 at ``bandwidth_hz``; every
    optimal selection is one pick per layer (the product of these sets)."""
    return [c.masks[follower_optimal(layer_wlr(c, device_times(instance, c, bandwidth_hz)),
                                     tie_tol)] for c in cands]
