"""``p2/exact``: exact P2 (eqs. 15-17) by its structure: counts, flows and a Lagrangian bound.

P2 at a fixed bandwidth separates by layer. Under the identity placement a layer's
objective is ``sum_k N_k / (n_k tau_k)`` (eqs. 10, 12; ``u = p = n``,
``tau_k = c_k + a_k``), so it depends on the selection only through the per-device
counts ``n`` and numerators ``N``. Three facts make it exact at scale:

1. **For fixed counts the best selection is a flow.** With ``n`` fixed, the
   objective ``sum_k beta_k N_k`` with ``beta_k = 1 / (n_k tau_k)`` is linear in
   ``q``; "every token keeps >= 1 allowed expert" and "device ``k`` takes exactly
   ``n_k`` pairs" form a bipartite (token, device) system, totally unimodular, so
   the LP optimum (a vertex, by simplex) is the best integral selection ``V(n)``.
2. **A Lagrangian bound that separates by device.** Relaxing the cover
   constraint (eq. 16) with multipliers ``lambda_j >= 0``, any selection with counts
   ``n`` has WLR at most ``sum_k g_k(n_k) - sum_j lambda_j`` with
   ``g_k(n) = max_{|S| = n} sum_{j in S} (w_jk / (n tau_k) + lambda_j)`` (the ``n``
   largest such scores of device ``k``'s allowed pairs). Over all counts this is the
   configuration (Dantzig-Wolfe) bound, loose at scale (a device may be "half elite,
   half dump"); restricted to a box ``lo <= n <= hi`` it tightens, and at a single
   count vector its minimum over ``lambda`` is ``V(n)`` (LP duality of fact 1).
   Projected subgradient steps (Polyak's step to the incumbent, scaled by 2) set
   ``lambda``.
   The tables are the hot path: the score difference of two pairs, ``(w_ik -
   w_jk) / (n tau_k) + lambda_i - lambda_j``, is monotone in ``n``, so two pairs swap
   places at most once over a device's table, and the compiled
   ``_p2kernel.c`` keeps one order from row to row (an insertion sort per row)
   instead of sorting every row (the numpy fallback when the kernel is not built).
3. **Branch and bound on count boxes.** Best bound first; a box is bounded by (2)
   with multipliers warm-started from its parent, every device's count range is cut
   to the rows ``g_k(n)`` that can still beat the incumbent (with the other devices
   at their best), the relaxed counts are solved by (1) as incumbents, and the
   widest range (relative to its size) is split at its geometric middle. A single
   count vector is solved by (1) exactly. The search stops, **proven**, when the best
   open bound is within ``gap`` (relative) of the incumbent; the certified
   ``wlr_upper_bound`` of a layer is that bound (or the incumbent when none is open).

A layer stopped by ``time_limit`` (one wall-clock deadline for all layers; the root
box of every layer is always bounded) keeps its incumbent and the best open bound
(status ``time_limit``). Layers run in ``workers`` processes. Both supports work
(under ``all`` every token may keep any non-empty subset; the flow and the tables
simply see all ``E`` pairs). Under a shared placement ``u != p`` and the flow of (1)
no longer holds; the method then runs the exact per-layer MILP (the driver of
``p2/milp-highspy``), whose status and bound are reported the same way.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..options import Options, option
from ..problems import SelectionProblem
from ..registry import register
from ..solution import Solution, Status
from .common import LayerTimes, check_selection
from .milp import (
    MilpOptions,
    highspy_layer,
    silence_highs_banner,
    solve_by_layer,
    warm_start_masks,
)

try:
    from . import _p2kernel
except ImportError:  # a source tree that was never built: the numpy tables (slower)
    _p2kernel = None


@dataclass(frozen=True)
class ExactOptions(Options):
    """Knobs of ``p2/exact``."""

    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds, all layers")
    gap: float = option(1e-7, "unit", "relative WLR gap at which a layer counts as proven")
    subgradient_steps: int = option(60, "positive_int",
                                    "Lagrangian multiplier updates at the root box (fact 2)")
    box_steps: int = option(20, "positive_int", "multiplier updates per child box")
    workers: int = option(1, "positive_int", "processes solving layers in parallel")


class _Layer:
    """One identity-placement layer: pairs grouped by device, the flow LP, the tables."""

    def __init__(self, weights: np.ndarray, allowed: np.ndarray, tau: np.ndarray):
        self.n_tokens, self.n_devices = allowed.shape
        self.tau = tau
        self.tok, self.dev = np.nonzero(allowed)                     # pairs, token-major
        self.w = weights[self.tok, self.dev]
        self.by_dev = [np.flatnonzero(self.dev == k) for k in range(self.n_devices)]
        self.n_pairs = np.array([len(p) for p in self.by_dev])
        grouped = np.concatenate(self.by_dev)                       # pairs, device-major
        self.w_grouped, self.tok_grouped = self.w[grouped], self.tok[grouped]
        self.start = np.r_[0, np.cumsum(self.n_pairs)]
        self._lp = None
        self.unsure = False

    # -- fact 1: the flow at fixed counts -------------------------------------------------
    def _build_lp(self):
        import highspy
        from scipy.sparse import coo_matrix

        npair, J, U = len(self.w), self.n_tokens, self.n_devices
        rows = np.r_[self.tok, J + self.dev]
        a = coo_matrix((np.ones(2 * npair), (rows, np.r_[np.arange(npair), np.arange(npair)])),
                       shape=(J + U, npair)).tocsr()
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("presolve", "off")      # re-solved from the last basis, warm
        h.setOptionValue("solver", "simplex")    # a vertex, hence integral (TU)
        h.addVars(npair, np.zeros(npair), np.ones(npair))
        lo = np.r_[np.ones(J), np.zeros(U)]
        hi = np.r_[np.full(J, np.inf), np.zeros(U)]
        h.addRows(J + U, lo, hi, a.nnz, a.indptr[:-1].astype(np.int32),
                  a.indices.astype(np.int32), a.data)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self._lp = h
        return h

    def flow(self, counts: np.ndarray) -> np.ndarray | None:
        """The best selection (a pair mask) with exactly ``counts[k]`` pairs on device
        ``k``, or None if no selection covering every token has these counts."""
        import highspy

        h = self._lp or self._build_lp()
        J, U = self.n_tokens, self.n_devices
        c = counts.astype(np.float64)
        h.changeRowsBounds(U, np.arange(J, J + U, dtype=np.int32), c, c)
        beta = np.where(counts > 0, 1.0 / (np.maximum(counts, 1) * self.tau), 0.0)
        h.changeColsCost(len(self.w), np.arange(len(self.w), dtype=np.int32),
                         beta[self.dev] * self.w)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        x = np.asarray(h.getSolution().col_value) > 0.5           # a TU vertex: integral
        cover = np.bincount(self.tok[x], minlength=self.n_tokens)
        if not (cover >= 1).all() or not np.array_equal(self.counts(x), counts):
            self.unsure = True        # not a vertex (round-off): this layer proves nothing
            return None
        return x

    def value(self, x: np.ndarray) -> float:
        """Eq. (12) summed over devices for the pair mask ``x``."""
        n = np.bincount(self.dev[x], minlength=self.n_devices)
        num = np.bincount(self.dev[x], weights=self.w[x], minlength=self.n_devices)
        return float(np.sum(np.where(n > 0, num / (np.maximum(n, 1) * self.tau), 0.0)))

    def counts(self, x: np.ndarray) -> np.ndarray:
        """Pairs per device of the pair mask ``x``."""
        return self.counts_of(np.flatnonzero(x))

    def counts_of(self, pairs: np.ndarray) -> np.ndarray:
        """Pairs per device of the pair indices ``pairs``."""
        return np.bincount(self.dev[pairs], minlength=self.n_devices)

    # -- fact 2: the per-device tables of the Lagrangian bound ---------------------------
    def relaxed(self, lam: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        """The Lagrangian relaxation on the count box ``lo <= n <= hi``:
        ``(bound, counts, pairs, rows)`` with ``bound = sum_k max_n g_k(n) - sum_j
        lambda_j``, the maximizing counts, the pairs the relaxed devices take, and per
        device its table ``(n, g_k(n))`` over the box."""
        first = np.maximum(lo, 1)
        lam_pairs = lam[self.tok_grouped]
        g_all = tables(self.w_grouped, lam_pairs, self.tau, self.start, first, hi)
        total, counts, picked, rows = -float(lam.sum()), np.zeros(self.n_devices, int), [], []
        offset = 0
        for k, pairs in enumerate(self.by_dev):
            n = np.arange(first[k], hi[k] + 1)
            g = g_all[offset:offset + len(n)]
            offset += len(n)
            if lo[k] == 0:                        # n_k = 0 is in the box: g = 0
                n, g = np.r_[0, n], np.r_[0.0, g]
            rows.append((n, g))
            m = int(np.argmax(g))
            total += float(g[m])
            counts[k] = n[m]
            best = self.w[pairs] / (max(n[m], 1) * self.tau[k]) + lam[self.tok[pairs]]
            picked.append(pairs[np.argsort(-best)[:n[m]]])
        return total, counts, np.concatenate(picked), rows


def tables(w: np.ndarray, lam: np.ndarray, tau: np.ndarray, start: np.ndarray,
           first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Every device's table ``g_k(n) = max_{|S| = n} sum_{j in S} (w_j / (n tau_k) +
    lambda_j)`` for ``n = first[k] .. last[k]`` (``first >= 1``), device after device.

    ``w`` and ``lam`` hold the pairs grouped by device (device ``k``'s at ``start[k] ..
    start[k + 1]``). The compiled kernel (``_p2kernel.c``: one order kept from row to
    row, an insertion sort per row) when it is built, else numpy (a sort per row); the
    two agree to round-off (``tests/selection/test_exact.py``)."""
    out = np.empty(int(np.maximum(last - first + 1, 0).sum()))
    if _p2kernel is not None:
        _p2kernel.tables(w, lam, tau, start, first, last, out)
        return out
    offset = 0
    for k in range(len(tau)):
        n = np.arange(first[k], last[k] + 1)
        wk, lk = w[start[k]:start[k + 1]], lam[start[k]:start[k + 1]]
        score = np.multiply.outer(1.0 / (n * tau[k]), wk)
        score += lk
        score.sort(axis=1)                        # ascending, in place
        np.cumsum(score, axis=1, out=score)
        # the n largest = the row total minus its P - n smallest
        low = np.where(n < len(wk), score[np.arange(len(n)), len(wk) - n - 1], 0.0)
        out[offset:offset + len(n)] = score[:, -1] - low if len(n) else 0.0
        offset += len(n)
    return out


