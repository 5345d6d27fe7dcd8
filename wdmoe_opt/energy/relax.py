"""``p4/relax``: the fast prefill P4 with a lower bound (SPEC §6).

Per layer (the layers are independent at a fixed bandwidth):

1. Without the deadline, P4 separates by token: every token takes its least-energy
   allowed profile (vectorized over all layers and tokens). If the device times of
   that choice meet the layer's deadline, the layer is solved exactly.
2. Otherwise the layer is a multiple-choice knapsack (:mod:`.layer`). Tokens with the
   same allowed invoked sets are interchangeable, so they are grouped, and the LP
   relaxation over ``y[g, S]`` (how many tokens of group ``g`` take set ``S``) is
   solved by HiGHS. Its value is a lower bound on the layer (it equals the bound of
   the Lagrangian relaxation of the deadline rows). A basic LP solution splits at
   most ``U`` groups (one per deadline row), so rounding the counts (largest
   remainder) and a greedy repair of any overloaded device (move the tokens whose
   move costs the least energy per second removed) leaves a small gap. Where the
   repair gets stuck, the grouped integer program (one integer count per group and
   set: small) is solved by HiGHS within ``fallback_s`` instead.

The bound is the sum of the layers' bounds; the gap is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.deviation import FEASIBILITY_RTOL
from ..options import Options, option
from ..registry import register
from ..selection.milp import silence_highs_banner
from ..solution import Solution, Status
from .candidates import Candidates, lex_rank
from .exact import ENUMERATION_TOLERANCE
from .layer import LayerSets, layer_sets
from .problem import EnergyProblem
from .result import p4_solution


@dataclass(frozen=True)
class RelaxOptions(Options):
    """Knobs of ``p4/relax``."""

    replacements: int | None = option(None, "optional_positive_int",
                                      "replacement candidates per expert (nearest first); "
                                      "omitted: all E - 1")
    max_moves: int = option(10_000, "positive_int", "repair moves per layer at most")
    fallback_s: float = option(5.0, "positive", "seconds for the grouped integer program "
                               "of a layer the repair cannot fix")


def separable_choice(cand: Candidates) -> tuple[np.ndarray, np.ndarray]:
    """``(choice, energy)``, each ``[I, J]``: each token's least-energy allowed profile
    (ties: least deviation, then the first) and its energy (``inf`` if none is allowed:
    then the least-deviation profile).

    The energy of a profile depends on the token's row only. Each row's profiles are
    sorted by energy once; equal energies (the profiles of one invoked set share one)
    form a *class*. Per token, the best allowed class is the largest of ``score *
    allowed`` (``score``: ``P`` minus the class's first sorted position, ``0`` for an
    invalid profile; small integers, built a few layers at a time, tokens last,
    without the ``[I, J, P]`` energies); the deviation is then compared among that
    class's few profiles only."""
    I, J = cand.row.shape
    n, P = cand.row_energy.shape
    order = np.argsort(cand.row_energy, axis=1, kind="stable")           # [n, P]
    ranked = np.take_along_axis(cand.row_energy, order, axis=1)
    new = np.c_[np.ones(n, dtype=bool), ranked[:, 1:] != ranked[:, :-1]]
    start = np.maximum.accumulate(np.where(new, np.arange(P), 0), axis=1)  # class start
    finite = np.isfinite(ranked)
    m = int((np.arange(P) - start)[finite].max(initial=0)) + 1            # largest class
    dtype = np.min_scalar_type(P)
    score = np.zeros((P, n), dtype=dtype)                                 # [P, n]
    np.put_along_axis(score.T, order, np.where(finite, P - start, 0).astype(dtype), axis=1)
    best = np.empty((I, J), dtype=dtype)
    for i in cand.layer_chunks():
        v = np.take(score, cand.row[i], axis=1)                           # [P, ., J]
        ok = cand.within_budget(i, cand.profile_deviation(i))            # [., P, J]
        np.multiply(v, np.swapaxes(ok, 0, 1), out=v)
        best[i] = v.max(axis=0)
    # the class of each token's best: sorted positions first, first + 1, ... (same class)
    t = np.flatnonzero(best.ravel() > 0)
    rows = cand.row.ravel()[t]
    at = (P - best.ravel()[t].astype(np.intp))[:, None] + np.arange(m)   # [T, m]
    flat = rows[:, None] * P + np.minimum(at, P - 1)
    same = (at < P) & (np.take(start, flat) == at[:, :1])
    q = np.take(order, flat)
    ti, tj = np.divmod(t, J)
    dev = cand.deviation_at(ti[:, None], tj[:, None], q)
    pick = np.argmin(np.where(same & cand.within_budget(ti[:, None], dev), dev, np.inf),
                     axis=1)
    choice = np.empty(I * J, dtype=np.intp)
    choice[t] = q[np.arange(len(t)), pick]
    energy = np.full(I * J, np.inf)
    energy[t] = cand.row_energy[rows, choice[t]]
    none = np.flatnonzero(best.ravel() == 0)          # nothing allowed: least deviation
    ni, nj = np.divmod(none, J)
    choice[none] = np.argmin(cand.deviation_at(ni[:, None], nj[:, None], np.arange(P)), axis=1)
    return choice.reshape(I, J), energy.reshape(I, J)


