"""Minimum latency subject to a retained-weight floor: a single-level alternative to P1.

    ``min_{q, B}  T(q, B) = sum_i max_k t[i, k]``   (eqs. 10-13)
    s.t. ``retained_weight(q) >= rho``  (SPEC §1's accuracy proxy), eqs. 16-17 and 20-21.

Sweeping ``rho`` traces the latency-accuracy trade-off curve.

* ``p1-floor/exact`` (tiny instances): per layer, the enumerated selections
  (:mod:`.enumerate`) reduced to the non-dominated ones (fewer tokens and pairs on
  every device, more weight); every profile meeting the floor is scored by the exact
  P3 method in order of a valid lower bound (each device given the whole band), and
  the search stops once that bound reaches the incumbent.
* ``p1-floor/greedy`` (any size): greedy at a fixed bandwidth (uniform, then the last
  P3 allocation): repeatedly drop, in each layer, the lowest-weight droppable expert
  on the slowest device while the floor allows, layers with the best latency saved per
  weight first; then P3. Keeps the best of ``rounds`` rounds. Drops only (a subset of
  each token's Top-K, Algorithm 1's move set).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..model import Selection
from ..model import latency as lat
from ..options import Options, option, step_option
from ..problems import SelectionProblem, WeightFloorProblem
from ..registry import Step, register
from ..selection.common import LayerTimes, RankedSelection, refuse_large
from ..solution import Solution, Status
from .enumerate import all_candidates, device_times
from .sequential import allocate


@dataclass(frozen=True)
class WeightFloorOptions(Options):
    """The P3 step scoring each selection."""

    bandwidth: Step = step_option("p3", "exact", "P3 step")


@dataclass(frozen=True)
class GreedyFloorOptions(WeightFloorOptions):
    """The P3 step, and the heuristic's rounds."""

    rounds: int = option(3, "positive_int", "(drop, P3) rounds")


def _finish(problem: WeightFloorProblem, sol: Solution, method: str, status,
            lower_bound_s=None, tolerance=None, **extra) -> Solution:
    return sol.restate(problem="p1-floor", method=method, status=status,
                       lower_bound_s=lower_bound_s, tolerance=tolerance,
                       extra={"min_retained_weight": problem.min_retained_weight,
                              "support": problem.support, "bandwidth_method": sol.method,
                              **extra})


def _undominated(u, p, w) -> np.ndarray:
    """Indices of candidates no other beats (loads <= everywhere, weight >=, one strict)."""
    le = ((u[:, None] >= u[None]) & (p[:, None] >= p[None])).all(axis=2)   # [a, b]: b <= a
    ge = w[None] >= w[:, None]
    strict = (u[:, None] > u[None]).any(axis=2) | (p[:, None] > p[None]).any(axis=2) | (
        w[None] > w[:, None])
    dominated = (le & ge & strict).any(axis=1)
    _, first = np.unique(np.column_stack([u, p, w]), axis=0, return_index=True)
    return np.intersect1d(np.flatnonzero(~dominated), first)


