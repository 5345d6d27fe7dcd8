"""``p5/round-robin``, ``p5/staggered`` and ``p5/greedy``: constructive placements.

* ``round-robin``: expert ``e`` of every layer on device ``e mod U`` (the paper's
  identity when ``E = U``); the same devices serve every layer.
* ``staggered``: expert ``e`` of layer ``i`` on device ``(i E + e) mod U``, so with
  ``I E >= U`` every device holds an expert. Whether that helps is measured in
  ``docs/placement.md``: the bandwidth is split once across all loaded devices
  for every layer (P3), so a device used by every layer reuses its share, and
  spreading the layers over more devices thins every share.
* ``greedy``: load balancing by expected pair counts times device speed. For a
  pool size ``D``, each device's per-token time ``tau_k = c_k(B / D) + a_k``
  (eqs. 6-7 at an even split over ``D`` devices) ranks the devices; each layer's
  experts, by decreasing expected pairs per batch, go to the pool device that
  finishes them earliest (``(load_k + n_e) tau_k``, longest-processing-time
  first). Pool sizes ``1, 2, 4, ...`` up to ``min(U, I E)`` are tried and the
  best by the exact P5 score (P3 per training batch) is kept.

When a rule's device is full (``capacity_experts``), the next device with room in
cyclic order takes the expert.
"""

from __future__ import annotations

import numpy as np

from ..model import latency as lat
from ..registry import register
from ..solution import Solution, Status
from .evaluate import PlacementEvaluator
from .problem import PlacementProblem
from .result import placement_solution


def cyclic_fill(preferred: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """``[I, E]`` placement: expert ``(i, e)`` on ``preferred[i, e]``, or on the next
    device (cyclically) with room when it is full."""
    I, E = preferred.shape
    U = capacity.shape[1]
    out = np.empty((I, E), dtype=np.int64)
    for i in range(I):
        room = capacity[i].copy()
        for e in range(E):
            k = int(preferred[i, e])
            while room[k] <= 0:
                k = (k + 1) % U
            out[i, e] = k
            room[k] -= 1
    return out


def round_robin(problem: PlacementProblem) -> np.ndarray:
    """Expert ``e`` on device ``e mod U`` in every layer."""
    inst = problem.instance
    row = np.arange(inst.n_experts) % inst.n_devices
    return cyclic_fill(np.tile(row, (inst.n_layers, 1)), problem.capacity)


def staggered(problem: PlacementProblem) -> np.ndarray:
    """Expert ``e`` of layer ``i`` on device ``(i E + e) mod U``."""
    inst = problem.instance
    I, E = inst.n_layers, inst.n_experts
    return cyclic_fill(np.arange(I * E).reshape(I, E) % inst.n_devices, problem.capacity)


def per_token_time_s(problem: PlacementProblem, pool_size: int) -> np.ndarray:
    """``[U]``: ``c_k(B / D) + a_k`` (eqs. 6-7), the communication averaged over layers."""
    inst = problem.instance
    b = np.full(inst.n_devices, inst.system.total_bandwidth_hz / pool_size)
    return lat.comm_time_per_token_s(inst, b).mean(axis=0) + lat.compute_time_per_token_s(inst)


def lpt_placement(problem: PlacementProblem, expected_pairs: np.ndarray,
                  tau: np.ndarray, pool_size: int) -> np.ndarray:
    """Per layer, longest processing time first on the ``pool_size`` fastest devices
    (by ``tau``), extended by the next fastest when the pool lacks capacity."""
    I, E = expected_pairs.shape
    order_dev = np.argsort(tau, kind="stable")
    out = np.empty((I, E), dtype=np.int64)
    for i in range(I):
        cap = problem.capacity[i][order_dev]
        need = np.searchsorted(np.cumsum(np.minimum(cap, E)), E) + 1
        pool = order_dev[:max(pool_size, need)]
        room = problem.capacity[i][pool].copy()
        load = np.zeros(pool.size)
        for e in np.argsort(-expected_pairs[i], kind="stable"):
            finish = np.where(room > 0, (load + expected_pairs[i, e]) * tau[pool], np.inf)
            c = int(np.argmin(finish))
            out[i, e] = pool[c]
            load[c] += expected_pairs[i, e]
            room[c] -= 1
    return out


def greedy(problem: PlacementProblem,
           evaluator: PlacementEvaluator | None = None) -> tuple[np.ndarray, dict]:
    """The best :func:`lpt_placement` over pool sizes ``1, 2, 4, ..., min(U, I E)``,
    scored exactly; ``(placement, trace)``."""
    ev = evaluator or PlacementEvaluator(problem)
    inst = problem.instance
    expected = ev.pairs.mean(axis=0)                                  # [I, E]
    top = min(inst.n_devices, inst.n_layers * inst.n_experts)
    sizes = sorted({min(2 ** t, top) for t in range(int(np.log2(top)) + 2)})
    best, best_score, scores = None, np.inf, {}
    for d in sizes:
        pl = lpt_placement(problem, expected, per_token_time_s(problem, d), d)
        score = ev.score(pl)
        scores[d] = score
        if score < best_score:
            best, best_score = pl, score
    return best, {"pool_scores_s": scores}


@register("p5", "round-robin")
def solve_round_robin(problem: PlacementProblem, options) -> Solution:
    """Expert e of every layer on device e mod U (the paper's identity when E = U)."""
    problem.refuse_replicas("p5/round-robin")
    return placement_solution(problem, round_robin(problem), method="p5/round-robin")


@register("p5", "staggered")
def solve_staggered(problem: PlacementProblem, options) -> Solution:
    """Layer-staggered round-robin: expert e of layer i on device (iE + e) mod U."""
    problem.refuse_replicas("p5/staggered")
    return placement_solution(problem, staggered(problem), method="p5/staggered")


@register("p5", "greedy")
def solve_greedy(problem: PlacementProblem, options) -> Solution:
    """Load-balanced greedy: expected pairs x per-token device time, best pool size."""
    problem.refuse_replicas("p5/greedy")
    pl, trace = greedy(problem)
    return placement_solution(problem, pl, method="p5/greedy", status=Status.FEASIBLE,
                              extra=trace)
