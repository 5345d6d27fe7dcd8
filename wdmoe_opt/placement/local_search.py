"""``p5/local-search``: moves and swaps, each scored by exact P3 on every training batch.

From a start placement (``greedy`` by default), a pass visits the layers in a
random order. In layer ``i`` the candidates are built around its bottlenecks (the
device of eq. 11's maximum in some batch, at that batch's optimal bandwidth):

* *move*: an expert of a bottleneck device to a target device with room (a device
  already used by some layer, or one of the ``targets`` fastest unused devices by
  ``c_k(B / D) + a_k``, ``D`` the devices in use);
* *swap*: an expert of a bottleneck device with an expert of another device of the
  layer (capacities unchanged).

Every candidate is scored by the exact P5 objective: the loads change for two
devices of one layer only (updated incrementally), then P3 is solved exactly for
every batch (:mod:`.evaluate`). The best improving candidate of the layer is
applied. The search stops after a pass without improvement, ``max_passes`` or the
time limit. It never returns a placement worse than its start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..options import Options, option
from ..registry import register
from ..rng import check_random_state
from ..solution import Solution, Status
from .evaluate import PlacementEvaluator, PlacementState
from .heuristics import greedy, per_token_time_s, round_robin, staggered
from .problem import PlacementProblem
from .result import placement_solution

#: A change must lower the objective by this much (relative) to count as improving
#: (above the P3 solves' own tolerance, so round-off cannot cycle).
MIN_IMPROVEMENT = 1e-6

STARTS = {"greedy": lambda problem, ev: greedy(problem, ev)[0],
          "round-robin": lambda problem, ev: round_robin(problem),
          "staggered": lambda problem, ev: staggered(problem)}


@dataclass(frozen=True)
class LocalSearchOptions(Options):
    """Knobs of ``p5/local-search``."""

    start: str = option("greedy", tuple(STARTS), "start placement")
    max_passes: int = option(50, "positive_int", "passes over the layers")
    targets: int | None = option(None, "optional_positive_int",
                                 "unused devices tried as move targets (None: E)")
    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds")
    seed: int = option(0, "nonnegative_int", "seed of the layer order")


def candidate_rows(state: PlacementState, layer: int, targets: np.ndarray,
                   capacity: np.ndarray) -> list[np.ndarray]:
    """The rows (layer ``layer`` re-placed) of every move and swap around its bottlenecks."""
    row = state.placement[layer]
    rows = []
    for k in state.bottlenecks(layer):
        for e in np.flatnonzero(row == k):
            for t in targets:
                if t != k and state.counts[layer, t] < capacity[layer, t]:
                    new = row.copy()
                    new[e] = t
                    rows.append(new)
            for f in np.flatnonzero(row != k):
                new = row.copy()
                new[e], new[f] = row[f], row[e]
                rows.append(new)
    return rows


def local_search(problem: PlacementProblem, start: np.ndarray, options: LocalSearchOptions,
                 evaluator: PlacementEvaluator | None = None) -> tuple[np.ndarray, dict]:
    """Improve ``start``; ``(placement, trace)`` with the scores and the throughput."""
    clock = time.perf_counter()
    ev = evaluator or PlacementEvaluator(problem)
    rng = check_random_state(options.seed)
    state = PlacementState(ev, start)
    start_score = state.objective
    inst = problem.instance
    n_targets = inst.n_experts if options.targets is None else options.targets
    scored = accepted = passes = 0
    stop = "local optimum"
    for _ in range(options.max_passes):
        passes += 1
        improved = False
        used = np.flatnonzero(state.counts.any(axis=0))
        tau = per_token_time_s(problem, max(used.size, 1))
        order = np.argsort(tau, kind="stable")
        targets = np.r_[used, order[~np.isin(order, used)][:n_targets]].astype(np.int64)
        for layer in rng.permutation(inst.n_layers):
            best, best_token = state.objective * (1 - MIN_IMPROVEMENT), None
            for row in candidate_rows(state, int(layer), targets, problem.capacity):
                score, token = state.try_change(int(layer), row)
                scored += 1
                if score < best:
                    best, best_token = score, token
            if best_token is not None:
                state.commit(best_token)
                accepted += 1
                improved = True
            if time.perf_counter() - clock > options.time_limit:
                stop = "time limit"
                break
        if stop == "time limit" or not improved:
            break
    else:
        stop = "max_passes"
    elapsed = time.perf_counter() - clock
    return state.placement, {
        "start_objective_s": start_score, "search_objective_s": state.objective,
        "moves_scored": scored, "moves_accepted": accepted, "passes": passes,
        "stopped": stop, "search_time_s": elapsed,
        "moves_per_s": scored / elapsed if elapsed > 0 else None}


@register("p5", "local-search", options=LocalSearchOptions)
def solve_local_search(problem: PlacementProblem, options: LocalSearchOptions) -> Solution:
    """Moves and swaps around each layer's bottleneck, each scored by exact P3 per batch."""
    ev = PlacementEvaluator(problem)
    start = STARTS[options.start](problem, ev)
    pl, trace = local_search(problem, start, options, ev)
    status = Status.TIME_LIMIT if trace["stopped"] == "time limit" else Status.FEASIBLE
    return placement_solution(problem, pl, method="p5/local-search", status=status,
                              extra=trace)
