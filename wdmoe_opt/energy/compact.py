"""``p4/milp-compact``: exact P4 (SPEC §6) as a slot-based MILP, no profile enumeration.

The profile methods (:mod:`.exact`) enumerate each token's ``(E + 1)^K`` action
profiles: ``33^4 = 1 185 921`` on the 32-expert top-4 model, which they refuse.
Here every (token, slot) picks one *action* directly, so a layer has ``J K (E + 1)``
binaries. Per layer ``i`` (the layers are independent at a fixed bandwidth):

* ``x[j, s, r]`` binary: slot ``s`` of token ``j`` (router Top-K expert ``e_s``) is
  skipped (``r = -1``), kept (``r = e_s``) or replaced by expert ``r``;
  ``sum_r x[j, s, r] = 1``.
* invocation ``z[j, r] = sum_s x[j, s, r] <= 1`` (a token invokes an expert once).
* deviation, SiftMoE's Prop. 1, is a sum over the slots, so it is exactly linear:
  ``sum_{s, r} w[j, e_s] d_i(e_s, r) x[j, s, r] <= eps_i`` (``d`` = 0 keep,
  ``replace[i, e, r]``, ``skip[i, e]``).
* link use ``y[j, k] in [0, 1]`` (continuous: integral at any integer ``x``) for
  every *linked* device ``k`` (a ``local`` device has no link, zero communication
  time and energy): ``y[j, k] >= z[j, r]`` for every ``r`` on ``k``, and (shared
  placement) ``y[j, k] >= sum_{r on k} x[j, s, r]`` for every slot: a token sent to
  two experts of one device crosses its link once (``u`` of eq. 9).
* deadline, eq. (10)-(11) with these loads, per device ``k``:
  ``c_k sum_j y[j, k] + a_k sum_{j, r on k} z[j, r] <= T_i``.
* objective, SPEC §6's energy: ``sum_{j, k} e_tok[k] y[j, k] +
  sum_{j, r} kappa_{k(r)} L_comp z[j, r]``.

Actions whose own deviation exceeds the budget, or that reach a linked device
without bandwidth, are dropped before the solve (deviations are non-negative).
The deadline and budget rows are scaled to unit right-hand sides, and HiGHS's
feasibility tolerances are tightened, so a rounded point meets them within the
evaluator's :data:`~wdmoe_opt.model.deviation.FEASIBILITY_RTOL`. The layer's MILP
dual bound is a valid lower bound on the full action space whatever the time limit;
:func:`layer_lp_bound` is its LP relaxation alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import latency as lat
from ..model.deviation import FEASIBILITY_RTOL
from ..options import option
from ..registry import register
from ..selection.milp import silence_highs_banner
from ..solution import Solution, Status
from .exact import ExactOptions, appsi_highs, highs_outcome, run_highs, solve_by_layer
from .problem import EnergyProblem

#: HiGHS primal and integrality tolerances of the compact MILP (rows scaled to 1).
SOLVER_TOLERANCE = 1e-10
#: Nearest replacements of the ``p4/relax`` point that warm-starts the highspy route.
WARM_REPLACEMENTS = 4


@dataclass(frozen=True)
class CompactOptions(ExactOptions):
    """Knobs of ``p4/milp-compact``: those of the exact P4, and the warm start."""

    warm_start: bool = option(False, "bool", "start each layer's MILP from p4/relax's point "
                              "with the 4 nearest replacements (within the time limit)")


@dataclass(frozen=True)
class SlotModel:
    """One layer's compact MILP as sparse arrays: columns are the actions ``x`` (first
    ``n_actions``) then the link uses ``y``."""

    layer: int
    shape: tuple[int, int]      # (J, K)
    token: np.ndarray           # [n] token of each action column
    slot: np.ndarray            # [n] slot of each action column
    target: np.ndarray          # [n] invoked expert (-1: skip)
    cost: np.ndarray            # [n + m] objective
    link: tuple[np.ndarray, np.ndarray]   # [m] token and device of each link column
    rows: tuple[np.ndarray, np.ndarray, np.ndarray]   # (row, col, value)
    lo: np.ndarray
    hi: np.ndarray
    covered: bool               # every slot has an allowed action

    @property
    def n_actions(self) -> int:
        return len(self.token)

    @property
    def n_columns(self) -> int:
        return len(self.cost)

    def actions(self, x: np.ndarray) -> np.ndarray:
        """``[J, K]`` actions of a (near-)0/1 action vector: per slot the largest."""
        J, K = self.shape
        order = np.lexsort((-x[:self.n_actions], self.slot, self.token))
        key = self.token[order] * K + self.slot[order]
        first = np.r_[True, key[1:] != key[:-1]]
        out = np.empty(J * K, dtype=np.int64)
        out[key[first]] = self.target[order[first]]
        return out.reshape(J, K)

    def columns(self, actions: np.ndarray, placement: np.ndarray, devices: int) -> np.ndarray:
        """The 0/1 column vector of ``actions`` ``[J, K]`` (the inverse of
        :meth:`actions`; an action without a column is left out), ``placement`` the
        layer's ``[E]`` devices."""
        x = (actions[self.token, self.slot] == self.target).astype(np.float64)
        sent = np.zeros((self.shape[0], devices))
        j, s = np.nonzero(actions >= 0)
        sent[j, placement[actions[j, s]]] = 1.0
        return np.r_[x, sent[self.link[0], self.link[1]]]


