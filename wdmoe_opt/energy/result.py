"""The P4 solution: the common fields plus SPEC §6's ``energy_j``, ``actions``,
``deviation_max``, ``deviation_budget`` and ``deadline_s``, all recomputed here by
the one evaluator from the actions and the bandwidth (never copied from a solver)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..model import latency as lat
from ..model.deviation import (
    FEASIBILITY_RTOL,
    action_pairs,
    check_actions,
    deviation,
    selection_from_actions,
)
from ..solution import Solution, Status, relative_gap
from .problem import EnergyProblem


def violations(problem: EnergyProblem, dev: np.ndarray, layer_s: np.ndarray) -> list[str]:
    """The budget and deadline violations of a point (empty: feasible)."""
    out = []
    over = dev.max(axis=1) > problem.layer_budget * (1 + FEASIBILITY_RTOL)
    if over.any():
        out.append(f"deviation over budget in layers {np.flatnonzero(over).tolist()}")
    late = layer_s > problem.layer_deadline * (1 + FEASIBILITY_RTOL)
    if late.any():
        out.append(f"deadline missed in layers {np.flatnonzero(late).tolist()}")
    return out


def p4_solution(problem: EnergyProblem, actions: np.ndarray, method: str, *,
                status: Status | str = Status.FEASIBLE, lower_bound_j: float | None = None,
                tolerance: float | None = None, bandwidth_hz=None,
                extra: Mapping | None = None) -> Solution:
    """Build a P4 solution from ``actions`` (``[I, J, K]``).

    ``status`` is the method's claim; a point that breaks a budget or a deadline is
    reported ``infeasible`` whatever the claim, with the violations in ``extra``.
    ``tolerance`` is the relative energy gap under which the method calls a point
    ``optimal`` (the checker holds the claim to it).
    """
    inst = problem.instance
    a = check_actions(inst, actions)
    b = problem.bandwidth_hz if bandwidth_hz is None else bandwidth_hz
    sel = selection_from_actions(inst, a)
    dev = deviation(inst, a)
    layer_e = lat.layer_energy_j(inst, sel, b)
    energy = float(layer_e.sum())
    sol = Solution.evaluate(inst, sel, b, problem="p4", method=method, status=status,
                            tolerance=tolerance)
    broken = violations(problem, dev, sol.layer_latency_s)
    status = Status(status)
    if broken and status in (Status.OPTIMAL, Status.FEASIBLE, Status.TIME_LIMIT):
        status = Status.INFEASIBLE
    p4 = {"energy_j": energy, "layer_energy_j": layer_e,
          "energy_lower_bound_j": lower_bound_j,
          "energy_gap": None if lower_bound_j is None or broken
          else max(0.0, relative_gap(energy, lower_bound_j)),
          "actions": action_pairs(inst, a), "deviation_max": dev.max(axis=1),
          "deviation_budget": problem.layer_budget, "deadline_s": problem.layer_deadline}
    if broken:
        p4["violations"] = broken
    return sol.with_run_info(status=status, extra={**p4, **dict(extra or {})})