@dataclass(frozen=True)
class Groups:
    """Tokens of a layer grouped by their allowed invoked sets."""

    allowed: np.ndarray      # [G, S] bool
    count: np.ndarray        # [G] tokens per group
    members: np.ndarray      # [J] group of each token
    energy: np.ndarray       # [S]
    time: np.ndarray         # [S, U]


def dominance(energy: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(src, dst)``, grouped by ascending ``dst``: every pair of sets where ``src``
    dominates ``dst`` (no more energy and no more time on any device, and less of one
    of them; equal sets: the lower id dominates).

    A set that takes no more time on every device uses a subset of the devices, so
    only the sets whose device support is a subset of ``dst``'s are compared (``2^m``
    supports for a set on ``m`` devices, ``m <= K``), not all ``S`` sets (``S``
    reaches thousands on 32 experts, top-4)."""
    S, U = time.shape
    used = time > 0
    if U > 62:                                           # supports as int64 bit masks
        dst, src = np.nonzero(np.ones((S, S), dtype=bool))
    else:
        key = used.astype(np.int64) @ (np.int64(1) << np.arange(U, dtype=np.int64))
        m = int(used.sum(axis=1).max(initial=0))
        pos = np.argsort(~used, axis=1, kind="stable")[:, :m]       # support devices first
        on = np.take_along_axis(used, pos, axis=1)                   # [S, m]
        pick = (np.arange(1 << m)[:, None] >> np.arange(m)) & 1     # [2^m, m] subsets
        # the subsets of each support (a subset using a padding slot is skipped)
        d, c = np.nonzero((pick[None, :, :] <= on[:, None, :]).all(axis=2))
        sub = (np.where(on[d], np.int64(1) << pos[d], 0) * pick[c]).sum(axis=1)
        order = np.argsort(key, kind="stable")
        lo = np.searchsorted(key[order], sub, side="left")
        n = np.searchsorted(key[order], sub, side="right") - lo
        dst = np.repeat(d, n)
        src = order[np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())]
    cheaper = energy[src] <= energy[dst]                 # the 1-D test first
    src, dst = src[cheaper], dst[cheaper]
    ts, td = time[src], time[dst]
    keep = (ts <= td).all(axis=1) & (
        (energy[src] < energy[dst]) | (ts < td).any(axis=1) | (src < dst))
    return src[keep], dst[keep]


def group_tokens(ls: LayerSets) -> Groups:
    """Group the tokens by their allowed sets, after dropping every set another
    allowed set dominates (:func:`dominance`: it can replace it in any solution,
    integer or fractional, so neither the optimum nor the LP bound changes)."""
    allowed, energy, time = ls.allowed, ls.energy, ls.time
    src, dst = dominance(energy, time)
    # tokens with the same allowed sets first (rows in the order np.unique(allowed,
    # axis=0) gives: packing the bits, first column in the high bit, keeps it), then the
    # dominated sets dropped per distinct row, then the reduced rows grouped
    _, first, inv = np.unique(lex_rank(np.packbits(allowed, axis=1), 256),
                              return_index=True, return_inverse=True)
    rows = allowed[first]
    if len(dst):
        start = np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]])
        rows[:, dst[start]] &= ~np.logical_or.reduceat(rows[:, src], start, axis=1)
    _, first, members = np.unique(lex_rank(np.packbits(rows, axis=1), 256),
                                  return_index=True, return_inverse=True)
    members = members.ravel()[inv.ravel()]
    count = np.bincount(members, minlength=len(first))
    return Groups(rows[first], count, members, energy, time)


def solve_lp(g: Groups, ls: LayerSets, integer_s: float | None = None
             ) -> tuple[np.ndarray | None, float]:
    """The LP relaxation: ``(y [G, S], value)``, or ``(None, nan)`` if infeasible.
    With ``integer_s``, the grouped integer program instead (counts integral, at most
    that many seconds): ``(y, its dual bound)``, ``y`` None without an incumbent
    (bound ``inf`` when proved infeasible)."""
    import highspy

    gi, si = np.nonzero(g.allowed)
    n = len(gi)
    devs = ls.timed_devices
    G = len(g.count)
    # column by column (rows increasing): its group row, then its nonzero device rows
    vals = np.c_[np.ones(n), g.time[si][:, devs]]                           # [n, 1 + D]
    on = vals != 0
    rows = np.c_[gi, np.broadcast_to(G + np.arange(len(devs)), (n, len(devs)))][on]
    starts = np.r_[0, np.cumsum(on.sum(axis=1))[:-1]].astype(np.int32)
    lo = np.r_[g.count.astype(float), np.full(len(devs), -np.inf)]
    hi = np.r_[g.count.astype(float), np.full(len(devs), ls.deadline)]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    if integer_s is None:
        # the LP is small and has no redundancy left to remove (dominated sets dropped,
        # tokens grouped): presolve costs about as much as the simplex itself
        h.setOptionValue("presolve", "off")
    none = np.zeros(0, dtype=np.int32)
    h.addRows(len(lo), lo, hi, 0, none, none, np.zeros(0))
    h.addCols(n, g.energy[si], np.zeros(n), np.full(n, np.inf), len(rows), starts,
              rows.astype(np.int32), vals[on])
    if integer_s is not None:
        h.setOptionValue("time_limit", float(integer_s))
        h.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                np.full(n, int(highspy.HighsVarType.kInteger), dtype=np.uint8))
    h.run()
    info = h.getInfo()
    if integer_s is not None:
        if h.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
            return None, np.inf                          # proved: no integer point
        if info.primal_solution_status != 2:
            return None, float(info.mip_dual_bound)
    elif h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None, np.nan
    y = np.zeros(g.allowed.shape)
    y[gi, si] = np.maximum(np.asarray(h.getSolution().col_value), 0.0)
    if integer_s is not None:
        return np.rint(y), float(info.mip_dual_bound)
    return y, float(info.objective_function_value)


def round_counts(y: np.ndarray, count: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Integer counts ``[G, S]`` with row sums ``count`` (largest remainder)."""
    base = np.floor(y + 1e-9)
    base = np.where(allowed, base, 0)
    left = count - base.sum(axis=1)
    frac = np.where(allowed, y - base, -np.inf)
    rank = np.argsort(np.argsort(-frac, axis=1, kind="stable"), axis=1, kind="stable")
    return (base + (rank < left[:, None])).astype(np.int64)