def slot_model(problem: EnergyProblem, i: int) -> SlotModel:
    """Build layer ``i``'s compact MILP (module docstring), vectorized over tokens."""
    inst = problem.instance
    _, J, E = inst.gating_weights.shape
    K, U = inst.model.top_k, inst.n_devices
    sim = inst.similarity
    e = inst.router_topk_experts[i]                                   # [J, K]
    w = inst.router_topk_weights[i]
    place = inst.placement[i]                                         # [E]
    b = problem.bandwidth_hz
    comm = lat.comm_time_per_token_s(inst, b)[i]                      # [U]
    comp = lat.compute_time_per_token_s(inst)                         # [U]
    e_tok = lat.transmit_energy_per_token_j(inst, b)[i]               # [U]
    e_cmp = lat.compute_energy_per_token_j(inst)                      # [U]
    linked = ~inst.system.local_mask
    budget = problem.layer_budget[i] * (1 + FEASIBILITY_RTOL)
    # every (token, slot, target) action, target -1 (skip) then 0..E-1
    tgt = np.broadcast_to(np.arange(-1, E), (J, K, E + 1))
    unit = np.where(tgt < 0, sim.skip[i, e][..., None],
                    sim.replace[i][e[..., None], np.maximum(tgt, 0)])
    dev = w[..., None] * unit                                          # [J, K, E + 1]
    on = dev <= budget
    reach = np.r_[True, np.isfinite(comm[place]) & np.isfinite(e_tok[place])]
    on &= reach[None, None, :]
    covered = bool(on.any(axis=2).all())
    tok, slot, c = np.nonzero(on)
    target = c - 1
    n = len(tok)
    device = np.where(target >= 0, place[np.maximum(target, 0)], -1)
    # link columns: one per (token, linked device) some action of the token reaches
    hit = np.zeros((J, U), dtype=bool)
    hit[tok[target >= 0], device[target >= 0]] = True
    hit &= linked[None, :]
    yj, yk = np.nonzero(hit)
    y_of = np.full((J, U), -1)
    y_of[yj, yk] = n + np.arange(len(yj))
    cost = np.r_[np.where(target >= 0, e_cmp[np.maximum(device, 0)], 0.0), e_tok[yk]]
    rows, cols, vals, lo, hi = [], [], [], [], []
    r0 = 0

    def add(row, col, val, lo_, hi_):
        nonlocal r0
        rows.append(r0 + row)
        cols.append(col)
        vals.append(val)
        lo.append(lo_)
        hi.append(hi_)
        r0 += len(lo_)

    cols_x = np.arange(n)
    # one action per slot
    add(tok * K + slot, cols_x, np.ones(n), np.ones(J * K), np.ones(J * K))
    # each expert invoked at most once per token (where two slots can invoke it)
    inv = target >= 0
    key = tok[inv] * E + target[inv]
    pairs, pair_of, count = np.unique(key, return_inverse=True, return_counts=True)
    multi = count[pair_of] > 1
    rid = np.cumsum(count > 1) - 1
    add(rid[pair_of[multi]], cols_x[inv][multi], np.ones(int(multi.sum())),
        np.full(int((count > 1).sum()), -np.inf), np.ones(int((count > 1).sum())))
    # link: y[j, k] - z[j, r] >= 0 for every invoked pair (j, r) on a linked device
    pk = place[pairs % E]
    pj = pairs // E
    lk = linked[pk]
    lrow = np.cumsum(lk) - 1
    sel = lk[pair_of]
    add(np.r_[lrow[pair_of[sel]], np.arange(int(lk.sum()))],
        np.r_[cols_x[inv][sel], y_of[pj[lk], pk[lk]]],
        np.r_[-np.ones(int(sel.sum())), np.ones(int(lk.sum()))],
        np.zeros(int(lk.sum())), np.full(int(lk.sum()), np.inf))
    if not inst.identity_placement:
        # shared placement: y[j, k] - sum_{r on k} x[j, s, r] >= 0 per slot
        dv = np.maximum(device, 0)
        sl = inv & linked[dv]
        skey = (tok[sl] * K + slot[sl]) * U + dv[sl]
        trip, trip_of = np.unique(skey, return_inverse=True)
        tj, tk = trip // (K * U), trip % U
        add(np.r_[trip_of, np.arange(len(trip))],
            np.r_[cols_x[sl], y_of[tj, tk]],
            np.r_[-np.ones(len(trip_of)), np.ones(len(trip))],
            np.zeros(len(trip)), np.full(len(trip), np.inf))
    # deviation budget per token (scaled to 1), where the dropped actions leave it binding
    worst = np.zeros((J, K))
    np.maximum.at(worst, (tok, slot), dev[tok, slot, c])
    tight = np.flatnonzero(worst.sum(axis=1) > budget)
    if len(tight):
        at = np.isin(tok, tight)
        add(np.searchsorted(tight, tok[at]), cols_x[at], dev[tok[at], slot[at], c[at]] / budget,
            np.full(len(tight), -np.inf), np.full(len(tight), 1.0))
    # deadline per device (scaled to 1): c_k sum_j y + a_k sum z
    deadline = float(problem.layer_deadline[i])
    if np.isfinite(deadline):
        limit = deadline * (1 + FEASIBILITY_RTOL)
        xs = np.flatnonzero(inv)
        dx = device[xs]
        ys = np.arange(len(yj))
        col = np.r_[xs, n + ys]
        dvc = np.r_[dx, yk]
        val = np.r_[comp[dx], comm[yk]] / limit
        used = np.flatnonzero(np.bincount(dvc[val > 0], minlength=U))
        keep = np.isin(dvc, used) & (val > 0)
        add(np.searchsorted(used, dvc[keep]), col[keep], val[keep],
            np.full(len(used), -np.inf), np.ones(len(used)))
    return SlotModel(i, (J, K), tok, slot, target, cost, (yj, yk),
                     tuple(np.concatenate(a) for a in (rows, cols, vals)),
                     np.concatenate(lo), np.concatenate(hi), covered)


