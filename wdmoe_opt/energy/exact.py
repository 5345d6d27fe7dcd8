"""Exact P4 (SPEC §6): enumeration for decode, a MILP per layer for prefill.

* **Decode** (``J = 1``): each layer on its own, every one of the ``(E + 1)^K``
  profiles scored at once (numpy), the least energy among those within the budget
  and the deadline.
* **Prefill** (``J > 1``): the device loads couple the tokens through the deadline,
  so each layer is a multiple-choice knapsack (:mod:`.layer`) solved as a MILP:
  binary ``x[j, S]`` per (token, invoked set), ``sum_S x[j, S] = 1`` per token,
  ``sum_{j, S} time_k(S) x[j, S] <= T_i`` per device, ``min sum energy(S) x``.
  Built twice, as highspy arrays (``p4/exact``, ``p4/milp-highspy``) and as an
  algebraic Pyomo model (``p4/milp-pyomo``), so the two routes check each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..model.deviation import FEASIBILITY_RTOL
from ..options import Options, option
from ..registry import register
from ..selection.milp import silence_highs_banner
from ..solution import Solution, Status
from .candidates import Candidates
from .layer import LayerChoices, layer_choices
from .problem import EnergyProblem
from .result import p4_solution

#: Relative gap an enumeration's optimum is stated with (round-off of the sums only).
ENUMERATION_TOLERANCE = 1e-12


@dataclass(frozen=True)
class ExactOptions(Options):
    """Knobs of the exact P4."""

    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds (MILP)")
    mip_gap: float = option(1e-9, "unit", "relative MIP gap at which a layer is optimal")
    threads: int = option(1, "positive_int", "solver threads")


def decode_exact(cand: Candidates) -> tuple[np.ndarray, np.ndarray]:
    """``(choice [I, 1], feasible [I])``: per layer the least-energy profile within the
    budget and the deadline (ties: least deviation); where none is, the fastest
    allowed one."""
    lat_s = cand.profile_latency()[:, 0]                                 # [I, P]
    dl = cand.problem.layer_deadline[:, None] * (1 + FEASIBILITY_RTOL)
    allowed = cand.allowed[:, 0]
    ok = allowed & (lat_s <= dl)
    energy = np.where(ok, cand.energy[:, 0], np.inf)
    best = energy.min(axis=1, keepdims=True)
    tie = ok & (energy <= best)
    choice = np.argmin(np.where(tie, cand.deviation[:, 0], np.inf), axis=1)
    feasible = ok.any(axis=1)
    fastest = np.argmin(np.where(allowed, lat_s, np.inf), axis=1)
    return np.where(feasible, choice, fastest)[:, None], feasible


@dataclass(frozen=True)
class LayerOutcome:
    """A route's answer for one layer."""

    columns: np.ndarray | None      # chosen column per token (None: no point)
    bound: float
    status: Status


Route = Callable[[LayerChoices, float, ExactOptions], LayerOutcome]


def solve_by_layer(problem: EnergyProblem, options: ExactOptions, method: str,
                   solve_layer: Callable[[int, Callable[[], float]], tuple[float, Status]],
                   actions: Callable[[], np.ndarray]) -> Solution:
    """Every layer through ``solve_layer(i, seconds)`` -> ``(bound, status)``, where
    ``seconds()`` is the layer's share of the time left (over the remaining layers);
    the P4 solution of ``actions()`` with the summed bound (none when infeasible or
    not finite)."""
    clock = time.perf_counter()
    I = problem.instance.n_layers
    bound, statuses = 0.0, []
    for i in range(I):
        def seconds(i=i) -> float:
            return max((options.time_limit - (time.perf_counter() - clock)) / (I - i), 1e-3)
        b, status = solve_layer(i, seconds)
        statuses.append(status)
        bound += b
    status = combined_status(statuses)
    return p4_solution(problem, actions(), method, status=status,
                       lower_bound_j=bound if status != Status.INFEASIBLE and np.isfinite(bound)
                       else None,
                       tolerance=options.mip_gap,
                       extra={"layers_optimal": statuses.count(Status.OPTIMAL)})


def solve_prefill(problem: EnergyProblem, options: ExactOptions, route: Route,
                  method: str) -> Solution:
    """Every layer's MILP through ``route``; the P4 solution with the summed bound."""
    cand = Candidates.build(problem)
    choice = np.full(cand.row.shape, cand.keep_index())

    def solve_layer(i: int, seconds) -> tuple[float, Status]:
        lc = layer_choices(cand, i)
        out = route(lc, seconds(), options)
        if out.columns is not None:
            choice[i] = lc.choice(out.columns)
        return out.bound, out.status

    return solve_by_layer(problem, options, method, solve_layer, lambda: cand.actions(choice))


