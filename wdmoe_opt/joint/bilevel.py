"""Global search over the bandwidth simplex for the optimistic bilevel P1 (eqs. 13-15).

Branch and bound on boxes ``lo <= B <= hi`` intersected with the simplex
``sum_k B_k = B_total`` (eqs. 20-21), for tiny instances whose selections are
enumerated layer by layer (:mod:`.enumerate`). Two monotonicity facts give the
bounds: each device time ``t[i, k]`` (eq. 10) decreases in ``B_k``, and so each
WLR term (eq. 12) increases in ``B_k``. On a box, therefore,

* a selection ``q[i]`` can be optimal for the follower somewhere in the box only if
  ``WLR_i(q[i], hi) >= max_q' WLR_i(q', lo) (1 - tie_tol)`` (its best case against
  the follower's worst-case optimum); the others are pruned for that box;
* every bilevel-feasible point of the box has latency at least
  ``sum_i min_{q[i] not pruned} max_k t[i, k](q[i], hi_k)`` (eq. 11 at ``hi``).

Upper bounds come from one simplex point per box, scored exactly (follower's
optimal set, optimistic leader; :func:`.enumerate.leader_choice`). Boxes whose
bound is within ``tol`` (relative) of the incumbent are pruned; the search ends
with a proof that the incumbent is optimal to ``tol`` (ties counted within the
relative ``tie_tol``), or at ``max_boxes`` with the lower bound it reached.

With a fixed ``follower_bandwidth_hz`` (the ``uniform`` reading) the follower's
sets do not depend on the box and the search is a global P3 over the tie sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Instance
from .enumerate import (
    TIE_TOL,
    LayerCandidates,
    device_times,
    follower_optimal,
    layer_wlr,
    leader_choice,
)

#: Budget on ``boxes x candidates x devices`` floats scored at once.
_CHUNK_FLOATS = 4_000_000


@dataclass(frozen=True)
class SearchResult:
    """The incumbent ``(bandwidth_hz, choice)`` with its latency and the proven bound."""

    objective_s: float
    lower_bound_s: float
    bandwidth_hz: np.ndarray
    choice: np.ndarray          # [I] candidate index per layer
    boxes: int
    proven: bool                # the gap closed to tol before max_boxes


def _tighten(lo: np.ndarray, hi: np.ndarray, total: float):
    """Shrink boxes onto the simplex: ``B_k in [total - sum_{l!=k} hi_l, total - sum_{l!=k} lo_l]``;
    drop boxes that miss it."""
    s_lo, s_hi = lo.sum(axis=1, keepdims=True), hi.sum(axis=1, keepdims=True)
    lo2 = np.maximum(lo, total - (s_hi - hi))
    hi2 = np.minimum(hi, total - (s_lo - lo))
    keep = (lo2 <= hi2 + 1e-12 * total).all(axis=1)
    return lo2[keep], np.maximum(hi2, lo2)[keep]


def _inner_points(lo: np.ndarray, hi: np.ndarray, total: float) -> np.ndarray:
    """Points of each (tightened) box on the simplex, ``[nb, U + 1, U]``: the point
    ``lo + lambda (hi - lo)`` and, per device ``k``, the point giving ``k`` its most
    bandwidth (``hi_k``) and the others the rest in proportion to their spans."""
    span = hi - lo
    room = total - lo.sum(axis=1, keepdims=True)
    U = lo.shape[1]
    weight = np.concatenate([span[:, None, :], np.broadcast_to(
        np.where(np.eye(U, dtype=bool), np.inf, 1.0), (lo.shape[0], U, U)) * span[:, None, :]],
        axis=1)                                                           # [nb, U + 1, U]
    share = np.where(np.isinf(weight), span[:, None, :], 0.0)
    rest = room[:, None, :] - share.sum(axis=2, keepdims=True)
    finite = np.where(np.isinf(weight), 0.0, weight)
    lam = rest / np.maximum(finite.sum(axis=2, keepdims=True), 1e-300)
    return lo[:, None, :] + share + np.clip(lam, 0.0, 1.0) * finite


class _Bounder:
    """Box lower bounds (module docstring) for one instance and follower reading."""

    def __init__(self, instance, cands, tie_tol, follower_bandwidth_hz):
        self.instance, self.cands, self.tie_tol = instance, cands, tie_tol
        self.fixed = None if follower_bandwidth_hz is None else [
            follower_optimal(layer_wlr(c, device_times(instance, c, follower_bandwidth_hz)),
                             tie_tol) for c in cands]

    def __call__(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        bound = np.zeros(lo.shape[0])
        for i, c in enumerate(self.cands):
            t_hi = device_times(self.instance, c, hi)                     # [nb, n, U]
            if self.fixed is None:
                best_lo = layer_wlr(c, device_times(self.instance, c, lo)).max(axis=-1)
                ok = layer_wlr(c, t_hi) >= best_lo[:, None] * (1.0 - self.tie_tol)
            else:
                ok = self.fixed[i]
            bound += np.where(ok, t_hi.max(axis=-1), np.inf).min(axis=-1)
        return bound


def _chunked(fn, n_rows: int, chunk: int, *arrays):
    outs = [fn(*(a[s:s + chunk] for a in arrays)) for s in range(0, n_rows, chunk)]
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*outs, strict=True))
    return np.concatenate(outs)


def bilevel_search(instance: Instance, cands: list[LayerCandidates], *, tol: float = 1e-4,
                   tie_tol: float = TIE_TOL, max_boxes: int = 200_000,
                   follower_bandwidth_hz=None, start_points=()) -> SearchResult:
    """Branch and bound for ``min_B min_{q in argmax P2} T(q, B)`` (module docstring).

    Parameters
    ----------
    instance, cands
        The instance and its per-layer candidate selections.
    tol
        Relative gap at which the incumbent is accepted as optimal.
    tie_tol
        Relative WLR tolerance of the follower's optimal set.
    max_boxes
        Budget of boxes scored; past it the result is not ``proven``.
    follower_bandwidth_hz
        ``None``: the follower scores WLR at the leader's bandwidth (``coupled``);
        an array: at that fixed bandwidth (``uniform``).
    start_points
        Extra simplex points scored as incumbents before the search.
    """
    total = instance.system.total_bandwidth_hz
    U = instance.n_devices
    widest = max(len(c) for c in cands)
    chunk = max(1, _CHUNK_FLOATS // (widest * U))
    bounder = _Bounder(instance, cands, tie_tol, follower_bandwidth_hz)

    def score(points):
        return leader_choice(instance, cands, points, tie_tol, follower_bandwidth_hz)

    pts = np.vstack([np.full(U, total / U), *[np.asarray(p, float) for p in start_points]])
    vals, choices = score(pts)
    k = int(np.argmin(vals))
    ub, best_b, best_choice = float(vals[k]), pts[k], choices[k]
    lo, hi = np.zeros((1, U)), np.full((1, U), total)
    pruned_lb, boxes = np.inf, 0
    while lo.shape[0]:
        lo, hi = _tighten(lo, hi, total)
        if not lo.shape[0]:
            break
        boxes += lo.shape[0]
        lb = _chunked(bounder, lo.shape[0], chunk, lo, hi)
        pts = _inner_points(lo, hi, total).reshape(-1, U)
        vals, choices = _chunked(score, pts.shape[0], chunk, pts)
        k = int(np.argmin(vals))
        if vals[k] < ub:
            ub, best_b, best_choice = float(vals[k]), pts[k], choices[k]
        live = lb < ub * (1.0 - tol)
        if (~live).any():
            pruned_lb = min(pruned_lb, float(lb[~live].min()))
        lo, hi, lb = lo[live], hi[live], lb[live]
        if boxes >= max_boxes and lo.shape[0]:
            bound = min(pruned_lb, float(lb.min()), ub)
            return SearchResult(ub, bound, best_b, best_choice, boxes, proven=False)
        d = np.argmax(hi - lo, axis=1)
        rows = np.arange(lo.shape[0])
        mid = 0.5 * (lo[rows, d] + hi[rows, d])
        lo_right, hi_left = lo.copy(), hi.copy()
        lo_right[rows, d], hi_left[rows, d] = mid, mid
        lo, hi = np.vstack([lo, lo_right]), np.vstack([hi_left, hi])
    return SearchResult(ub, min(pruned_lb, ub), best_b, best_choice, boxes, proven=True)
