"""One status vocabulary and one result type for every method (STYLE habit 3).

A :class:`Solution` is built from what a solver decided (bandwidth, selection,
status, bound) and everything else is recomputed by the one evaluator in
:mod:`wdmoe_opt.model.latency`, never copied from the solver's own numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from .model import Instance, Selection
from .model import latency as lat


class Status(StrEnum):
    """Why a solve stopped, and what its point is worth."""

    OPTIMAL = "optimal"          # proven optimal (within the method's stated tolerance)
    FEASIBLE = "feasible"        # a feasible point; the gap to the bound says how good
    TIME_LIMIT = "time_limit"    # stopped by the time limit; holds the incumbent
    INFEASIBLE = "infeasible"    # the problem has no feasible point
    ERROR = "error"              # the solver failed; the point is not to be trusted


@dataclass(frozen=True, eq=False)
class Solution:
    """A solved point of any problem (schema ``wdmoe-solution/1``).

    ``objective_s`` is always the batch latency ``T = sum_i t^i`` (eq. 13) of
    ``(bandwidth_hz, selection)``. ``lower_bound_s`` bounds the latency problem
    (P3/P1) from below; ``wlr_upper_bound`` bounds the WLR problem (P2) from above.
    """

    instance_name: str
    instance_hash: str
    problem: str
    method: str
    status: Status
    bandwidth_hz: np.ndarray
    selection: Selection
    objective_s: float
    layer_latency_s: np.ndarray
    wlr_total: float
    retained_weight: float
    expert_invocations: int
    lower_bound_s: float | None = None
    wlr_upper_bound: float | None = None
    tolerance: float | None = None
    solve_time_s: float = 0.0
    solver: Mapping = field(default_factory=dict)
    extra: Mapping = field(default_factory=dict)
    placement: np.ndarray | None = None   # [I, E] device ids: the decision of P5 (SPEC §7)
    replicas: np.ndarray | None = None    # [I, E, R] copies (-1 padded), P5 with replication

    @classmethod
    def evaluate(cls, instance: Instance, selection: Selection, bandwidth_hz, *,
                 problem: str, method: str, status: Status | str = Status.FEASIBLE,
                 lower_bound_s: float | None = None, wlr_upper_bound: float | None = None,
                 tolerance: float | None = None, extra: Mapping | None = None) -> Solution:
        """Build a solution, recomputing every number from ``(selection, bandwidth_hz)``.

        ``tolerance`` is the relative gap under which the method calls a point
        ``optimal`` (P3's ``tol``, a MIP gap); ``check`` holds an ``optimal`` status to it.
        """
        b = np.array(bandwidth_hz, dtype=np.float64, copy=True)
        b.setflags(write=False)
        t = lat.device_time_s(instance, selection, b)
        layer = t.max(axis=-1)
        layer.setflags(write=False)
        return cls(
            instance_name=instance.name, instance_hash=instance.content_hash,
            problem=problem, method=method, status=Status(status), bandwidth_hz=b,
            selection=selection, objective_s=float(layer.sum()), layer_latency_s=layer,
            wlr_total=float(lat.wlr_from_times(lat.selected_weight(instance, selection),
                                               t).sum()),
            retained_weight=lat.retained_weight(instance, selection),
            expert_invocations=lat.expert_invocations(selection),
            lower_bound_s=None if lower_bound_s is None else float(lower_bound_s),
            wlr_upper_bound=None if wlr_upper_bound is None else float(wlr_upper_bound),
            tolerance=None if tolerance is None else float(tolerance),
            extra=MappingProxyType(dict(extra or {})),
        )

    @property
    def gap(self) -> float | None:
        """Relative optimality gap, computed here only.

        P2 (maximize WLR): ``(ub - wlr) / ub``; P1/P3 (minimize latency):
        ``(T - lb) / T``. ``None`` without a bound; never negative beyond round-off.
        """
        if self.problem == "p2":
            if self.wlr_upper_bound is None:
                return None
            return relative_gap(self.wlr_upper_bound, self.wlr_total)
        if self.lower_bound_s is None:
            return None
        return relative_gap(self.objective_s, self.lower_bound_s)

    def restate(self, *, problem: str, method: str, status: Status | str,
                lower_bound_s: float | None = None, wlr_upper_bound: float | None = None,
                tolerance: float | None = None, extra: Mapping | None = None) -> Solution:
        """The same evaluated point as a solution of another problem (P3's point as
        P1's): the numbers are kept, not recomputed; the bounds, status and run
        information are the new problem's."""
        return replace(self, problem=problem, method=method, status=Status(status),
                       lower_bound_s=None if lower_bound_s is None else float(lower_bound_s),
                       wlr_upper_bound=(None if wlr_upper_bound is None
                                        else float(wlr_upper_bound)),
                       tolerance=None if tolerance is None else float(tolerance),
                       solve_time_s=0.0, solver=MappingProxyType({}),
                       extra=MappingProxyType(dict(extra or {})))

    def with_run_info(self, **changes) -> Solution:
        """A copy with run metadata (``solve_time_s``, ``solver``, ``method``...) set."""
        if "solver" in changes:
            changes["solver"] = MappingProxyType(dict(changes["solver"]))
        if "extra" in changes:
            changes["extra"] = MappingProxyType(dict(changes["extra"]))
        return replace(self, **changes)


def relative_gap(upper: float, lower: float) -> float:
    """``(upper - lower) / |upper|`` (0 when both are 0, inf when only upper is)."""
    if upper == lower:
        return 0.0
    if upper == 0 or not np.isfinite(upper):
        return float("inf")
    return (upper - lower) / abs(upper)
