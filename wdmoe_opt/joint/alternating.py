"""``p1/alternating``: ``q <- P2(B)``, ``B <- P3(q)`` until the selection repeats.

The follower scores WLR (eq. 12) at the bandwidth its reading says
(:func:`.feasibility.follower_bandwidth`): under ``coupled`` that is the last P3
allocation, so the loop walks towards a point where the selection is a best
response to its own bandwidth; under ``uniform`` the follower never moves and
the method is :mod:`sequential` after one step. The first step *is* the
sequential point, and the best point visited is returned, so alternating is
never worse than sequential. With an exact P2 method a fixed point
(``P2(P3(q)) = q``) is bilevel-feasible for the ``coupled`` reading.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option
from ..problems import JointProblem
from ..registry import register
from ..solution import Solution
from .feasibility import judge
from .sequential import CompositionOptions, joint_solution, select_then_allocate


@dataclass(frozen=True)
class AlternatingOptions(CompositionOptions):
    """The P2 and P3 methods, and a cap on the (P2, P3) rounds."""

    max_iter: int = option(20, "positive_int", "maximum number of (P2, P3) rounds")


@register("p1", "alternating", options=AlternatingOptions)
def solve_alternating(problem: JointProblem, options: AlternatingOptions) -> Solution:
    """Alternate P2 at the current bandwidth and P3 until the selection repeats; keep the best."""
    steps = [select_then_allocate(problem, options)]
    uniform = problem.lower_level == "uniform"
    replies = [steps[0][0]] if uniform else []     # replies[n]: P2 at steps[n]'s bandwidth
    seen = {steps[0][0].selection.mask.tobytes(): 0}
    cycle = 1 if uniform else None
    while cycle is None and len(steps) < options.max_iter:
        chosen, allocated = select_then_allocate(problem, options, steps[-1][1].bandwidth_hz)
        replies.append(chosen)
        key = chosen.selection.mask.tobytes()
        if key in seen:
            cycle = len(steps) - seen[key]
            break
        seen[key] = len(steps)
        steps.append((chosen, allocated))
    verdicts = [judge(problem, c.selection, r) for (c, _), r in zip(steps, replies, strict=False)]
    verdicts += [None] * (len(steps) - len(verdicts))
    best = min(range(len(steps)), key=lambda n: steps[n][1].objective_s)
    fixed = steps[-1][1].objective_s if cycle == 1 else None
    return joint_solution(
        problem, *steps[best], "p1/alternating", verdicts[best], iterations=len(steps),
        cycle_length=cycle, best_iteration=best, fixed_point_objective_s=fixed,
        objectives_s=[a.objective_s for _, a in steps])
