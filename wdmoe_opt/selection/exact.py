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
   largest such scores of device ``k``'s allowed pairs). Its minimum over
   ``lambda`` is the bound of the configuration (Dantzig-Wolfe) relaxation;
   projected subgradient steps (Polyak's step to the incumbent) approach it.
3. **Enumerate only the counts the bound cannot rule out.** With ``lambda``
   fixed the bound is a sum of one table per device, so the count vectors are
   visited best bound first (a heap over the sorted per-device tables); each is
   solved exactly by (1); the search stops, **proven**, when the next bound is
   within ``gap`` (relative) of the incumbent. The certified ``wlr_upper_bound``
   of a layer is that next bound (or the incumbent when none is left).

A layer stopped by ``time_limit`` keeps its incumbent and the bound of the first
unvisited count vector (status ``time_limit``). Both supports work (under ``all``
every token may keep any non-empty subset; the flow and the tables simply see all
``E`` pairs). Under a shared placement ``u != p`` and the flow of (1) no longer
holds; such layers go to the exact per-layer MILP (``p2/milp-highspy``), whose
status and bound are reported the same way (docs/selection.md says where that stops).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np

from ..options import Options, option
from ..problems import SelectionProblem
from ..registry import register
from ..solution import Solution, Status
from .common import LayerTimes, check_selection
from .milp import MilpOptions, highspy_layer, silence_highs_banner, warm_start_masks
from .milp_model import layer_milp


@dataclass(frozen=True)
class ExactOptions(Options):
    """Knobs of ``p2/exact``."""

    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds, all layers")
    gap: float = option(1e-7, "unit", "relative WLR gap at which a layer counts as proven")
    subgradient_steps: int = option(300, "positive_int",
                                    "Lagrangian multiplier updates per layer (fact 2)")


class _Layer:
    """One identity-placement layer: pairs grouped by device, the flow LP, the tables."""

    def __init__(self, weights: np.ndarray, allowed: np.ndarray, tau: np.ndarray):
        self.n_tokens, self.n_devices = allowed.shape
        self.tau = tau
        self.tok, self.dev = np.nonzero(allowed)                     # pairs, token-major
        self.w = weights[self.tok, self.dev]
        self.by_dev = [np.flatnonzero(self.dev == k) for k in range(self.n_devices)]
        self.n_pairs = np.array([len(p) for p in self.by_dev])
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
    def tables(self, lam: np.ndarray):
        """``(g, best_pairs)``: ``g[k][n]`` for ``n = 0..P_k`` and, per device, the pairs
        of its best ``n`` (the maximizer of the relaxed problem)."""
        g, best = [], []
        for k, pairs in enumerate(self.by_dev):
            P = len(pairs)
            if P == 0:
                g.append(np.zeros(1))
                best.append(pairs)
                continue
            n = np.arange(1, P + 1)[:, None]
            score = self.w[pairs][None, :] / (n * self.tau[k]) + lam[self.tok[pairs]][None, :]
            top = -np.sort(-score, axis=1)
            gk = np.r_[0.0, np.cumsum(top, axis=1)[np.arange(P), np.arange(P)]]
            g.append(gk)
            m = int(np.argmax(gk))
            best.append(pairs[np.argsort(-score[m - 1])[:m]] if m else pairs[:0])
        return g, best

    def lagrangian(self, lam: np.ndarray):
        g, best = self.tables(lam)
        return sum(float(gk.max()) for gk in g) - float(lam.sum()), g, best


def _multipliers(layer: _Layer, x: np.ndarray, deadline: float, steps: int):
    """Projected subgradient on ``lambda`` (Polyak steps toward the incumbent, halved
    after 10 steps without progress). Each step's relaxed optimum gives counts whose
    flow (fact 1) may improve the incumbent ``x`` (a Lagrangian heuristic).

    Returns ``(x, bound, tables)``: the best incumbent and the least bound seen."""
    lam = np.zeros(layer.n_tokens)
    inc = layer.value(x)
    best_bound, best_tables = np.inf, None
    alpha, stalled = 2.0, 0
    for _ in range(steps):
        bound, tables, picked = layer.lagrangian(lam)
        if bound < best_bound:
            best_bound, best_tables, stalled = bound, tables, 0
        else:
            stalled += 1
            if stalled >= 10:
                alpha, stalled = alpha / 2, 0
        chosen = np.concatenate(picked)
        y = layer.flow(layer.counts_of(chosen))
        if y is not None and layer.value(y) > inc:
            x, inc = y, layer.value(y)
        sub = np.bincount(layer.tok[chosen], minlength=layer.n_tokens) - 1.0  # dL/dlambda
        sub = np.where((lam <= 0) & (sub > 0), 0.0, sub)
        norm = float(sub @ sub)
        if norm == 0 or best_bound <= inc or time.perf_counter() > deadline:
            break
        lam = np.maximum(lam - alpha * (bound - inc) / norm * sub, 0.0)
    return x, best_bound, best_tables


def _count_vectors(tables):
    """Count vectors in order of decreasing ``sum_k g_k(n_k)``: ``(value, counts)``."""
    order = [np.argsort(-g, kind="stable") for g in tables]
    vals = [g[o] for g, o in zip(tables, order, strict=True)]
    U = len(tables)
    start = (0,) * U
    heap = [(-sum(v[0] for v in vals), start)]
    seen = {start}
    while heap:
        neg, idx = heapq.heappop(heap)
        yield -neg, np.array([order[k][i] for k, i in enumerate(idx)])
        for k in range(U):
            if idx[k] + 1 < len(vals[k]):
                nxt = idx[:k] + (idx[k] + 1,) + idx[k + 1:]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (neg + vals[k][idx[k]] - vals[k][idx[k] + 1], nxt))