def combined_status(statuses: list[Status]) -> Status:
    """The problem's status from its layers': infeasible if one is, optimal if all
    are, else error if one failed, else the time limit."""
    if Status.INFEASIBLE in statuses:
        return Status.INFEASIBLE
    if all(s == Status.OPTIMAL for s in statuses):
        return Status.OPTIMAL
    if Status.ERROR in statuses:
        return Status.ERROR
    return Status.TIME_LIMIT


def milp_rows(lc: LayerChoices):
    """Sparse rows ``(row, col, value, lo, hi)`` of the layer's MILP: one choice per
    token, then one deadline row per timed device."""
    n = len(lc.token)
    devs = lc.timed_devices
    r_tok, c_tok = lc.token, np.arange(n)
    sub = lc.time[:, devs]                                               # [n, D]
    cols, rows = np.nonzero(sub)
    row = np.r_[r_tok, lc.n_tokens + rows]
    col = np.r_[c_tok, cols]
    val = np.r_[np.ones(n), sub[cols, rows]]
    lo = np.r_[np.ones(lc.n_tokens), np.full(len(devs), -np.inf)]
    hi = np.r_[np.ones(lc.n_tokens), np.full(len(devs), lc.deadline)]
    return row, col, val, lo, hi


def run_highs(cost: np.ndarray, rows: tuple, lo: np.ndarray, hi: np.ndarray,
              time_limit: float, options: ExactOptions, *, n_integer: int = 0,
              tolerance: float | None = None, start: np.ndarray | None = None):
    """A 0/1 model ``min cost x, lo <= A x <= hi`` (``rows = (row, col, value)`` of
    ``A``) in highspy, its first ``n_integer`` columns integer (0: the LP), primal
    (and MIP) feasibility ``tolerance`` if given, from the column vector ``start`` if
    given; the ``Highs`` object after ``run``."""
    import highspy
    from scipy.sparse import coo_matrix

    row, col, val = rows
    n = len(cost)
    a = coo_matrix((val, (row, col)), shape=(len(lo), n)).tocsr()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("threads", int(options.threads))
    if tolerance is not None:
        h.setOptionValue("primal_feasibility_tolerance", tolerance)
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
    if n_integer:
        h.setOptionValue("mip_rel_gap", float(options.mip_gap))
        if tolerance is not None:
            h.setOptionValue("mip_feasibility_tolerance", tolerance)
        h.changeColsIntegrality(n_integer, np.arange(n_integer, dtype=np.int32),
                                np.full(n_integer, int(highspy.HighsVarType.kInteger),
                                        dtype=np.uint8))
    h.addRows(len(lo), lo, hi, a.nnz, a.indptr[:-1].astype(np.int32),
              a.indices.astype(np.int32), a.data)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = start.tolist()
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    return h


def highs_outcome(h) -> tuple[np.ndarray | None, float, Status]:
    """``(column values or None, dual bound, status)`` of a MILP run by
    :func:`run_highs`: infeasible, optimal, time limit (with or without a point) or
    error."""
    import highspy

    ms, info = h.getModelStatus(), h.getInfo()
    if ms == highspy.HighsModelStatus.kInfeasible:
        return None, np.nan, Status.INFEASIBLE
    x = np.asarray(h.getSolution().col_value) if info.primal_solution_status == 2 else None
    status = {highspy.HighsModelStatus.kOptimal: Status.OPTIMAL,
              highspy.HighsModelStatus.kTimeLimit: Status.TIME_LIMIT}.get(ms, Status.ERROR)
    return x, float(info.mip_dual_bound), status


def highspy_layer(lc: LayerChoices, time_limit: float, options: ExactOptions,
                  integer: bool = True):
    """Solve the layer's MILP (or, ``integer=False``, its LP relaxation) in highspy;
    return the ``Highs`` object after ``run``."""
    row, col, val, lo, hi = milp_rows(lc)
    return run_highs(lc.energy, (row, col, val), lo, hi, time_limit, options,
                     n_integer=len(lc.token) if integer else 0)


def _columns(x: np.ndarray, lc: LayerChoices) -> np.ndarray:
    """The chosen column of every token from a 0/1 vector (the largest per token)."""
    order = np.lexsort((-x, lc.token))
    first = np.r_[True, lc.token[order][1:] != lc.token[order][:-1]]
    return order[first]


def _uncovered(lc: LayerChoices) -> bool:
    return len(np.unique(lc.token)) < lc.n_tokens