def _highs(sm: SlotModel, options: ExactOptions, time_limit: float, integer: bool,
           start: np.ndarray | None = None):
    """The layer's model in a ``Highs`` object, run (``integer=False``: the LP), from
    the column vector ``start`` if given."""
    return run_highs(sm.cost, sm.rows, sm.lo, sm.hi, time_limit, options,
                     n_integer=sm.n_actions if integer else 0, tolerance=SOLVER_TOLERANCE,
                     start=start)


def highspy_slots(problem: EnergyProblem, sm: SlotModel, options: CompactOptions,
                  time_limit: float, start: np.ndarray | None = None):
    """``(actions [J, K] or None, dual bound, status)`` of the layer's MILP (highspy
    arrays), from the layer's actions ``start`` ``[J, K]`` if given."""

    x0 = None if start is None else sm.columns(
        start, problem.instance.placement[sm.layer], problem.instance.n_devices)
    x, bound, status = highs_outcome(_highs(sm, options, time_limit, integer=True,
                                            start=x0))
    return None if x is None else sm.actions(x), bound, status


def pyomo_slots(problem: EnergyProblem, sm: SlotModel, options: ExactOptions,
                time_limit: float, start: None = None):
    """The same MILP written again algebraically in Pyomo (unscaled rows, coefficients
    recomputed from the instance, only the action list shared), HiGHS via APPSI: a
    check of :func:`slot_model`'s array assembly."""
    import pyomo.environ as pe

    inst, i = problem.instance, sm.layer
    sim, b = inst.similarity, problem.bandwidth_hz
    e, w = inst.router_topk_experts[i], inst.router_topk_weights[i]
    place = inst.placement[i]
    comm = lat.comm_time_per_token_s(inst, b)[i]
    comp = lat.compute_time_per_token_s(inst)
    e_tok = lat.transmit_energy_per_token_j(inst, b)[i]
    e_cmp = lat.compute_energy_per_token_j(inst)
    local = inst.system.local_mask
    acts = [(int(j), int(s), int(r)) for j, s, r in zip(sm.token, sm.slot, sm.target,
                                                        strict=True)]
    dev = {a: int(place[a[2]]) for a in acts if a[2] >= 0}
    m = pe.ConcreteModel()
    m.A = pe.Set(initialize=range(len(acts)))
    m.x = pe.Var(m.A, domain=pe.Binary)
    sent = sorted({(a[0], dev[a]) for a in acts if a in dev and not local[dev[a]]})
    m.y = pe.Var(pe.Set(initialize=sent, dimen=2), bounds=(0, 1))

    def of(pred):
        return [n for n, a in enumerate(acts) if pred(a)]

    slots = sorted({a[:2] for a in acts})
    m.one = pe.Constraint(pe.Set(initialize=slots, dimen=2), rule=lambda m, j, s: sum(
        m.x[n] for n in of(lambda a: a[:2] == (j, s))) == 1)
    pairs = sorted({(a[0], a[2]) for a in acts if a[2] >= 0})
    z = {p: of(lambda a, p=p: (a[0], a[2]) == p) for p in pairs}
    m.once = pe.Constraint(pe.Set(initialize=pairs, dimen=2), rule=lambda m, j, r: sum(
        m.x[n] for n in z[j, r]) <= 1)
    linked = [p for p in pairs if not local[place[p[1]]]]
    m.link = pe.Constraint(pe.Set(initialize=linked, dimen=2), rule=lambda m, j, r: m.y[
        j, int(place[r])] >= sum(m.x[n] for n in z[j, r]))
    if not inst.identity_placement:
        m.link_slot = pe.ConstraintList()
        for (j, k) in sent:
            for s in range(sm.shape[1]):
                on = of(lambda a, j=j, k=k, s=s: a[:2] == (j, s) and dev.get(a) == k)
                if on:
                    m.link_slot.add(m.y[j, k] >= sum(m.x[n] for n in on))

    def deviation(a):
        j, s, r = a
        unit = sim.skip[i, e[j, s]] if r < 0 else sim.replace[i, e[j, s], r]
        return float(w[j, s] * unit)

    budget = float(problem.layer_budget[i]) * (1 + FEASIBILITY_RTOL)
    m.budget = pe.Constraint(range(sm.shape[0]), rule=lambda m, j: sum(
        deviation(acts[n]) * m.x[n] for n in of(lambda a: a[0] == j)) <= budget)
    deadline = float(problem.layer_deadline[i])
    if np.isfinite(deadline):
        m.deadline = pe.ConstraintList()
        for k in sorted(set(dev.values())):
            t = sum(float(comp[k]) * m.x[n] for n in of(lambda a, k=k: dev.get(a) == k))
            if not local[k]:
                t += sum(float(comm[k]) * m.y[jk] for jk in sent if jk[1] == k)
            m.deadline.add(t <= deadline * (1 + FEASIBILITY_RTOL))
    m.energy = pe.Objective(expr=sum(float(e_cmp[dev[a]]) * m.x[n] for n, a in
                                     enumerate(acts) if a in dev)
                            + sum(float(e_tok[k]) * m.y[j, k] for j, k in sent))
    tol = {"primal_feasibility_tolerance": SOLVER_TOLERANCE,
           "mip_feasibility_tolerance": SOLVER_TOLERANCE}
    loaded, bound, status = appsi_highs(m, time_limit, options, tol)
    x = np.array([m.x[n].value or 0.0 for n in m.A]) if loaded else None
    return (None if x is None else sm.actions(x)), bound, status


