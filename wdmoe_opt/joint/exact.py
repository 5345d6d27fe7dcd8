"""``p1/exact``: the optimistic bilevel optimum of P1 (eqs. 13-15) on tiny instances.

Both readings of SPEC §2, on the enumerated per-layer selections (:mod:`.enumerate`):

* ``uniform``: the follower's optimal set is fixed (P2 at the uniform split), so the
  optimum is "exact P2 at the uniform split, ties broken in the leader's favour,
  then P3": every tie profile (one optimal selection per layer) gets an exact P3
  solve and the best wins; the bound is the least P3 bound.
* ``coupled``: exact lower level and a branch and bound over the bandwidth simplex
  (:mod:`.bilevel`), proven optimal to the relative gap ``tol`` with follower ties
  counted within ``tie_tol``; every profile (a selection per layer) the search meets
  gets the exact P3 method, whose bound raises the bound of boxes where it alone
  survives and whose optimum is an incumbent, and where the follower leaves that
  optimum, the leader's optimum up to the profile's tie surfaces
  (:mod:`.tiesurface`) is one too.

The returned point is bilevel-feasible by construction (``extra.bilevel_feasible``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..model import Selection, uniform_bandwidth_hz
from ..options import Options, option, step_option
from ..problems import JointProblem
from ..registry import Step, register
from ..selection.common import refuse_large
from ..solution import Solution, Status
from .bilevel import bilevel_search
from .enumerate import (
    MAX_LAYER_CANDIDATES,
    TIE_TOL,
    all_candidates,
    leader_choice,
    optimal_selections,
    selection_mask,
)
from .sequential import allocate
from .tiesurface import tie_surface_point


@dataclass(frozen=True)
class ExactP1Options(Options):
    """Knobs of the exact bilevel search (tiny instances only)."""

    bandwidth: Step = step_option("p3", "exact", "exact P3 step solving each candidate's P3",
                                  exact=True)
    tol: float = option(1e-4, "positive", "relative gap proven by the coupled search")
    tie_tol: float = option(TIE_TOL, "positive", "relative WLR tolerance of follower ties")
    max_boxes: int = option(200_000, "positive_int", "box budget of the coupled search")
    max_candidates: int = option(MAX_LAYER_CANDIDATES, "positive_int",
                                 "cap on the enumerated selections of one layer")


def _uniform(problem: JointProblem, cands, options: ExactP1Options):
    """Every tie profile of P2 at the uniform split, each with its exact P3."""
    ties = optimal_selections(problem.instance, cands, uniform_bandwidth_hz(problem.instance),
                              options.tie_tol)
    refuse_large("instance", [len(t) for t in ties], 1000.0,
                 "the tie profiles of p1/exact")
    solved = [allocate(options.bandwidth, problem.instance, Selection(np.stack(profile)))
              for profile in itertools.product(*ties)]
    best = min(solved, key=lambda s: s.objective_s)
    bounds = [s.lower_bound_s for s in solved]
    bound = None if None in bounds else min(bounds)
    status = (Status.OPTIMAL if all(s.status == Status.OPTIMAL for s in solved)
              else Status.FEASIBLE)
    return (best.selection, best.bandwidth_hz, bound, status, best.tolerance,
            {"tie_profiles": len(solved)})


def _profile_solver(problem: JointProblem, cands, options: ExactP1Options):
    """For :func:`.bilevel.bilevel_search`: a profile's exact P3 (its proven bound, and
    its optimum as an incumbent); when the follower leaves the profile there, the
    leader's optimum on the profile's tie surfaces (:mod:`.tiesurface`) as well."""
    inst = problem.instance

    def solve_profile(profile, start_hz):
        p3 = allocate(options.bandwidth, inst, Selection(selection_mask(cands, profile)))
        points = [p3.bandwidth_hz]
        kept, _ = leader_choice(inst, cands, p3.bandwidth_hz, options.tie_tol)
        if start_hz is not None and kept > p3.objective_s * (1.0 + options.tol):
            # P3's optimum is outside the profile's region: its optimum is on a tie surface
            for start in (start_hz, p3.bandwidth_hz):
                b = tie_surface_point(inst, cands, profile, start)
                if b is not None:
                    points.append(b)
        bound = 0.0 if p3.lower_bound_s is None else p3.lower_bound_s
        return bound, points

    return solve_profile


def _coupled(problem: JointProblem, cands, options: ExactP1Options):
    """Branch and bound over the simplex, each profile met bounded by its exact P3
    and searched up to its tie surfaces."""
    res = bilevel_search(problem.instance, cands, tol=options.tol, tie_tol=options.tie_tol,
                         max_boxes=options.max_boxes,
                         profile_solver=_profile_solver(problem, cands, options))
    status = Status.OPTIMAL if res.proven else Status.FEASIBLE
    return (Selection(selection_mask(cands, res.choice)), res.bandwidth_hz,
            min(res.lower_bound_s, res.objective_s), status, options.tol,
            {"boxes": res.boxes})


@register("p1", "exact", options=ExactP1Options, exact=True)
def solve_exact(problem: JointProblem, options: ExactP1Options) -> Solution:
    """Optimistic bilevel optimum (either reading) by enumeration and global search; tiny only."""
    cands = all_candidates(problem.instance, problem.support, options.max_candidates)
    solve = _uniform if problem.lower_level == "uniform" else _coupled
    selection, bandwidth, bound, status, tol, extra = solve(problem, cands, options)
    return Solution.evaluate(
        problem.instance, selection, bandwidth, problem="p1", method="p1/exact", status=status,
        lower_bound_s=bound, tolerance=tol,
        extra={"lower_level": problem.lower_level, "support": problem.support,
               "bilevel_feasible": True, "tie_tol": options.tie_tol, **extra})
