"""``p2/topk``: the router's own choice, each token's Top-K experts."""

from __future__ import annotations

from ..model import Selection
from ..options import NoOptions
from ..problems import SelectionProblem
from ..registry import register
from ..solution import Solution, Status


@register("p2", "topk")
def solve_topk(problem: SelectionProblem, options: NoOptions) -> Solution:
    """Router Top-K (K from the instance): Mixtral's selection, the paper's baseline."""
    inst = problem.instance
    return Solution.evaluate(inst, Selection.topk(inst), problem.bandwidth_hz,
                             problem="p2", method="p2/topk", status=Status.FEASIBLE)