def highspy_route(lc: LayerChoices, time_limit: float, options: ExactOptions) -> LayerOutcome:
    """The layer's MILP as highspy arrays."""

    if _uncovered(lc):
        return LayerOutcome(None, np.nan, Status.INFEASIBLE)
    silence_highs_banner()
    x, bound, status = highs_outcome(highspy_layer(lc, time_limit, options))
    return LayerOutcome(None if x is None else _columns(x, lc), bound, status)


def pyomo_route(lc: LayerChoices, time_limit: float, options: ExactOptions) -> LayerOutcome:
    """The same MILP as an algebraic Pyomo model, solved by HiGHS (APPSI)."""
    import pyomo.environ as pe

    if _uncovered(lc):
        return LayerOutcome(None, np.nan, Status.INFEASIBLE)
    silence_highs_banner()
    n = len(lc.token)
    m = pe.ConcreteModel()
    m.C = pe.RangeSet(0, n - 1)
    m.T = pe.RangeSet(0, lc.n_tokens - 1)
    m.D = pe.Set(initialize=lc.timed_devices.tolist())
    m.x = pe.Var(m.C, domain=pe.Binary)
    cols_of = {j: np.flatnonzero(lc.token == j).tolist() for j in range(lc.n_tokens)}
    m.one = pe.Constraint(m.T, rule=lambda m, j: sum(m.x[c] for c in cols_of[j]) == 1)
    time_ = lc.time
    m.deadline = pe.Constraint(m.D, rule=lambda m, k: sum(
        float(time_[c, k]) * m.x[c] for c in np.flatnonzero(time_[:, k]).tolist())
        <= lc.deadline)
    m.energy = pe.Objective(expr=sum(float(lc.energy[c]) * m.x[c] for c in m.C))
    loaded, bound, status = appsi_highs(m, time_limit, options)
    cols = _columns(np.array([m.x[c].value or 0.0 for c in m.C]), lc) if loaded else None
    return LayerOutcome(cols, bound, status)


def appsi_highs(m, time_limit: float, options: ExactOptions,
                highs_options: dict | None = None) -> tuple[bool, float, Status]:
    """Solve the Pyomo MILP ``m`` by HiGHS (APPSI): ``(values loaded, dual bound,
    status)`` (``infeasible``: proved; the bound is ``nan`` then)."""
    from pyomo.contrib.appsi.base import TerminationCondition
    from pyomo.contrib.appsi.solvers import Highs

    opt = Highs()
    opt.config.time_limit = float(time_limit)
    opt.config.load_solution = False
    opt.highs_options = {"mip_rel_gap": float(options.mip_gap),
                         "threads": int(options.threads), "output_flag": False,
                         **(highs_options or {})}
    res = opt.solve(m)
    tc = res.termination_condition
    if tc == TerminationCondition.infeasible:
        return False, np.nan, Status.INFEASIBLE
    loaded = res.best_feasible_objective is not None
    if loaded:
        res.solution_loader.load_vars()
    status = {TerminationCondition.optimal: Status.OPTIMAL,
              TerminationCondition.maxTimeLimit: Status.TIME_LIMIT}.get(tc, Status.ERROR)
    bound = res.best_objective_bound
    return loaded, float(bound if bound is not None else -np.inf), status


@register("p4", "exact", options=ExactOptions, backends=("highspy",), exact=True)
def solve_exact(problem: EnergyProblem, options: ExactOptions) -> Solution:
    """Exact P4: enumeration per layer for decode (J = 1), the highspy MILP for prefill."""
    if not problem.decode:
        return solve_prefill(problem, options, highspy_route, "p4/exact")
    cand = Candidates.build(problem)
    choice, feasible = decode_exact(cand)
    energy = np.take_along_axis(cand.energy[:, 0], choice, axis=1).sum()
    if feasible.all():
        return p4_solution(problem, cand.actions(choice), "p4/exact", status=Status.OPTIMAL,
                           lower_bound_j=float(energy), tolerance=ENUMERATION_TOLERANCE)
    return p4_solution(problem, cand.actions(choice), "p4/exact", status=Status.INFEASIBLE,
                       extra={"infeasible_layers": np.flatnonzero(~feasible).tolist()})


@register("p4", "milp-highspy", options=ExactOptions, backends=("highspy",), exact=True)
def solve_milp_highspy(problem: EnergyProblem, options: ExactOptions) -> Solution:
    """Exact P4 through the per-layer MILP built as highspy arrays (any J)."""
    return solve_prefill(problem, options, highspy_route, "p4/milp-highspy")


@register("p4", "milp-pyomo", options=ExactOptions, backends=("pyomo", "highspy"), exact=True)
def solve_milp_pyomo(problem: EnergyProblem, options: ExactOptions) -> Solution:
    """Exact P4 through the same MILP as an algebraic Pyomo model (any J)."""
    return solve_prefill(problem, options, pyomo_route, "p4/milp-pyomo")
