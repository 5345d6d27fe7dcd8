"""``p2/milp-pyomo``: the exact P2 MILP of :mod:`.milp_model` as an algebraic Pyomo
model, solved by HiGHS through Pyomo's APPSI interface.

The same formulation as ``p2/milp-highspy`` written a second time, indexed by
Pyomo sets instead of assembled as arrays, so the two routes check each other.
No MIP start on this route (APPSI's warm start gives no way to keep HiGHS's start
apart from its incumbent), and presolve off as on the other route: with it, HiGHS
1.16 "proved" a point 1 % below the optimum of this model on wdmoe-sim seed 507
(2 layers x 6 tokens, 4 experts on 3 devices, round-robin; a regression test).
"""

from __future__ import annotations

import numpy as np

from ..problems import SelectionProblem
from ..registry import register
from ..solution import Solution, Status
from .milp import LayerResult, MilpBaseOptions, solve_by_layer
from .milp_model import LayerMilp


def build_pyomo(lm: LayerMilp):
    """The layer's MILP as a ``pyomo.environ.ConcreteModel``."""
    import pyomo.environ as pe

    m = pe.ConcreteModel()
    m.P = pe.RangeSet(0, lm.n_q - 1)
    m.L = pe.RangeSet(0, lm.n_levels - 1)
    m.T = pe.RangeSet(0, lm.n_tokens - 1)
    m.K = pe.RangeSet(0, lm.n_devices - 1)
    m.X = pe.RangeSet(0, lm.n_x - 1)
    m.q = pe.Var(m.P, domain=pe.Binary)
    m.z = pe.Var(m.L, domain=pe.Binary)
    m.y = pe.Var(m.L, domain=pe.NonNegativeReals)
    pairs_of_token = {j: [] for j in m.T}
    pairs_of_dev = {k: [] for k in m.K}
    levels_of_dev = {k: [] for k in m.K}
    for p, (j, k) in enumerate(zip(lm.pair_token.tolist(), lm.pair_device.tolist(),
                                   strict=True)):
        pairs_of_token[j].append(p)
        pairs_of_dev[k].append(p)
    for level, k in enumerate(lm.level_device.tolist()):
        levels_of_dev[k].append(level)
    w, lu, lp = lm.pair_weight.tolist(), lm.level_u.tolist(), lm.level_p.tolist()
    loaded = [k for k in m.K if levels_of_dev[k]]        # devices some token may use
    m.D = pe.Set(initialize=loaded)
    if lm.identity:
        links_of_dev = {k: [m.q[p] for p in pairs_of_dev[k]] for k in m.K}
    else:
        m.x = pe.Var(m.X, domain=pe.Binary)
        pairs_of_x = {x: [] for x in m.X}
        for p, x in enumerate(lm.pair_x.tolist()):
            pairs_of_x[x].append(p)
        m.x_ge_q = pe.Constraint(m.P, rule=lambda m, p: m.x[int(lm.pair_x[p])] >= m.q[p])
        m.x_le_q = pe.Constraint(m.X, rule=lambda m, x: m.x[x] <= sum(
            m.q[p] for p in pairs_of_x[x]))
        links_of_dev = {k: [m.x[x] for x in np.flatnonzero(lm.x_device == k).tolist()]
                        for k in m.K}
        m.pairs = pe.Constraint(m.D, rule=lambda m, k: sum(
            lp[lv] * m.z[lv] for lv in levels_of_dev[k]) == sum(m.q[p] for p in pairs_of_dev[k]))
    m.cover = pe.Constraint(m.T, rule=lambda m, j: sum(m.q[p] for p in pairs_of_token[j]) >= 1)
    m.one_level = pe.Constraint(m.D, rule=lambda m, k: sum(
        m.z[lv] for lv in levels_of_dev[k]) <= 1)
    m.links = pe.Constraint(m.D, rule=lambda m, k: sum(
        lu[lv] * m.z[lv] for lv in levels_of_dev[k]) == sum(links_of_dev[k]))
    m.numerator = pe.Constraint(m.D, rule=lambda m, k: sum(
        m.y[lv] for lv in levels_of_dev[k]) == sum(w[p] * m.q[p] for p in pairs_of_dev[k]))
    m.big_m = pe.Constraint(m.L, rule=lambda m, lv: m.y[lv] <= float(lm.level_bound[lv])
                            * m.z[lv])
    m.wlr = pe.Objective(expr=sum(float(lm.level_coef[lv]) * m.y[lv] for lv in m.L),
                         sense=pe.maximize)
    return m


def pyomo_layer(lm: LayerMilp, start: dict | None, time_limit: float,
                options: MilpBaseOptions) -> LayerResult:
    """Solve layer ``lm``'s Pyomo model with HiGHS (APPSI); ``start`` is unused."""
    from pyomo.contrib.appsi.base import TerminationCondition
    from pyomo.contrib.appsi.solvers import Highs

    m = build_pyomo(lm)
    opt = Highs()
    opt.config.time_limit = float(time_limit)
    opt.config.load_solution = False
    opt.highs_options = {"mip_rel_gap": float(options.mip_gap), "threads": int(options.threads),
                         "output_flag": False, "presolve": "off"}
    res = opt.solve(m)
    tc = res.termination_condition
    has_point = res.best_feasible_objective is not None
    if has_point:
        res.solution_loader.load_vars()
    q = np.array([m.q[p].value or 0.0 for p in m.P]) if has_point else None
    status = {TerminationCondition.optimal: Status.OPTIMAL,
              TerminationCondition.maxTimeLimit: Status.TIME_LIMIT}.get(tc, Status.ERROR)
    bound = res.best_objective_bound
    return LayerResult(q, float(res.best_feasible_objective or np.nan),
                       float(bound if bound is not None else np.inf), status)


@register("p2", "milp-pyomo", options=MilpBaseOptions, backends=("pyomo", "highspy"), exact=True)
def solve_milp_pyomo(problem: SelectionProblem, options: MilpBaseOptions) -> Solution:
    """Exact P2: the same per-layer MILP as an algebraic Pyomo model, solved by HiGHS."""
    return solve_by_layer(problem, options, pyomo_layer, "p2/milp-pyomo")