def layer_lp_bound(problem: EnergyProblem, i: int, time_limit: float = 60.0) -> float:
    """The LP relaxation value of layer ``i``'s compact MILP: a lower bound on the
    layer's energy over the full action space (``inf``: proved infeasible, ``nan``:
    not solved)."""
    import highspy

    sm = slot_model(problem, i)
    if not sm.covered:
        return np.inf
    silence_highs_banner()
    h = _highs(sm, ExactOptions(), time_limit, integer=False)
    ms = h.getModelStatus()
    if ms == highspy.HighsModelStatus.kInfeasible:
        return np.inf
    if ms != highspy.HighsModelStatus.kOptimal:
        return np.nan
    return float(h.getInfo().objective_function_value)


def warm_start(problem: EnergyProblem) -> np.ndarray | None:
    """``[I, J, K]`` actions of ``p4/relax`` with the :data:`WARM_REPLACEMENTS` nearest
    replacements (a restriction of the actions: a feasible point if it finds one),
    or None where it finds none."""
    from .relax import RelaxOptions, solve_relax

    R = min(WARM_REPLACEMENTS, problem.instance.n_experts - 1)
    sol = solve_relax(problem, RelaxOptions(replacements=R))
    if sol.status not in (Status.OPTIMAL, Status.FEASIBLE):
        return None
    return np.asarray(sol.extra["actions"])[..., 1]