def solve_layer(layer: _Layer, start: np.ndarray, deadline: float,
                options: ExactOptions) -> tuple[np.ndarray, float, Status, int]:
    """Facts 1-3 on one layer from the pair mask ``start``: ``(x, bound, status, count
    vectors visited)``; the bound is certified unless a flow was not integral."""
    x = layer.flow(layer.counts(start))
    x = start if x is None or layer.value(x) < layer.value(start) else x
    x, lam_bound, tables = _multipliers(layer, x, deadline, options.subgradient_steps)
    inc = layer.value(x)
    offset = lam_bound - sum(float(g.max()) for g in tables)   # = -sum(lambda)
    proven = Status.FEASIBLE if layer.unsure else Status.OPTIMAL
    visited = 0
    for total, counts in _count_vectors(tables):
        bound = total + offset
        if bound <= inc * (1.0 + options.gap):
            return x, max(bound, inc), proven, visited
        if time.perf_counter() > deadline:
            return x, bound, Status.TIME_LIMIT, visited
        visited += 1
        y = layer.flow(counts)
        if y is not None and layer.value(y) > inc:
            x, inc = y, layer.value(y)
        proven = Status.FEASIBLE if layer.unsure else proven
    return x, inc, proven, visited


@register("p2", "exact", options=ExactOptions, backends=("highspy",), exact=True)
def solve_exact(problem: SelectionProblem, options: ExactOptions) -> Solution:
    """Exact P2 by count enumeration under a Lagrangian bound, each count vector a flow."""
    clock = time.perf_counter()
    silence_highs_banner()
    inst = problem.instance
    times, allowed = LayerTimes(problem), problem.allowed_mask()
    starts = warm_start_masks(problem)
    mask = np.zeros(allowed.shape, dtype=bool)
    bound, statuses, visited = 0.0, [], []
    n_layers = inst.n_layers
    for i in range(n_layers):
        left = options.time_limit - (time.perf_counter() - clock)
        deadline = time.perf_counter() + max(left / (n_layers - i), 1e-3)
        if inst.identity_placement:
            layer = _Layer(inst.gating_weights[i], allowed[i], times.comm[i] + times.comp)
            x, b, status, n = solve_layer(layer, starts[i][layer.tok, layer.dev],
                                          deadline, options)
            mask[i][layer.tok[x], layer.dev[x]] = True
        else:
            lm = layer_milp(times, allowed, i)
            res = highspy_layer(lm, lm.start(starts[i]), deadline - time.perf_counter(),
                                MilpOptions(mip_gap=options.gap))
            mask[i] = lm.mask(res.q, inst.n_experts) if res.q is not None else starts[i]
            b, status, n = res.bound, res.status, 0
            if res.q is None:
                b, status = np.inf, Status.TIME_LIMIT
        bound += b
        statuses.append(status)
        visited.append(n)
    status = (Status.OPTIMAL if all(s == Status.OPTIMAL for s in statuses)
              else Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else Status.FEASIBLE)
    return Solution.evaluate(
        inst, check_selection(problem, mask), problem.bandwidth_hz, problem="p2",
        method="p2/exact", status=status, wlr_upper_bound=bound,
        extra={"support": problem.support, "layers_optimal": statuses.count(Status.OPTIMAL),
               "count_vectors_visited": visited})

