"""``p5/local-search``: moves and swaps, each scored by exact P3 on every training batch.

From a start placement (``greedy`` by default), a pass visits the layers in a
random order. In layer ``i`` the candidates are built around its bottlenecks (the
device of eq. 11's maximum in some batch, at that batch's optimal bandwidth):

* *move*: an expert of a bottleneck device to a target device with room (a device
  already used by some layer, or one of the ``targets`` fastest unused devices by
  ``c_k(B / D) + a_k``, ``D`` the devices in use);
* *swap*: an expert of a bottleneck device with an expert of another device of the
  layer (capacities unchanged);
* when no such change improves and the layer is small (``full_neighbourhood``),
  the same moves and swaps for every expert of the layer;
* after each pass, changes of *every layer at once*: two devices trade everything
  they host (the loads swap columns); one layer's row copied to every layer; and,
  on small instances
  (``full_neighbourhood``), an expert moved to a target device or two experts
  swapped in every layer. The bandwidth is shared by all layers, so a device worth
  using is worth using everywhere: single-layer moves cannot make that jump one
  layer at a time.

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

from ..model.instance import experts_per_device
from ..options import Options, option
from ..registry import register
from ..rng import check_random_state
from ..solution import Solution, Status
from .evaluate import PlacementEvaluator, PlacementState, best_improving
from .heuristics import greedy, per_token_time_s, round_robin, staggered
from .problem import PlacementProblem
from .replicate import replicate
from .result import placement_solution

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
    full_neighbourhood: int = option(
        64, "nonnegative_int", "a layer whose (hosts x (hosts + targets)) is at most this "
        "also tries every expert, not only its bottlenecks")
    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds")
    seed: int = option(0, "nonnegative_int", "seed of the layer order")


def candidate_rows(state: PlacementState, layer: int, targets: np.ndarray,
                   capacity: np.ndarray, sources: np.ndarray) -> list[np.ndarray]:
    """The rows (layer ``layer`` re-placed) of every move and swap of an expert hosted
    by one of the ``sources`` devices."""
    row = state.placement[layer]
    rows = []
    for k in sources:
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


def all_layer_changes(state: PlacementState, used: np.ndarray, targets: np.ndarray,
                      capacity: np.ndarray, limit: int):
    """Scored changes of every layer at once: two devices exchanging all they host;
    one layer's row copied to every layer; and, when ``E (E + targets)`` is at most
    ``limit``, an expert moved to a target or two experts swapped in every layer.
    Yields ``(objective, token)``."""
    for a in used:
        for b in targets[targets != a]:
            if state.relabel_fits(a, b, capacity):
                yield state.try_relabel(int(a), int(b))
    pl = state.placement
    for row in np.unique(pl, axis=0):         # one layer's row copied to every layer
        new = np.tile(row, (pl.shape[0], 1))
        if (experts_per_device(new, capacity.shape[1]) <= capacity).all() \
                and (new != pl).any():
            yield state.try_placement(new)
    E = pl.shape[1]
    if E * (E + targets.size) > limit:
        return
    for e in range(E):
        for t in targets:
            new = pl.copy()
            new[:, e] = t
            if (experts_per_device(new, capacity.shape[1]) <= capacity).all() \
                    and (new != pl).any():
                yield state.try_placement(new)
        for f in range(e + 1, E):
            new = pl.copy()
            new[:, [e, f]] = pl[:, [f, e]]
            if (new != pl).any():
                yield state.try_placement(new)


def local_search(problem: PlacementProblem, start: np.ndarray, options: LocalSearchOptions,
                 evaluator: PlacementEvaluator | None = None) -> tuple[np.ndarray, dict]:
    """Improve ``start``; ``(placement, trace)`` with the scores and the throughput."""
    clock = time.perf_counter()
    ev = evaluator or PlacementEvaluator(problem)
    rng = check_random_state(options.seed)
    state = PlacementState(ev, start)
    start_score = state.objective
    inst = problem.instance
    scored = accepted = passes = 0
    stop = "local optimum"
    for _ in range(options.max_passes):
        passes += 1
        improved = False
        targets = move_targets(problem, state.counts, options.targets)
        used = targets[:np.count_nonzero(state.counts.any(axis=0))]
        for layer in rng.permutation(inst.n_layers):
            layer = int(layer)
            hosts = np.unique(state.placement[layer])
            neighbourhoods = [state.bottlenecks(layer)]
            if hosts.size * (hosts.size + targets.size) <= options.full_neighbourhood:
                neighbourhoods.append(hosts)     # small enough: every expert of the layer
            for sources in neighbourhoods:
                n, token = best_improving(state, (
                    state.try_change(layer, row)
                    for row in candidate_rows(state, layer, targets, problem.capacity, sources)))
                scored += n
                if token is not None:
                    state.commit(token)
                    accepted += 1
                    improved = True
                    break
            if time.perf_counter() - clock > options.time_limit:
                stop = "time limit"
                break
        if stop != "time limit":              # changes of every layer at once
            n, token = best_improving(state, all_layer_changes(
                state, used, targets, problem.capacity, options.full_neighbourhood))
            scored += n
            if token is not None:
                state.commit(token)
                accepted += 1
                improved = True
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


def move_targets(problem: PlacementProblem, counts: np.ndarray,
                 n_targets: int | None) -> np.ndarray:
    """The devices in use (``counts`` ``[I, U]`` > 0 in some layer), then the
    ``n_targets`` (None: ``E``) fastest unused ones by ``c_k(B / D) + a_k``."""
    if n_targets is None:
        n_targets = problem.instance.n_experts
    used = np.flatnonzero(counts.any(axis=0))
    order = np.argsort(per_token_time_s(problem, max(used.size, 1)), kind="stable")
    return np.r_[used, order[~np.isin(order, used)][:n_targets]].astype(np.int64)


@register("p5", "local-search", options=LocalSearchOptions)
def solve_local_search(problem: PlacementProblem, options: LocalSearchOptions) -> Solution:
    """Moves, swaps and device exchanges, each scored by exact P3 on every batch; with
    ``max_replicas > 1``, then copies added and dropped (:mod:`.replicate`)."""
    clock = time.perf_counter()
    ev = PlacementEvaluator(problem)
    start = STARTS[options.start](problem, ev)
    pl, trace = local_search(problem, start, options, ev)
    replicas = None
    if problem.max_replicas > 1 and trace["stopped"] != "time limit":
        replicas, more = replicate(
            problem, pl, ev, move_targets(problem, experts_per_device(pl, ev.U),
                                          options.targets),
            time_limit=options.time_limit - (time.perf_counter() - clock),
            max_passes=options.max_passes, full_neighbourhood=options.full_neighbourhood)
        trace = {**trace, **more, "stopped": more["replication_stopped"]}
    status = Status.TIME_LIMIT if trace["stopped"] == "time limit" else Status.FEASIBLE
    return placement_solution(problem, pl, method="p5/local-search", status=status,
                              extra=trace, replicas=replicas)