def solve_compact(problem: EnergyProblem, options: ExactOptions, route, method: str,
                  warm: bool = False):
    """Every layer's compact MILP through ``route`` (:func:`~.exact.solve_by_layer`;
    with ``warm``, from :func:`warm_start`'s point); the P4 solution with the summed
    dual bound."""
    actions = problem.instance.router_topk_experts.copy()
    start = warm_start(problem) if warm else None
    silence_highs_banner()

    def solve_layer(i: int, seconds) -> tuple[float, Status]:
        sm = slot_model(problem, i)
        if not sm.covered:
            return np.nan, Status.INFEASIBLE
        acts, bound, status = route(problem, sm, options, seconds(),
                                    None if start is None else start[i])
        if acts is not None:
            actions[i] = acts
        return bound, status

    return solve_by_layer(problem, options, method, solve_layer, lambda: actions)


@register("p4", "milp-compact", options=CompactOptions, backends=("highspy",), exact=True)
def solve_milp_compact(problem: EnergyProblem, options: CompactOptions) -> Solution:
    """Exact P4 through the slot-based MILP (no profile enumeration: any E, K, J)."""
    return solve_compact(problem, options, highspy_slots, "p4/milp-compact",
                         warm=options.warm_start)


@register("p4", "milp-compact-pyomo", options=ExactOptions, backends=("pyomo", "highspy"),
          exact=True)
def solve_milp_compact_pyomo(problem: EnergyProblem, options: ExactOptions) -> Solution:
    """Exact P4 through the slot-based MILP written algebraically in Pyomo (small J)."""
    return solve_compact(problem, options, pyomo_slots, "p4/milp-compact-pyomo")