def repair(counts: np.ndarray, g: Groups, deadline: float, max_moves: int) -> bool:
    """Move tokens between sets (in place) until no device exceeds ``deadline``;
    each step moves the tokens with the least energy increase per second of overload
    removed, never creating a new overload. Returns whether it succeeded."""
    limit = deadline * (1 + FEASIBILITY_RTOL)
    for _ in range(max_moves):
        t = counts.sum(axis=0) @ g.time
        over = np.maximum(t - limit, 0.0)
        if not over.any():
            return True
        gi, si = np.nonzero(counts)                                    # occupied (g, S)
        dt = g.time[None, :, :] - g.time[si][:, None, :]               # [m, S', U]
        new_over = np.maximum(t + dt - limit, 0.0)
        relief = over.sum() - new_over.sum(axis=2)                     # overload removed
        ok = g.allowed[gi] & (relief > 0) & ((new_over <= over + 1e-15).all(axis=2))
        if not ok.any():
            return False
        cost = (g.energy[None, :] - g.energy[si][:, None]) / np.where(ok, relief, 1.0)
        m, s2 = np.unravel_index(np.argmin(np.where(ok, cost, np.inf)), ok.shape)
        counts[gi[m], si[m]] -= 1
        counts[gi[m], s2] += 1
    return False


