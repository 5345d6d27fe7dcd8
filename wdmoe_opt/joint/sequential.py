"""``p1/sequential``: the paper's scheme, a P2 step at the uniform split then a P3 step.

The composition is explicit (STYLE habit 6): the options hold the selection step
and the bandwidth step, each a validated :class:`~wdmoe_opt.registry.Step`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Options, step_option
from ..problems import BandwidthProblem, JointProblem, SelectionProblem
from ..registry import Step, register
from ..solution import Solution, Status
from .feasibility import bilevel_feasible, judge


@dataclass(frozen=True)
class CompositionOptions(Options):
    """The P2 step and the P3 step a P1 method composes (each a method with its options)."""

    selection: Step = step_option("p2", "topk", "P2 step (see `wdmoe-opt info --methods`)")
    bandwidth: Step = step_option("p3", "exact", "P3 step")


def allocate(step: Step, instance, selection) -> Solution:
    """One P3 step (eqs. 19-21) for ``selection``: the one way every P1 method allocates."""
    return step.solve(BandwidthProblem(instance, selection))


def select_then_allocate(problem: JointProblem, options: CompositionOptions,
                         bandwidth_for_selection=None) -> tuple[Solution, Solution]:
    """One P2 step (at ``bandwidth_for_selection``, uniform if None) then one P3 step."""
    inst = problem.instance
    chosen = options.selection.solve(
        SelectionProblem(inst, bandwidth_for_selection, support=problem.support))
    return chosen, allocate(options.bandwidth, inst, chosen.selection)


def joint_solution(problem: JointProblem, chosen: Solution, allocated: Solution, method: str,
                   bilevel: bool | None, **extra) -> Solution:
    """The P1 solution of one (P2, P3) step pair, saying the reading it solved and
    whether its point is bilevel-feasible (``None``: unknown, see :mod:`.feasibility`).

    The point is the P3 step's, already evaluated; it is restated as a P1 solution,
    not evaluated again. The status is ``feasible`` (a composition proves no P1
    optimality) unless the P3 step stopped on a time limit or an error, passed on.
    """
    status = Status.FEASIBLE if allocated.status == Status.OPTIMAL else allocated.status
    return allocated.restate(
        problem="p1", method=method, status=status,
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
                                   options.selection)
    return joint_solution(problem, chosen, allocated, "p1/sequential", bilevel)
