"""``p2/milp-highspy`` (also ``p2/milp``, the CLI name) and the per-layer driver
that ``p2/milp-pyomo`` shares: the exact P2 (eqs. 15-17) at a given bandwidth.

The formulation is in :mod:`.milp_model`. The driver solves layer by layer (P2
separates by layer), splits the time limit over the layers still to solve, warm
starts each layer from the best heuristic (Top-K, Algorithms 1 and 2), and sums
the layers' incumbents and dual bounds. Status: ``optimal`` when every layer is
proven optimal (within ``mip_gap``), ``time_limit`` when a layer stopped on time
with an incumbent (returned, with the bound), ``error`` otherwise.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..model import Selection
from ..options import Options, option
from ..problems import SelectionProblem
from ..registry import get_method, register
from ..solution import Solution, Status
from .common import LayerTimes, check_selection
from .milp_model import LayerMilp, layer_milp


@dataclass(frozen=True)
class MilpBaseOptions(Options):
    """Knobs of the exact P2 MILP (both routes)."""

    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds, all layers")
    mip_gap: float = option(1e-7, "unit", "relative MIP gap at which a layer is optimal")
    threads: int = option(1, "positive_int", "solver threads")


@dataclass(frozen=True)
class MilpOptions(MilpBaseOptions):
    """Knobs of the highspy route, which also takes a MIP start."""

    warm_start: bool = option(True, "bool", "start each layer from the best heuristic")


@dataclass(frozen=True)
class LayerResult:
    """What a route returns for one layer."""

    q: np.ndarray | None        # column values of q (None: no incumbent)
    objective: float
    bound: float
    status: Status


#: ``route(layer, start_columns_or_None, time_limit_s, options) -> LayerResult``.
Route = Callable[[LayerMilp, dict | None, float, MilpBaseOptions], LayerResult]

#: Heuristics the warm start picks from (their best WLR per layer).
WARM_START_METHODS = ("p2/topk", "p2/alg1", "p2/alg2")


def warm_start_masks(problem: SelectionProblem) -> np.ndarray:
    """``[I, J, E]``: per layer, the heuristic selection with the highest layer WLR."""
    times = LayerTimes(problem)
    masks = np.stack([get_method(m)(problem).selection.mask for m in WARM_START_METHODS])
    best = np.argmax(times.wlr(masks).sum(axis=-1), axis=0)        # [I]
    return masks[best, np.arange(len(best))]


@functools.cache
def silence_highs_banner() -> None:
    """HiGHS prints its banner on stdout (C level) when the process builds its first
    ``Highs``, before any option can be set; that would corrupt ``--json`` output.
    Build that first one with file descriptor 1 pointed at /dev/null."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def solve_by_layer(problem: SelectionProblem, options: MilpBaseOptions, route: Route,
                   method: str) -> Solution:
    """Solve every layer's MILP with ``route`` and assemble the P2 solution.

    Each layer's returned point is re-scored with eq. (12); a point worse than the
    solver's own objective (beyond round-off) demotes the layer to ``feasible``.
    """
    start_clock = time.perf_counter()
    silence_highs_banner()
    inst = problem.instance
    times, allowed = LayerTimes(problem), problem.allowed_mask()
    starts = warm_start_masks(problem) if getattr(options, "warm_start", False) else None
    mask = np.zeros(allowed.shape, dtype=bool)
    bound, statuses, layer_gaps = 0.0, [], []
    n_layers = inst.n_layers
    for i in range(n_layers):
        left = options.time_limit - (time.perf_counter() - start_clock)
        budget = max(left / (n_layers - i), 1e-3)
        lm = layer_milp(times, allowed, i)
        res = route(lm, None if starts is None else lm.start(starts[i]), budget, options)
        if res.q is None:
            return _failed(problem, method, f"layer {i}: no incumbent ({res.status})")
        mask[i] = lm.mask(res.q, inst.n_experts)
        value = float(times.wlr(mask[i][None], slice(i, i + 1)).sum())
        consistent = value >= res.objective - 1e-6 * max(1.0, abs(res.objective))
        bound += res.bound
        statuses.append(res.status if consistent else Status.FEASIBLE)
        layer_gaps.append(res.bound - value)
    status = (Status.OPTIMAL if all(s == Status.OPTIMAL for s in statuses)
              else Status.TIME_LIMIT if Status.TIME_LIMIT in statuses else Status.FEASIBLE)
    return Solution.evaluate(
        inst, check_selection(problem, mask), problem.bandwidth_hz, problem="p2",
        method=method, status=status, wlr_upper_bound=bound, tolerance=options.mip_gap,
        extra={"support": problem.support, "layers_optimal": statuses.count(Status.OPTIMAL),
               "max_layer_gap": float(max(layer_gaps))})


def _failed(problem: SelectionProblem, method: str, why: str) -> Solution:
    inst = problem.instance
    return Solution.evaluate(inst, Selection.topk(inst), problem.bandwidth_hz, problem="p2",
                             method=method, status=Status.ERROR, extra={"error": why})