def assign(counts: np.ndarray, g: Groups, ls: LayerSets, cand: Candidates) -> np.ndarray:
    """``[J]`` profile of every token from the group counts."""
    G, S = counts.shape
    by_group = np.argsort(g.members, kind="stable")                 # tokens, group by group
    sets = np.empty(ls.n_tokens, dtype=np.int64)
    sets[by_group] = np.repeat(np.tile(np.arange(S), G), counts.ravel())
    return ls.profiles(cand, np.arange(ls.n_tokens), sets)


@register("p4", "relax", options=RelaxOptions, backends=("highspy",))
def solve_relax(problem: EnergyProblem, options: RelaxOptions) -> Solution:
    """Fast prefill P4: separable choice where the deadline allows, else the LP
    relaxation of the layer's knapsack, rounded and repaired; reports the LP bound."""
    cand = Candidates.build(problem, options.replacements)
    choice, chosen_energy = separable_choice(cand)
    energy0 = chosen_energy.sum(axis=1)
    late = (cand.device_times(choice).max(axis=1)
            > problem.layer_deadline * (1 + FEASIBILITY_RTOL))
    bound = np.where(late, np.nan, energy0)
    failed, infeasible = [], []
    if late.any():
        silence_highs_banner()
    for i in np.flatnonzero(late):
        ls = layer_sets(cand, int(i))
        if not ls.allowed.any(axis=1).all():
            infeasible.append(int(i))
            continue
        g = group_tokens(ls)
        y, value = solve_lp(g, ls)
        if y is None:
            infeasible.append(int(i))
            continue
        bound[i] = value
        counts = round_counts(y, g.count, g.allowed)
        if not repair(counts, g, ls.deadline, options.max_moves):
            # the greedy repair is stuck: the grouped integer program (small: one
            # integer per group and set), for the point and a better bound
            y_int, int_bound = solve_lp(g, ls, integer_s=options.fallback_s)
            if int_bound == np.inf:
                infeasible.append(int(i))
                continue
            bound[i] = max(value, int_bound)
            if y_int is None:
                failed.append(int(i))
                continue
            counts = y_int.astype(np.int64)
        choice[i] = assign(counts, g, ls, cand)
    extra = {"layers_relaxed": int(late.sum()), "infeasible_layers": infeasible,
             "repair_failed_layers": failed}
    # with fewer replacements the bound and infeasibility hold for the restricted
    # problem only: neither is reported for P4 itself
    full = options.replacements is None or options.replacements >= cand.problem.instance \
        .n_experts - 1
    if infeasible:
        return p4_solution(problem, cand.actions(choice), "p4/relax",
                           status=Status.INFEASIBLE if full else Status.ERROR, extra=extra)
    status = Status.ERROR if failed else Status.FEASIBLE
    sol = p4_solution(problem, cand.actions(choice), "p4/relax", status=status,
                      lower_bound_j=float(bound.sum()) if full else None, extra=extra)
    if sol.status == Status.FEASIBLE and full and sol.extra["energy_gap"] <= ENUMERATION_TOLERANCE:
        return sol.with_run_info(status=Status.OPTIMAL, tolerance=ENUMERATION_TOLERANCE)
    return sol