@register("p1-floor", "exact", options=WeightFloorOptions, exact=True)
def solve_weight_floor_exact(problem: WeightFloorProblem, options: WeightFloorOptions) -> Solution:
    """Min latency with retained weight >= a floor, exactly, by enumeration + exact P3 (tiny)."""
    inst = problem.instance
    cands = all_candidates(inst, problem.support)
    need = problem.min_retained_weight * inst.topk_weight_total * (1 - 1e-12)
    full = np.full(inst.n_devices, inst.system.total_bandwidth_hz)
    layers = []
    for c in cands:
        keep = _undominated(c.u, c.p, c.num.sum(axis=1))
        layers.append((keep, c.num.sum(axis=1)[keep],
                       device_times(inst, c, full)[keep].max(axis=1)))
    refuse_large("instance", [len(k) for k, _, _ in layers], 2e5,
                 "the selection profiles of p1-floor/exact")
    profiles = np.array(list(itertools.product(*[range(len(k)) for k, _, _ in layers])))
    weight = sum(w[profiles[:, i]] for i, (_, w, _) in enumerate(layers))
    bound = sum(b[profiles[:, i]] for i, (_, _, b) in enumerate(layers))
    ok = np.flatnonzero(weight >= need)
    order = ok[np.argsort(bound[ok], kind="stable")]
    best, solved, exact_all, lower = None, 0, True, np.inf
    for n in order:
        if best is not None and bound[n] >= best.objective_s:
            lower = min(lower, bound[n])       # every profile left is bounded by this
            break
        mask = np.stack([c.masks[layers[i][0][profiles[n, i]]] for i, c in enumerate(cands)])
        sol = allocate(options.bandwidth, inst, Selection(mask))
        solved += 1
        exact_all &= sol.status == Status.OPTIMAL and sol.lower_bound_s is not None
        lower = min(lower, sol.lower_bound_s if sol.lower_bound_s is not None else -np.inf)
        if best is None or sol.objective_s < best.objective_s:
            best = sol
    status = Status.OPTIMAL if exact_all else Status.FEASIBLE
    return _finish(problem, best, "p1-floor/exact", status,
                   lower_bound_s=lower if np.isfinite(lower) else None,
                   tolerance=best.tolerance, profiles_scored=solved)


def greedy_drops(problem: SelectionProblem, floor: float) -> np.ndarray:
    """The greedy of the module docstring at ``problem``'s bandwidth; an ``[I, J, E]`` mask."""
    inst = problem.instance
    times = LayerTimes(problem)
    sel = RankedSelection(times, inst.model.top_k)
    budget = sel.num.sum() - floor * inst.topk_weight_total
    comm = np.broadcast_to(times.comm, sel.u.shape)
    layers = np.arange(inst.n_layers)
    while True:
        t = lat.device_time_from_loads(sel.u, sel.p, comm, times.comp)
        slow = t.argmax(axis=1)                                           # [I]
        ii, jj = np.nonzero(sel.droppable())
        _, w, dev = sel.lowest(ii, jj)
        on = dev == slow[ii]
        if not on.any():
            break
        w_on = np.full(sel.n_kept.shape, np.inf)
        w_on[ii[on], jj[on]] = w[on]
        j_best = w_on.argmin(axis=1)
        w_best = w_on[layers, j_best]
        second = np.sort(t, axis=1)[:, -2] if t.shape[1] > 1 else np.zeros(len(layers))
        with np.errstate(invalid="ignore"):      # an infinite bottleneck saves nothing
            saved = np.nan_to_num(t[layers, slow] - np.maximum(
                second, t[layers, slow] - comm[layers, slow] - times.comp[slow]), nan=0.0)
        order = np.argsort(-(saved / np.maximum(w_best, 1e-300)))
        take = order[np.isfinite(w_best[order])]
        take = take[np.cumsum(w_best[take]) <= budget]
        if not take.size:
            break
        hit = np.zeros(sel.n_kept.shape, dtype=bool)
        hit[take, j_best[take]] = True
        budget -= w_best[take].sum()
        sel.drop(hit)
    return sel.mask()


@register("p1-floor", "greedy", options=GreedyFloorOptions)
def solve_weight_floor(problem: WeightFloorProblem, options: GreedyFloorOptions) -> Solution:
    """Min latency with retained weight >= a floor: greedy drops + P3, for any size."""
    best, bandwidth = None, None
    for _ in range(options.rounds):
        p2 = SelectionProblem(problem.instance, bandwidth, support=problem.support)
        sol = allocate(options.bandwidth, problem.instance,
                       Selection(greedy_drops(p2, problem.min_retained_weight)))
        if best is not None and sol.objective_s >= best.objective_s * (1 - 1e-12):
            break
        best, bandwidth = sol, sol.bandwidth_hz
    return _finish(problem, best, "p1-floor/greedy", Status.FEASIBLE)