def highspy_layer(lm: LayerMilp, start: dict | None, time_limit: float,
                  options: MilpOptions) -> LayerResult:
    """Build layer ``lm``'s MILP directly as HiGHS arrays and solve it."""
    import highspy
    from scipy.sparse import coo_matrix

    nq, nx, nl = lm.n_q, lm.n_x, lm.n_levels
    oz, oy = nq + nx, nq + nx + nl                       # column offsets of z and y
    ncol = oy + nl
    U = lm.n_devices
    rows: list[tuple] = []                               # (row ids, col ids, values, lo, hi)
    n_rows = 0

    def family(r, c, v, lo, hi):
        nonlocal n_rows
        rows.append((np.asarray(r) + n_rows, c, v, lo, hi))
        n_rows += len(lo)

    one_q = np.ones(nq)
    family(lm.pair_token, np.arange(nq), one_q,                     # eq. (16): >= 1 expert
           np.ones(lm.n_tokens), np.full(lm.n_tokens, np.inf))
    zeros_u, inf_u = np.zeros(U), np.full(U, np.inf)
    if lm.identity:
        link_dev, link_col = lm.pair_device, np.arange(nq)
    else:                                                           # x = OR of its q
        link_dev, link_col = lm.x_device, nq + np.arange(nx)
        family(np.r_[np.arange(nq), np.arange(nq)], np.r_[np.arange(nq), nq + lm.pair_x],
               np.r_[one_q, -one_q], np.full(nq, -np.inf), np.zeros(nq))
        family(np.r_[np.arange(nx), lm.pair_x], np.r_[nq + np.arange(nx), np.arange(nq)],
               np.r_[np.ones(nx), -one_q], np.full(nx, -np.inf), np.zeros(nx))
        family(np.r_[lm.level_device, lm.pair_device], np.r_[oz + np.arange(nl), np.arange(nq)],
               np.r_[lm.level_p, -one_q], zeros_u, zeros_u)         # p = sum q on k
    family(lm.level_device, oz + np.arange(nl), np.ones(nl), -inf_u, np.ones(U))
    family(np.r_[lm.level_device, link_dev], np.r_[oz + np.arange(nl), link_col],
           np.r_[lm.level_u, -np.ones(len(link_col))], zeros_u, zeros_u)   # u = sum x on k
    family(np.r_[lm.level_device, lm.pair_device], np.r_[oy + np.arange(nl), np.arange(nq)],
           np.r_[np.ones(nl), -lm.pair_weight], zeros_u, zeros_u)         # numerator
    family(np.r_[np.arange(nl), np.arange(nl)], np.r_[oy + np.arange(nl), oz + np.arange(nl)],
           np.r_[np.ones(nl), -lm.level_bound], np.full(nl, -np.inf), np.zeros(nl))
    r, c, v, lo, hi = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    a = coo_matrix((v, (r, c)), shape=(n_rows, ncol)).tocsr()

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", float(options.mip_gap))
    h.setOptionValue("threads", int(options.threads))
    cost = np.r_[np.zeros(oz + nl), lm.level_coef]
    upper = np.r_[np.ones(oz + nl), lm.level_bound]
    h.addVars(ncol, np.zeros(ncol), upper)
    h.changeColsCost(ncol, np.arange(ncol, dtype=np.int32), cost)
    h.changeColsIntegrality(oy, np.arange(oy, dtype=np.int32),
                            np.full(oy, int(highspy.HighsVarType.kInteger), dtype=np.uint8))
    h.addRows(n_rows, lo, hi, a.nnz, a.indptr[:-1].astype(np.int32),
              a.indices.astype(np.int32), a.data)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    # Presolve off, always (HiGHS 1.16): with it, a MIP start's columns come back
    # instead of the better incumbent (wdmoe-sim seed 202, 2 layers x 6 tokens x 4
    # experts), and the Pyomo route's model of seed 507 (shared placement) was "proved"
    # optimal 1 % below the optimum. Both are regression tests.
    h.setOptionValue("presolve", "off")
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(np.r_[start["q"], start["x"], start["z"], start["y"]])
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    ms = h.getModelStatus()
    info = h.getInfo()
    has_point = info.primal_solution_status == 2
    q = np.array(h.getSolution().col_value[:nq]) if has_point else None
    status = {highspy.HighsModelStatus.kOptimal: Status.OPTIMAL,
              highspy.HighsModelStatus.kTimeLimit: Status.TIME_LIMIT}.get(ms, Status.ERROR)
    return LayerResult(q, float(info.objective_function_value),
                       float(info.mip_dual_bound), status)


@register("p2", "milp-highspy", options=MilpOptions, backends=("highspy",), exact=True,
          aliases=("milp",))
def solve_milp_highspy(problem: SelectionProblem, options: MilpOptions) -> Solution:
    """Exact P2: per-layer MILP with the sum of ratios linearized exactly, built in highspy."""
    return solve_by_layer(problem, options, highspy_layer, "p2/milp-highspy")
