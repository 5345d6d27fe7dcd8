"""Global search over the bandwidth simplex for the optimistic bilevel P1 (eqs. 13-15).

Branch and bound on boxes ``lo <= B <= hi`` intersected with the simplex
``sum_k B_k = B_total`` (eqs. 20-21), for tiny instances whose selections are
enumerated layer by layer (:mod:`.enumerate`). Each device time ``t[i, k]``
(eq. 10) decreases in ``B_k``, and so each WLR term (eq. 12) increases in ``B_k``.
On a box, therefore,

* a selection ``q[i]`` can be optimal for the follower somewhere in the box only if,
  against each rival ``r`` (the follower's choices at ``lo`` and at ``hi``), the
  largest value on the box of ``WLR_i(q[i]) - WLR_i(r)``, bounded device by device
  (:meth:`_Bounder._may_reply`), reaches ``-tie_tol WLR_i(r, hi)``; the others are
  pruned for that box. Device terms that two selections share cancel exactly, so
  the test tightens with the box (the earlier test, ``WLR(q, hi)`` against the best
  ``WLR(lo)``, kept a slack of the box's width in every term);
* every bilevel-feasible point of the box has latency at least
  ``sum_i min_{q[i] not pruned} max_k t[i, k](q[i], hi_k)`` (eq. 11 at ``hi``);
* where one profile ``q`` (a selection per layer) alone survives, at least P3's
  proven lower bound for ``q`` (eqs. 19-21), from the optional ``profile_solver``.

Upper bounds come from simplex points per box, scored exactly (follower's
optimal set, optimistic leader; :func:`.enumerate.leader_choice`), and from the
``profile_solver``'s points for each profile met: its P3 optimum and, where the
follower leaves ``q`` there, the leader's optimum up to ``q``'s tie surfaces
(:mod:`.tiesurface`). Boxes whose bound is within ``tol`` (relative) of the
incumbent are pruned; the search ends with a proof that the incumbent is optimal
to ``tol`` (ties counted within the relative ``tie_tol``), or at ``max_boxes``
with the lower bound it reached.

With a fixed ``follower_bandwidth_hz`` (the ``uniform`` reading) the follower's
sets do not depend on the box and the search is a global P3 over the tie sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Instance
from ..model import latency as lat
from .enumerate import (
    TIE_TOL,
    LayerCandidates,
    device_times,
    follower_optimal,
    layer_wlr,
    leader_choice,
    least_latency,
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

    def _may_reply(self, c: LayerCandidates, lo: np.ndarray, t_hi: np.ndarray) -> np.ndarray:
        """``[nb, n]``: the candidates that can be a best reply somewhere in the box.

        A candidate ``q`` can only if, against each rival ``r`` (the best replies at
        ``lo`` and at ``hi``), ``max_box WLR(q) - WLR(r) >= -tie_tol WLR(r, hi)``. The
        difference is a sum of one-device terms ``n_q / t_q(B_k) - n_r / t_r(B_k)``,
        each bounded on ``[lo_k, hi_k]`` on its own: by its larger end value where it
        is monotone (equal ratios ``p / u``, or one load empty: always so under the
        identity placement, where it is ``(wbar_q - wbar_r) / (c_k + a_k)``), else by
        ``n_q / t_q(hi_k) - n_r / t_r(lo_k)``.
        """
        f_lo = lat.wlr_from_times(c.num, device_times(self.instance, c, lo))   # [nb, n, U]
        f_hi = lat.wlr_from_times(c.num, t_hi)
        w_hi = f_hi.sum(axis=-1)
        rows = np.arange(lo.shape[0])
        ok = np.ones(w_hi.shape, dtype=bool)
        for r in (f_lo.sum(axis=-1).argmax(axis=-1), w_hi.argmax(axis=-1)):
            r_lo, r_hi = f_lo[rows, r][:, None, :], f_hi[rows, r][:, None, :]
            u_r, p_r = c.u[r][:, None, :], c.p[r][:, None, :]
            monotone = (c.u * p_r == u_r * c.p) | (c.u == 0) | (u_r == 0)
            gain = np.where(monotone, np.maximum(f_lo - r_lo, f_hi - r_hi), f_hi - r_lo)
            ok &= gain.sum(axis=-1) >= -self.tie_tol * w_hi[rows, r][:, None]
        return ok

    def __call__(self, lo: np.ndarray, hi: np.ndarray):
        """``(bound [nb], pick [nb, I], single [nb])``: the box bound, the profile
        attaining it, and whether that profile is the only one not pruned."""
        bound, pick = np.zeros(lo.shape[0]), []
        single = np.ones(lo.shape[0], dtype=bool)
        for i, c in enumerate(self.cands):
            t_hi = device_times(self.instance, c, hi)                     # [nb, n, U]
            ok = self.fixed[i] if self.fixed is not None else self._may_reply(c, lo, t_hi)
            value, k = least_latency(ok, t_hi)
            bound += value
            pick.append(k)
            single &= np.count_nonzero(ok, axis=-1) == 1
        return bound, np.stack(pick, axis=-1), single


def _chunked(fn, n_rows: int, chunk: int, *arrays):
    outs = [fn(*(a[s:s + chunk] for a in arrays)) for s in range(0, n_rows, chunk)]
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*outs, strict=True))
    return np.concatenate(outs)


def bilevel_search(instance: Instance, cands: list[LayerCandidates], *, tol: float = 1e-4,
                   tie_tol: float = TIE_TOL, max_boxes: int = 200_000,
                   follower_bandwidth_hz=None, start_points=(),
                   profile_solver=None) -> SearchResult:
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
    profile_solver
        Optional ``f(profile, start_hz) -> (bound_s, points)`` for one profile (a
        candidate index per layer) met in the search: ``bound_s`` a proven lower bound
        on ``T(q, B)`` over the whole simplex (eq. 19; P3's bound), ``points`` simplex
        points scored as incumbents. Called once per profile: on the incumbent's
        profile and on every box where a single profile survives the follower
        pruning (such a box's bound is raised to ``bound_s``), both from a point of
        the box; and with ``start_hz=None`` on the least-bound box's profile.
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
    best = [float(vals[k]), pts[k], choices[k]]       # incumbent: latency, bandwidth, choice
    profile_bounds: dict[tuple, float] = {}

    def offer(points):
        vals, choices = _chunked(score, points.shape[0], chunk, points)
        k = int(np.argmin(vals))
        if vals[k] < best[0]:
            best[:] = [float(vals[k]), points[k], choices[k]]

    def visit(profile, start):
        key = tuple(int(x) for x in profile)
        if key not in profile_bounds:
            bound, points = profile_solver(key, start)
            profile_bounds[key] = bound
            if len(points):
                offer(np.asarray(points, dtype=np.float64).reshape(-1, U))
        return profile_bounds[key]

    lo, hi = np.zeros((1, U)), np.full((1, U), total)
    pruned_lb, boxes = np.inf, 0
    while lo.shape[0]:
        lo, hi = _tighten(lo, hi, total)
        if not lo.shape[0]:
            break
        boxes += lo.shape[0]
        lb, pick, single = _chunked(bounder, lo.shape[0], chunk, lo, hi)
        offer(_inner_points(lo, hi, total).reshape(-1, U))
        if profile_solver is not None:
            mid = 0.5 * (lo + hi)
            k = int(np.argmin(lb))
            visit(best[2], best[1])
            visit(pick[k], None)
            rows = np.flatnonzero(single & (lb < best[0] * (1.0 - tol)))
            if rows.size:
                keys, first, inv = np.unique(pick[rows], axis=0, return_index=True,
                                             return_inverse=True)
                raised = np.array([visit(key, mid[rows[f]])
                                   for key, f in zip(keys, first, strict=True)])
                lb[rows] = np.maximum(lb[rows], raised[inv.ravel()])
        ub = best[0]
        live = lb < ub * (1.0 - tol)
        if (~live).any():
            pruned_lb = min(pruned_lb, float(lb[~live].min()))
        lo, hi, lb = lo[live], hi[live], lb[live]
        if boxes >= max_boxes and lo.shape[0]:
            bound = min(pruned_lb, float(lb.min()), ub)
            return SearchResult(ub, bound, best[1], best[2], boxes, proven=False)
        d = np.argmax(hi - lo, axis=1)
        rows = np.arange(lo.shape[0])
        cut = 0.5 * (lo[rows, d] + hi[rows, d])
        lo_right, hi_left = lo.copy(), hi.copy()
        lo_right[rows, d], hi_left[rows, d] = cut, cut
        lo, hi = np.vstack([lo, lo_right]), np.vstack([hi_left, hi])
    return SearchResult(best[0], min(pruned_lb, best[0]), best[1], best[2], boxes, proven=True)