@dataclass
class _Node:
    """A count box with its Lagrangian bound, the multipliers and rows that gave it."""

    bound: float
    lo: np.ndarray
    hi: np.ndarray
    lam: np.ndarray
    counts: np.ndarray
    rows: list

    def __lt__(self, other):              # heapq: the largest bound first
        return self.bound > other.bound

    def tighten(self, target: float) -> bool:
        """Cut each count range to the rows whose bound, with every other device at its
        best, still beats ``target``; False when the box holds no such count vector."""
        lo, hi = self.lo.copy(), self.hi.copy()
        for k, (n, g) in enumerate(self.rows):
            keep = self.bound - g.max() + g > target
            if not keep.any():
                return False
            lo[k], hi[k] = n[keep].min(), n[keep].max()
        self.lo, self.hi = lo, hi
        return True


#: The first Polyak step scale of every box, the top of Polyak's range (0, 2]. Any
#: ``lambda >= 0`` gives a valid bound; the scale only changes how fast the bound falls:
#: on the paper preset 2 takes 388 boxes where 1 took 882 over 8 layers (docs/selection.md).
STEP_SCALE = 2.0


def _bound_box(layer: _Layer, lo, hi, lam, inc: float, steps: int) -> _Node:
    """Projected subgradient on ``lambda`` over the box (Polyak steps toward ``inc``,
    scaled by ``STEP_SCALE`` and halved after 5 steps without progress), warm-started
    at ``lam``."""
    best = None
    alpha, stalled = STEP_SCALE, 0
    for _ in range(steps):
        bound, counts, chosen, rows = layer.relaxed(lam, lo, hi)
        if best is None or bound < best.bound:
            best, stalled = _Node(bound, lo, hi, lam, counts, rows), 0
        else:
            stalled += 1
            if stalled >= 5:
                alpha, stalled = alpha / 2, 0
        sub = np.bincount(layer.tok[chosen], minlength=layer.n_tokens) - 1.0  # dL/dlambda
        sub = np.where((lam <= 0) & (sub > 0), 0.0, sub)
        norm = float(sub @ sub)
        if norm == 0 or best.bound <= inc:
            break
        lam = np.maximum(lam - alpha * (bound - inc) / norm * sub, 0.0)
    return best


