"""The P4 baselines (SPEC §6): ideal Top-K, WDMoE, skip by weight ratio, and
substitution by router-score proximity. Each reports its energy at the problem's
bandwidth (WDMoE: at its own P3 bandwidth); a point that breaks a budget or a
deadline is reported ``infeasible`` (the method found no feasible point)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import latency as lat
from ..model.deviation import FEASIBILITY_RTOL, deviation, keep_all_actions, topk_experts
from ..options import NoOptions, Options, option
from ..problems import BandwidthProblem, SelectionProblem
from ..registry import get_method, register
from ..solution import Solution
from .problem import EnergyProblem
from .result import p4_solution


def within_budget(problem: EnergyProblem, actions: np.ndarray) -> np.ndarray:
    """``actions`` where each token's deviation fits its layer budget, else keep-all:
    a rule is applied to a token only where the budget allows it."""
    inst = problem.instance
    dev = deviation(inst, actions)
    over = dev > problem.layer_budget[:, None] * (1 + FEASIBILITY_RTOL)
    return np.where(over[..., None], keep_all_actions(inst), actions)


@register("p4", "topk")
def solve_topk(problem: EnergyProblem, options: NoOptions) -> Solution:
    """Ideal Top-K: every token keeps its router Top-K (no deviation); energy reported."""
    return p4_solution(problem, keep_all_actions(problem.instance), "p4/topk")


@dataclass(frozen=True)
class SkipOptions(Options):
    """Knobs of ``p4/skip-threshold``."""

    beta: float | None = option(None, "optional_unit",
                                "skip a non-top expert when w/w_top < beta; omitted: per "
                                "layer, the median of that ratio over the batch (Lu et al.)")


@register("p4", "skip-threshold", options=SkipOptions)
def solve_skip_threshold(problem: EnergyProblem, options: SkipOptions) -> Solution:
    """Dynamic skipping (Lu et al. 2024): skip a Top-K expert whose weight is below
    ``beta`` times the token's top weight, where the budget allows it."""
    inst = problem.instance
    e = topk_experts(inst)
    w = inst.router_topk_weights                                          # [I, J, K]
    ratio = w / w.max(axis=2, keepdims=True)
    is_top = ratio >= 1.0
    if options.beta is None:
        beta = np.nanmedian(np.where(is_top, np.nan, ratio).reshape(inst.n_layers, -1)
                            if inst.model.top_k > 1 else np.zeros((inst.n_layers, 1)), axis=1)
        beta = np.nan_to_num(beta)[:, None, None]
    else:
        beta = options.beta
    skip = ~is_top & (ratio < beta)
    actions = within_budget(problem, np.where(skip, -1, e))
    return p4_solution(problem, actions, "p4/skip-threshold",
                       extra={"beta": np.broadcast_to(beta, (inst.n_layers, 1, 1))[:, 0, 0]})


@dataclass(frozen=True)
class SubstituteOptions(Options):
    """Knobs of ``p4/substitute``."""

    alpha: float = option(0.25, "unit", "score band around the (K+1)-th router score")


@register("p4", "substitute", options=SubstituteOptions)
def solve_substitute(problem: EnergyProblem, options: SubstituteOptions) -> Solution:
    """Router-score proximity (SMoE, arXiv 2508.18983): with ``S`` a token's (K+1)-th
    score, an activated expert scoring below ``(1 + alpha) S`` is replaced by the
    cheapest non-activated expert scoring in ``[(1 - alpha) S, S)`` when that saves
    energy, and where the budget allows it."""
    inst = problem.instance
    I, J, E = inst.gating_weights.shape
    K = inst.model.top_k
    w = inst.gating_weights
    e = topk_experts(inst)
    if K == E:
        return p4_solution(problem, keep_all_actions(inst), "p4/substitute")
    s_next = -np.partition(-w, K, axis=2)[:, :, K:K + 1]                  # (K+1)-th score
    b = problem.bandwidth_hz
    unit = (lat.transmit_energy_per_token_j(inst, b)[np.arange(I)[:, None], inst.placement]
            + lat.compute_energy_per_token_j(inst)[inst.placement])       # [I, E]
    resident = ~inst.router_topk_mask & (w >= (1 - options.alpha) * s_next) & (w < s_next)
    actions = e.copy()
    wk = inst.router_topk_weights
    li = np.arange(I)[:, None]
    for s in np.argsort(wk.mean(axis=(0, 1)), kind="stable"):          # K slots, low weight first
        cost = np.where(resident, unit[:, None, :], np.inf)              # [I, J, E]
        r = np.argmin(cost, axis=2)
        gain = unit[li, e[:, :, s]] - cost.min(axis=2)
        do = (wk[:, :, s] < (1 + options.alpha) * s_next[:, :, 0]) & (gain > 0)
        actions[:, :, s] = np.where(do, r, actions[:, :, s])
        ii, jj = np.nonzero(do)
        resident[ii, jj, r[ii, jj]] = False                             # r now in use
    return p4_solution(problem, within_budget(problem, actions), "p4/substitute")


@register("p4", "wdmoe")
def solve_wdmoe(problem: EnergyProblem, options: NoOptions) -> Solution:
    """WDMoE (the paper): Algorithm 1 at the uniform split, then the exact P3 bandwidth
    (local devices get 0 Hz); dropped experts skipped; energy at P3's bandwidth."""
    inst = problem.instance
    sel = get_method("p2/alg1")(SelectionProblem(inst)).selection
    b = get_method("p3/exact")(BandwidthProblem(inst, sel)).bandwidth_hz
    e = topk_experts(inst)
    kept = np.take_along_axis(sel.mask, e, axis=2)
    return p4_solution(problem, np.where(kept, e, -1), "p4/wdmoe", bandwidth_hz=b)
