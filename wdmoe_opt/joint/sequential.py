"""``p1/sequential``: the paper's scheme, a P2 step at the uniform split then a P3 step.

The composition is explicit (STYLE habit 6): the options name the selection
method and the bandwidth method, each run through the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Options, option
from ..problems import BandwidthProblem, JointProblem, SelectionProblem
from ..registry import get_method, register
from ..solution import Solution, Status
from .feasibility import bilevel_feasible, judge


@dataclass(frozen=True)
class CompositionOptions(Options):
    """Which P2 and P3 methods a P1 method composes, with their own options."""

    selection: str = option("topk", None, "P2 method (see `wdmoe-opt info --methods`)")
    bandwidth: str = option("exact", None, "P3 method")
    selection_options: dict | None = option(None, None, "options of the P2 method")
    bandwidth_options: dict | None = option(None, None, "options of the P3 method")

    def validate(self, owner: str) -> None:
        super().validate(owner)
        get_method(self.selection, "p2").make_options(self.selection_options)
        get_method(self.bandwidth, "p3").make_options(self.bandwidth_options)


def select_then_allocate(problem: JointProblem, options: CompositionOptions,
                         bandwidth_for_selection=None) -> tuple[Solution, Solution]:
    """One P2 step (at ``bandwidth_for_selection``, uniform if None) then one P3 step."""
    inst = problem.instance
    p2 = SelectionProblem(inst, bandwidth_for_selection, support=problem.support)
    chosen = get_method(options.selection, "p2")(p2, options.selection_options)
    allocated = get_method(options.bandwidth, "p3")(
        BandwidthProblem(inst, chosen.selection), options.bandwidth_options)
    return chosen, allocated


def joint_solution(problem: JointProblem, chosen: Solution, allocated: Solution, method: str,
                   bilevel: bool | None, **extra) -> Solution:
    """The P1 solution of one (P2, P3) step pair, saying the reading it solved and
    whether its point is bilevel-feasible (``None``: unknown, see :mod:`.feasibility`).

    The status is ``feasible`` (a composition proves no P1 optimality) unless the P3
    step stopped on a time limit or an error, which is passed on.
    """
    status = Status.FEASIBLE if allocated.status == Status.OPTIMAL else allocated.status
    return Solution.evaluate(
        problem.instance, allocated.selection, allocated.bandwidth_hz, problem="p1",
        method=method, status=status,
        extra={"lower_level": problem.lower_level, "support": problem.support,
               "bilevel_feasible": bilevel, "selection_method": chosen.method,
               "bandwidth_method": allocated.method, "selection_status": str(chosen.status),
               "p3_lower_bound_s": allocated.lower_bound_s, **extra})


@register("p1", "sequential", options=CompositionOptions)
def solve_sequential(problem: JointProblem, options: CompositionOptions) -> Solution:
    """The paper's scheme: select at the uniform split, then allocate bandwidth (P3)."""
    chosen, allocated = select_then_allocate(problem, options)
    if problem.lower_level == "uniform":
        bilevel = judge(problem, chosen.selection, chosen)
    else:
        bilevel = bilevel_feasible(problem, chosen.selection, allocated.bandwidth_hz,
                                   options.selection, options.selection_options)
    return joint_solution(problem, chosen, allocated, "p1/sequential", bilevel)
