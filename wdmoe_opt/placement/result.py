"""The P5 solution: a placement, scored batch by batch with ``p3/exact``.

Every number is recomputed by the one evaluator (:meth:`Solution.evaluate` on each
batch under the placement, after ``p3/exact`` allocates that batch's bandwidth),
never copied from a method's search. The batch results are aggregated:

* ``objective_s`` and ``layer_latency_s``: means over the batches (the P5 objective);
* ``wlr_total``: the mean of the batches' total WLR; ``retained_weight`` and
  ``expert_invocations``: over the whole trace;
* ``bandwidth_hz``: the mean of the per-batch allocations (each sums to the total,
  so the mean does too); each batch's own is ``extra.batch_bandwidth_hz``;
* ``extra``: ``batch_tokens``, ``batch_latency_s``, ``batch_bandwidth_hz``,
  ``capacity_experts`` ([I][U] in force), ``p3_status`` per batch;
* ``placement``: ``[I][E]`` device ids;
* with replicated experts, ``replicas`` (``[I][E]`` lists of device ids, the first
  the placement's) and in ``extra``: ``route_rule`` (``"split"``, the rule of
  :mod:`wdmoe_opt.model.replicas`, or ``"given"``, a route chosen by the method:
  ``p5/milp``'s optimal one) and ``route``, ``[I][J]`` lists of the device serving
  each selected pair, in the order of ``selection[i][j]``.
"""

from __future__ import annotations

import numpy as np

from ..model import Selection
from ..model import latency as lat
from ..model.replicas import ROUTE_RULE, split_route
from ..problems import BandwidthProblem
from ..registry import get_method
from ..solution import Solution, Status
from .problem import PlacementProblem


def placement_solution(problem: PlacementProblem, placement: np.ndarray, *, method: str,
                       status: Status = Status.FEASIBLE, lower_bound_s: float | None = None,
                       tolerance: float | None = None, extra: dict | None = None,
                       replicas: np.ndarray | None = None,
                       route: np.ndarray | None = None) -> Solution:
    """The P5 :class:`Solution` of ``placement`` (and its ``replicas``, if any, routed by
    ``route`` ``[N, I, Jb, E]`` if given, else the split rule; checked against the
    capacities)."""
    pl = problem.check_placement(placement)
    rep = None if replicas is None else problem.check_replicas(pl, replicas)
    p3 = get_method("p3/exact")
    mask = problem.mask
    jb = problem.batch_tokens
    batches = []
    for n in range(problem.n_batches):
        inst_b = problem.batch_instance(n, pl, rep, None if route is None else route[n])
        batches.append(p3(BandwidthProblem(inst_b, Selection(mask[:, n * jb:(n + 1) * jb]))))
    selection = Selection(mask)
    inst = problem.instance
    layer = np.mean([s.layer_latency_s for s in batches], axis=0)
    layer.setflags(write=False)
    bandwidth = np.mean([s.bandwidth_hz for s in batches], axis=0)
    bandwidth.setflags(write=False)
    pl.setflags(write=False)
    routed = {} if rep is None else {
        "route_rule": ROUTE_RULE if route is None else "given",
        "route": trace_route(split_route(rep, problem.batch_masks())
                             if route is None else route)}
    p3_statuses = [str(s.status) for s in batches]
    if Status.ERROR in p3_statuses and status is not Status.ERROR:
        status = Status.ERROR
    objective = float(layer.sum())
    if lower_bound_s is not None and lower_bound_s > objective:
        lower_bound_s = objective      # round-off only: the methods' bounds are certified
    return Solution(
        instance_name=inst.name, instance_hash=inst.content_hash, problem="p5",
        method=method, status=Status(status), bandwidth_hz=bandwidth, selection=selection,
        objective_s=objective, layer_latency_s=layer,
        wlr_total=float(np.mean([s.wlr_total for s in batches])),
        retained_weight=lat.retained_weight(inst, selection),
        expert_invocations=lat.expert_invocations(selection),
        lower_bound_s=lower_bound_s, tolerance=tolerance,
        extra={"batch_tokens": jb, "batch_latency_s": [s.objective_s for s in batches],
               "batch_bandwidth_hz": [s.bandwidth_hz.tolist() for s in batches],
               "capacity_experts": problem.capacity.tolist(), "p3_status": p3_statuses,
               "selection_policy": "topk" if problem.selection is None else "given",
               **routed, **(extra or {})},
        placement=pl, replicas=rep)


def trace_route(route: np.ndarray) -> list:
    """``[I][J]`` lists: the device serving each selected pair of the trace (``route``
    ``[N, I, Jb, E]``, -1 where not selected), in expert-id order."""
    N, I, jb, E = route.shape
    flat = route.transpose(1, 0, 2, 3).reshape(I, N * jb, E)
    return [[[int(k) for k in row[row >= 0]] for row in layer] for layer in flat]
