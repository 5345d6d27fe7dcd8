"""P4-B (SPEC §6): the energy-minimizing actions jointly with the bandwidth.

For fixed actions (loads ``u, p``) the energy ``sum_{i,k} u[i,k] e_{i,k}(B_k)`` is
separable and convex in ``B`` (``e = L P / R`` with ``R`` concave increasing), and
each deadline ``u c_k(B_k) + p a_k <= T_i`` is a lower bound ``B_k >= Bmin_k``
(``c`` decreasing). So the bandwidth step is a separable convex resource
allocation: ``B_k = max(Bmin_k, (-f_k')^{-1}(nu))`` with the price ``nu`` set by
bisection so that ``sum_k B_k = B`` (KKT). ``p4/joint-bandwidth`` alternates it
with a P4 selection at the current bandwidth (exact for decode, ``relax`` for
prefill) from the uniform split, keeping the best feasible point; the joint problem
is not convex, so the result is a local point, reported ``feasible``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import latency as lat
from ..model.deviation import selection_from_actions
from ..options import Options, option, step_option
from ..registry import Step, register
from ..solution import Solution, Status
from .problem import EnergyProblem
from .result import p4_solution

#: Bisection steps (each halves a bracket of relative width ~1e30: 1e-18 at the end).
BISECTION_STEPS = 100


def bandwidth_step(problem: EnergyProblem, u: np.ndarray, p: np.ndarray) -> np.ndarray | None:
    """The energy-optimal bandwidth ``[U]`` for loads ``u, p`` (``[I, U]``) under the
    deadlines, or None when no split meets them."""
    inst = problem.instance
    s = inst.system
    U, B, L = inst.n_devices, s.total_bandwidth_hz, inst.model.token_bits
    linked = ~s.local_mask
    a = lat.compute_time_per_token_s(inst)
    gd, gu = inst.gain_down_per_layer, inst.gain_up_per_layer                 # [I, U]
    sig_d, sig_u = s.bs_power_w * gd, s.tx_power_w * gu
    n0 = s.noise_psd_w_per_hz
    used = (u > 0) & linked                                                   # [I, U]
    if ((p * a > problem.layer_deadline[:, None] * (1 + 1e-12)) & (p > 0)).any():
        return None

    def comm(b):                                              # [..., I, U] per-token time
        bb = np.broadcast_to(b, (inst.n_layers, U))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rd = lat.rate_and_slope(bb, sig_d, n0)[0]
            ru = lat.rate_and_slope(bb, sig_u, n0)[0]
            return L / rd + L / ru

    # Bmin_k: the least bandwidth meeting every layer's deadline (bisection on [0, B])
    lo, hi = np.zeros(U), np.full(U, B)
    ok_at = lambda b: ~(used & (u * comm(b) + p * a  # noqa: E731
                                > problem.layer_deadline[:, None])).any(axis=0)
    if not ok_at(hi).all():
        return None
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        good = ok_at(mid)
        hi, lo = np.where(good, mid, hi), np.where(good, lo, mid)
    bmin = np.where(used.any(axis=0), hi, 0.0)
    if bmin.sum() > B:
        return None

    # the energy's weights per (layer, device); one row under slow fading (same gains)
    if s.fast_fading:
        w_e, sd_e, su_e = np.where(used, u, 0), sig_d, sig_u
    else:
        w_e, sd_e, su_e = np.where(used, u, 0).sum(axis=0, keepdims=True), sig_d[:1], sig_u[:1]

    def marginal(b):                                           # -f_k'(b) >= 0, [..., U]
        bb = np.maximum(b, 1e-300)[..., None, :]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rd, sd = lat.rate_and_slope(bb, sd_e, n0)
            ru, su = lat.rate_and_slope(bb, su_e, n0)
            per = L * (s.bs_power_w * sd / rd ** 2 + s.tx_power_w * su / ru ** 2)
            return np.where(w_e > 0, w_e * per, 0.0).sum(axis=-2)

    if not used.any():
        return np.full(U, B / U)
    users = used.any(axis=0)

    def alloc(nu):                                             # B_k(nu), [N, U] for nu [N]
        lo_b = np.broadcast_to(bmin, (len(nu), U))
        hi_b = np.full((len(nu), U), B)
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo_b + hi_b)
            above = marginal(mid) > nu[:, None]                # still worth more bandwidth
            lo_b, hi_b = np.where(above, mid, lo_b), np.where(above, hi_b, mid)
        return np.where(users, np.maximum(bmin, hi_b), 0.0)

    # the price nu: a log grid, zoomed three times onto the bracket of sum_k B_k = B
    m = marginal(np.stack([bmin, np.full(U, B)]))
    lo_nu, hi_nu = max(float(m[1][users].min()), 1e-300) / 2, float(m[0][users].max()) * 2
    for _ in range(3):
        nus = np.geomspace(lo_nu, hi_nu, 32)
        total = alloc(nus).sum(axis=1)                         # decreasing in nu
        n = int(np.argmax(total <= B))                         # first price that fits
        lo_nu, hi_nu = nus[max(n - 1, 0)], nus[n]
    b = alloc(np.array([hi_nu]))[0]
    spare = B - b.sum()                                       # >= 0: to the used devices
    return b + spare * users / users.sum()


@dataclass(frozen=True)
class JointOptions(Options):
    """Knobs of ``p4/joint-bandwidth``."""

    decode: Step = step_option("p4", "exact", "P4 step at a fixed bandwidth for a decode "
                               "step (one token per layer)")
    prefill: Step = step_option("p4", "relax", "P4 step at a fixed bandwidth for prefill")
    max_rounds: int = option(10, "positive_int", "alternation rounds at most")


@register("p4", "joint-bandwidth", options=JointOptions, backends=("highspy",))
def solve_joint_bandwidth(problem: EnergyProblem, options: JointOptions) -> Solution:
    """P4-B: alternate the P4 selection (the ``decode`` or ``prefill`` step) and the
    energy-optimal bandwidth (convex for fixed actions) from the uniform split; the
    best feasible point."""
    select = (options.decode if problem.decode else options.prefill).solve
    inst = problem.instance
    current = problem
    best, history = None, []
    for _ in range(options.max_rounds):
        sol = select(current)
        history.append(sol.extra["energy_j"] if sol.status != Status.INFEASIBLE else None)
        if sol.status in (Status.OPTIMAL, Status.FEASIBLE) and (
                best is None or sol.extra["energy_j"] < best.extra["energy_j"] * (1 - 1e-12)):
            best = sol
        elif best is not None:
            break
        actions = np.array(sol.extra["actions"])[..., 1]
        u, p = lat.device_loads(inst, selection_from_actions(inst, actions))
        b = bandwidth_step(problem, u, p)
        if b is None:
            break
        current = problem.with_bandwidth(b)
    if best is None:
        return sol.with_run_info(extra={**sol.extra, "rounds": history})
    actions = np.array(best.extra["actions"])[..., 1]
    return p4_solution(problem, actions, "p4/joint-bandwidth", bandwidth_hz=best.bandwidth_hz,
                       extra={"rounds": history})