def _split(node: _Node) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two children: the widest count range (relative to its size) cut at its geometric
    middle (the objective scales as ``1 / n``)."""
    width = (node.hi - node.lo) / (node.lo + 1.0)
    k = int(np.argmax(width))
    mid = int(np.floor(np.sqrt((node.lo[k] + 1.0) * (node.hi[k] + 1.0)))) - 1
    mid = min(max(mid, node.lo[k]), node.hi[k] - 1)
    left_hi, right_lo = node.hi.copy(), node.lo.copy()
    left_hi[k], right_lo[k] = mid, mid + 1
    return [(node.lo, left_hi), (right_lo, node.hi)]


def solve_layer(layer: _Layer, start: np.ndarray, deadline: float,
                options: ExactOptions) -> tuple[np.ndarray, float, Status, int]:
    """Facts 1-3 on one layer from the pair mask ``start``: ``(x, bound, status, boxes)``;
    ``status`` is optimal only when every box is closed and every flow was integral."""
    x = layer.flow(layer.counts(start))
    x = start if x is None or layer.value(x) < layer.value(start) else x
    inc = layer.value(x)

    def consider(counts):
        nonlocal x, inc
        y = layer.flow(counts)
        if y is not None and layer.value(y) > inc:
            x, inc = y, layer.value(y)

    target = lambda: inc * (1.0 + options.gap)   # noqa: E731
    heap, boxes = [], 0

    def explore(lo, hi, lam, steps):
        nonlocal boxes
        boxes += 1
        if (lo == hi).all():
            consider(lo)                         # a point: the flow is its exact value
            return
        node = _bound_box(layer, lo, hi, lam, inc, steps)
        consider(node.counts)
        if node.bound > target() and node.tighten(target()):
            if (node.lo == node.hi).all():
                consider(node.lo)
            else:
                heapq.heappush(heap, node)

    explore(np.zeros(layer.n_devices, int), layer.n_pairs, np.zeros(layer.n_tokens),
            options.subgradient_steps)
    while heap and heap[0].bound > target():
        if time.perf_counter() > deadline:
            return x, heap[0].bound, Status.TIME_LIMIT, boxes
        node = heapq.heappop(heap)
        for lo, hi in _split(node):
            explore(lo, hi, node.lam, options.box_steps)
    bound = max(heap[0].bound if heap else inc, inc)
    return x, bound, Status.FEASIBLE if layer.unsure else Status.OPTIMAL, boxes


def _solve_identity_layer(job) -> tuple[np.ndarray, float, Status, int]:
    """One identity-placement layer, ``job = (weights, allowed, tau, start, deadline,
    options)`` (all ``[J, E]`` / ``[U]`` arrays, so it pickles to a worker process)."""
    weights, allowed, tau, start, deadline, options = job
    silence_highs_banner()                # once per (worker) process: keeps --json clean
    layer = _Layer(weights, allowed, tau)
    x, bound, status, boxes = solve_layer(layer, start[layer.tok, layer.dev], deadline, options)
    mask = np.zeros(allowed.shape, dtype=bool)
    mask[layer.tok[x], layer.dev[x]] = True
    return mask, bound, status, boxes


@register("p2", "exact", options=ExactOptions, backends=("highspy",), exact=True)
def solve_exact(problem: SelectionProblem, options: ExactOptions) -> Solution:
    """Exact P2 by branch and bound on per-device counts, each count vector a flow."""
    deadline = time.perf_counter() + options.time_limit
    silence_highs_banner()
    inst = problem.instance
    if not inst.identity_placement:       # u != p: the flow of fact 1 does not hold
        for name in ("subgradient_steps", "box_steps", "workers"):
            if getattr(options, name) != getattr(ExactOptions(), name):
                raise InputError(f"the '{name}' option of p2/exact", "is not used under a "
                                 "shared placement (the method runs the MILP there)",
                                 getattr(options, name))
        return solve_by_layer(problem, MilpOptions(time_limit=options.time_limit,
                                                   mip_gap=options.gap),
                              highspy_layer, "p2/exact")
    times, allowed = LayerTimes(problem), problem.allowed_mask()
    starts = warm_start_masks(problem)
    jobs = [(inst.gating_weights[i], allowed[i], times.comm[i] + times.comp, starts[i],
             deadline, options) for i in range(inst.n_layers)]
    if options.workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(options.workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_solve_identity_layer, jobs))
    else:
        results = [_solve_identity_layer(job) for job in jobs]
    mask = np.stack([r[0] for r in results])
    statuses = [r[2] for r in results]
    status = (Status.OPTIMAL if all(s == Status.OPTIMAL for s in statuses)
              else Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else Status.FEASIBLE)
    return Solution.evaluate(
        inst, check_selection(problem, mask), problem.bandwidth_hz, problem="p2",
        method="p2/exact", status=status, wlr_upper_bound=sum(r[1] for r in results),
        tolerance=options.gap,
        extra={"support": problem.support, "layers_optimal": statuses.count(Status.OPTIMAL),
               "boxes": [r[3] for r in results]})
