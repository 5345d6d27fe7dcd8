"""``p5/milp``: the exact placement on small instances (HiGHS), with a lower bound.

P5 has P3 inside, and P3's times ``u c_k(B) + p a_k`` (eq. 10) are bilinear in the
load ``u`` and the nonlinear ``c_k(B)`` (eq. 6). The MILP below is a *relaxation*
of P5 on a bandwidth grid ``0 = b_0 < b_1 < ... < b_L = B`` (geometric above
``b_1``): each device picks one interval ``[b_l, b_{l+1}]`` per batch, pays only
``b_l`` of the budget and gets the per-token time ``c_k(b_{l+1})`` of the interval's
top. Any real allocation maps to one such choice that costs no more budget and
is no slower (``c`` decreases), so its optimum is a lower bound of P5.

Variables (per batch ``n``, layer ``i``, token ``j``, expert ``e``, device ``k``):
``x[i, e, k]`` binary placement (``sum_k x = 1``, ``sum_e x <= capacity``);
``z[n, i, j, k] >= x[i, e, k]`` for the token's selected experts (token sent to
``k``; ``u = sum_j z``); ``v[n, k, l]`` binary interval choice (``sum_l v = 1``,
``sum_{k, l} b_l v <= B``); the load split over the intervals,
``w[n, i, k, l] <= Jb v[n, k, l]``, ``sum_l w = u`` (so ``w_l = u v_l``, the product
linearized exactly); ``s[n, i] >= sum_l c_k(b_{l+1}) w_l + a_k p`` with
``p = sum_e pairs[n, i, e] x``. Minimize ``mean_n sum_i s[n, i]``.

Exactness comes from a no-good loop. The incumbent starts at ``p5/local-search``'s
placement (from ``greedy``); then: solve the relaxation, score its placement
exactly (P3 per batch), cut that placement off (``sum_{x* = 1} x <= I E - 1``),
re-solve; the relaxation's optimum bounds every placement not yet scored, so
``min(best score, last relaxation)`` is a lower bound of P5, and the loop stops
``optimal`` once the relaxation reaches the best score (within ``tol``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..model import latency as lat
from ..model.instance import experts_per_device
from ..model.replicas import route_loads
from ..options import Options, option
from ..registry import register
from ..selection.milp import silence_highs_banner
from ..solution import Solution, Status
from .evaluate import PlacementEvaluator
from .heuristics import greedy
from .local_search import LocalSearchOptions, local_search, move_targets
from .problem import PlacementProblem
from .replicate import replicate
from .result import placement_solution


@dataclass(frozen=True)
class PlacementMilpOptions(Options):
    """Knobs of ``p5/milp``."""

    levels: int = option(64, "positive_int", "bandwidth intervals of the relaxation")
    min_share: float = option(1e-2, "unit", "b_1 / (B / U): the first grid point")
    tol: float = option(1e-4, "unit", "relative gap at which the loop stops optimal")
    max_rounds: int = option(200, "positive_int", "relaxations solved (no-good cuts)")
    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds")
    threads: int = option(1, "positive_int", "solver threads")


def bandwidth_grid(problem: PlacementProblem, options: PlacementMilpOptions) -> np.ndarray:
    """``b_0 = 0, b_1 .. b_L = B`` (Hz), geometric above ``b_1 = min_share B / U``."""
    inst = problem.instance
    total = inst.system.total_bandwidth_hz
    first = options.min_share * total / inst.n_devices
    return np.r_[0.0, np.geomspace(first, total, options.levels)]


class RelaxationModel:
    """The relaxed P5 MILP (module docstring) in HiGHS, re-solved with no-good cuts."""

    def __init__(self, problem: PlacementProblem, ev: PlacementEvaluator,
                 options: PlacementMilpOptions):
        import highspy
        from scipy.sparse import coo_matrix

        silence_highs_banner()
        inst = problem.instance
        N, I, Jb, E = ev.shape
        U = inst.n_devices
        grid = bandwidth_grid(problem, options)
        L = grid.size - 1
        total = inst.system.total_bandwidth_hz
        comm = lat.comm_time_per_token_s(inst, np.repeat(grid[1:, None], U, axis=1))  # [L,I,U]
        comp = lat.compute_time_per_token_s(inst)                                  # [U]
        # seconds -> O(1) coefficients: one batch's tokens on one device at the even split
        scale = Jb * float((lat.comm_time_per_token_s(inst, lat.uniform_bandwidth_hz(inst))
                            + comp).max())
        self.scale_s, self.shape = scale, (N, I, Jb, E, U, L)
        # column blocks: x [I,E,U], z [N,I,Jb,U], v [N,U,L], s [N,I], w [N,I,U,L], and
        # with replication the route y [selected pairs, U]
        R = problem.max_replicas
        pair_idx = np.argwhere(ev.q) if R > 1 else np.zeros((0, 4), dtype=np.int64)
        nx, nz, nv, ns, nw = I * E * U, N * I * Jb * U, N * U * L, N * I, N * I * U * L
        ny = len(pair_idx) * U
        oz, ov, os_, ow = nx, nx + nz, nx + nz + nv, nx + nz + nv + ns
        oy = ow + nw
        self.nx, self.oy, self.pairs, ncol = nx, oy, pair_idx, oy + ny
        yi = oy + np.arange(ny).reshape(len(pair_idx), U)
        xi = np.arange(nx).reshape(I, E, U)
        zi = oz + np.arange(nz).reshape(N, I, Jb, U)
        vi = ov + np.arange(nv).reshape(N, U, L)
        si = os_ + np.arange(ns).reshape(N, I)
        wi = ow + np.arange(nw).reshape(N, I, U, L)
        rows, lo, hi = [], [], []
        n_rows = 0

        def add(cols, vals, low, high):
            nonlocal n_rows
            rows.append((np.full(len(cols), n_rows), np.asarray(cols), np.asarray(vals, float)))
            lo.append(low)
            hi.append(high)
            n_rows += 1

        for i in range(I):
            for e in range(E):                          # each expert placed 1..R times
                add(xi[i, e], np.ones(U), 1.0, float(R))
            for k in range(U):                                   # capacities
                add(xi[i, :, k], np.ones(E), -np.inf, float(problem.capacity[i, k]))
        if R == 1:
            n_idx, i_idx, j_idx, e_idx = np.nonzero(ev.q)
            for n, i, j, e in zip(n_idx, i_idx, j_idx, e_idx, strict=True):
                for k in range(U):                               # z >= x (token sent)
                    add([zi[n, i, j, k], xi[i, e, k]], [1.0, -1.0], 0.0, np.inf)
        for t, (n, i, j, e) in enumerate(pair_idx):   # each pair routed to one copy
            add(yi[t], np.ones(U), 1.0, 1.0)
            for k in range(U):                        # y <= x (a copy there), z >= y (sent)
                add([yi[t, k], xi[i, e, k]], [1.0, -1.0], -np.inf, 0.0)
                add([zi[n, i, j, k], yi[t, k]], [1.0, -1.0], 0.0, np.inf)
        routed = {}                                   # (n, i) -> the route columns' pairs
        for t, (n, i, _, _) in enumerate(pair_idx):
            routed.setdefault((int(n), int(i)), []).append(t)
        for n in range(N):
            for k in range(U):                                   # one interval
                add(vi[n, k], np.ones(L), 1.0, 1.0)
            add(vi[n].ravel(), np.tile(grid[:-1] / total, U), -np.inf, 1.0)   # budget
            for i in range(I):
                pairs = ev.pairs[n, i]                           # [E]
                for k in range(U):
                    # u = sum_j z split over the intervals: w_l <= Jb v_l, sum_l w_l = u
                    add(np.r_[wi[n, i, k], zi[n, i, :, k]], np.r_[np.ones(L), -np.ones(Jb)],
                        0.0, 0.0)
                    for lv in range(L):
                        add([wi[n, i, k, lv], vi[n, k, lv]], [1.0, -float(Jb)], -np.inf, 0.0)
                    # s >= sum_l c_k(b_{l+1}) w_l + a_k p  (p = pairs x, or the routed y)
                    p_cols, p_vals = xi[i, :, k], comp[k] / scale * pairs
                    if R > 1:
                        p_cols = yi[routed.get((n, i), []), k]
                        p_vals = np.full(p_cols.size, comp[k] / scale)
                    add(np.r_[si[n, i], wi[n, i, k], p_cols],
                        np.r_[1.0, -comm[:, i, k] / scale, -p_vals], 0.0, np.inf)
        r, c, v = (np.concatenate(p) for p in zip(*rows, strict=True))
        a = coo_matrix((v, (r, c)), shape=(n_rows, ncol)).tocsr()
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", int(options.threads))
        h.setOptionValue("mip_rel_gap", float(options.tol) / 2)
        upper = np.r_[np.ones(nx + nz + nv), np.full(ns + nw, np.inf), np.ones(ny)]
        h.addVars(ncol, np.zeros(ncol), upper)
        h.changeColsCost(ncol, np.arange(ncol, dtype=np.int32),
                         np.r_[np.zeros(os_), np.full(ns, 1.0 / N), np.zeros(nw + ny)])
        binary = np.r_[np.arange(nx), ov + np.arange(nv), oy + np.arange(ny)].astype(np.int32)
        h.changeColsIntegrality(binary.size, binary,
                                np.full(binary.size, int(highspy.HighsVarType.kInteger),
                                        dtype=np.uint8))
        h.addRows(n_rows, np.asarray(lo), np.asarray(hi), a.nnz,
                  a.indptr[:-1].astype(np.int32), a.indices.astype(np.int32), a.data)
        self.h, self.highspy = h, highspy

    def solve(self, time_limit: float) -> tuple[np.ndarray | None, float, bool]:
        """``(placement or None, lower bound s, proven)`` of the current relaxation (its
        dual bound is valid for every placement not cut off, proven or not). With
        replication the placement is ``(x [I, E, U] bool, route [N, I, Jb, E])``."""
        h = self.h
        h.setOptionValue("time_limit", max(float(time_limit), 1e-3))
        h.run()
        info = h.getInfo()
        status = h.getModelStatus()
        proven = status == self.highspy.HighsModelStatus.kOptimal
        if status == self.highspy.HighsModelStatus.kInfeasible:
            return None, np.inf, True
        bound = float(info.mip_dual_bound) * self.scale_s
        if info.primal_solution_status != 2:
            return None, bound, False
        N, I, Jb, E, U, L = self.shape
        col = np.array(h.getSolution().col_value)
        x = col[:self.nx].reshape(I, E, U)
        if not len(self.pairs):
            return x.argmax(axis=2), bound, proven
        route = np.full((N, I, Jb, E), -1, dtype=np.int64)
        y = col[self.oy:].reshape(len(self.pairs), U)
        route[tuple(self.pairs.T)] = y.argmax(axis=1)
        return (x > 0.5, route), bound, proven

    def cut(self, placement) -> None:
        """Exclude ``placement``: ``sum_{x* = 1} x <= I E - 1``; with replication the
        pair ``(x*, route*)``: ``sum_{x* = 1} x - sum_{x* = 0} x + sum_{y* = 1} y <=
        |x*| + |y*| - 1`` (the copies may number 1..R, so the zeros count too)."""
        N, I, Jb, E, U, L = self.shape
        if not len(self.pairs):
            cols = (np.arange(I * E) * U + placement.ravel()).astype(np.int32)
            self.h.addRow(-np.inf, float(I * E - 1), cols.size, cols, np.ones(cols.size))
            return
        x, route = placement
        ycols = self.oy + np.arange(len(self.pairs)) * U + route[tuple(self.pairs.T)]
        cols = np.r_[np.arange(self.nx), ycols].astype(np.int32)
        vals = np.r_[np.where(x.ravel(), 1.0, -1.0), np.ones(ycols.size)]
        self.h.addRow(-np.inf, float(x.sum() + ycols.size - 1), cols.size, cols, vals)


@register("p5", "milp", options=PlacementMilpOptions, backends=("highspy",), exact=True)
def solve_milp(problem: PlacementProblem, options: PlacementMilpOptions) -> Solution:
    """Exact P5 on small instances: a bandwidth-grid MILP relaxation and no-good cuts."""
    clock = time.perf_counter()
    ev = PlacementEvaluator(problem)
    model = RelaxationModel(problem, ev, options)
    # the incumbent starts at the local search's placement (and copies, routed by the
    # split rule): a lower score stops the loop sooner (a relaxation at or above it
    # proves it optimal)
    # the start's searches share this method's own time limit
    search = LocalSearchOptions(time_limit=options.time_limit)
    best = local_search(problem, greedy(problem, ev)[0], search, ev)[0]
    bound, rounds, stop = 0.0, 0, "max_rounds"
    replicas = route = None
    if problem.max_replicas > 1:
        replicas, _ = replicate(problem, best, ev, move_targets(
            problem, experts_per_device(best, ev.U), None),
            time_limit=max(options.time_limit - (time.perf_counter() - clock), 1e-3),
            max_passes=search.max_passes, full_neighbourhood=search.full_neighbourhood)
    best_score = ev.score(best, replicas)
    for _ in range(options.max_rounds):
        rounds += 1
        left = options.time_limit - (time.perf_counter() - clock)
        if left <= 0:
            stop = "time limit"
            break
        pl, relax, proven = model.solve(left)
        bound = relax
        if pl is None:
            stop = "exhausted" if proven else "time limit"
            break
        if problem.max_replicas > 1:           # copies x and the optimal route
            x, y = pl
            score = float(ev.batch_latency(*route_loads(y, ev.U)).mean())
            if score < best_score:
                best_score, route = score, y
                replicas = np.where(x, np.arange(ev.U), ev.U)
                replicas = np.sort(replicas, axis=-1)[:, :, :int(x.sum(axis=-1).max())]
                replicas[replicas == ev.U] = -1
                best = replicas[:, :, 0]
        else:
            score = ev.score(pl)
            if score < best_score:
                best, best_score = pl, score
        if not proven:
            stop = "time limit"
            break
        if relax >= best_score * (1 - options.tol):
            stop = "optimal"
            break
        model.cut(pl)
    lower = min(best_score, bound)
    status = {"optimal": Status.OPTIMAL, "exhausted": Status.OPTIMAL,
              "time limit": Status.TIME_LIMIT}.get(stop, Status.FEASIBLE)
    return placement_solution(problem, best, method="p5/milp", status=status,
                              lower_bound_s=lower, tolerance=options.tol,
                              replicas=replicas, route=route,
                              extra={"rounds": rounds, "stopped": stop,
                                     "relaxation_bound_s": bound, "search_objective_s":
                                     best_score, "levels": options.levels})
