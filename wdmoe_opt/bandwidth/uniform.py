"""``p3/uniform``: the paper's baseline, ``B_k = B / U``."""

from __future__ import annotations

from ..model import uniform_bandwidth_hz
from ..options import NoOptions
from ..problems import BandwidthProblem
from ..registry import register
from ..solution import Solution, Status


@register("p3", "uniform")
def solve_uniform(problem: BandwidthProblem, options: NoOptions) -> Solution:
    """Uniform split B/U of the total bandwidth (the paper's Mixtral-based baseline)."""
    inst = problem.instance
    return Solution.evaluate(inst, problem.selection, uniform_bandwidth_hz(inst),
                             problem="p3", method="p3/uniform", status=Status.FEASIBLE)
