"""``p3/robust``: bandwidth that survives channel-estimate error (SPEC §8).

The base station knows estimates ``g_hat`` of the gains, not the gains. The error
model (:func:`lognormal_factors`): the true gain is ``g = g_hat * delta`` with
``10 log10(delta) ~ N(0, sigma_db^2)``, independent per device, direction and
(under fast fading) layer. From ``S`` scenarios ``delta_s`` drawn with ``seed``,
device ``k``'s time in layer ``i`` of scenario ``s`` is the P3 time (eq. 10) at the
gains ``g_hat * delta_s``, and the scenario latency ``T_s(B) = sum_i max_k t_s[i, k]``
(eq. 19). Two risk measures:

* ``risk = 0``, the sample average ``(1/S) sum_s T_s(B)`` (SAA). It is P3 itself
  with ``S I`` layers, ``kappa`` and ``pi`` divided by ``S`` and a gain per
  (scenario-layer, device), the fast-fading form, so the compiled interior point of
  ``p3/exact`` solves it and its Lagrangian dual certifies it exactly.
* ``risk = alpha`` in ``(0, 1)``, the conditional value at risk
  ``CVaR_alpha = min_eta eta + sum_s max(T_s - eta, 0) / ((1 - alpha) S)``, the mean
  of the worst ``1 - alpha`` fraction of scenarios (Rockafellar-Uryasev). The extra
  variable ``eta`` and the scenario excesses leave the kernel's form, but
  ``CVaR_alpha(B) = max_q sum_s q_s T_s(B)`` over the capped simplex
  ``Q = {0 <= q_s <= 1 / ((1 - alpha) S), sum q = 1}``, so for any ``q`` in ``Q`` the
  optimum of the ``q``-weighted SAA (the kernel again, ``kappa`` and ``pi`` of
  scenario ``s`` times ``q_s``) is a lower bound on the CVaR optimum, certified by
  its dual function. Kelley's cutting planes on ``q`` (:func:`_cvar_point`) close
  the gap, each round one kernel solve and a small LP (HiGHS through SciPy). A
  conic model (cvxpy + Clarabel, exponential cones per scenario pair) was tried
  first: it stalled (``InsufficientProgress`` at a 1e-3 gap) from 16 scenarios at
  paper scale and took 12 s for 4.

The returned :class:`~wdmoe_opt.solution.Solution` is a feasible P3 point: its
objective is the latency on the *estimated* channels (the model's), not a bound
target, so its status is ``feasible`` without a P3 bound. The robust objective,
its certified bound and status are in ``extra`` (``robust_objective_s``,
``robust_lower_bound_s``, ``robust_status``) with the nominal objective.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..options import option
from ..problems import BandwidthProblem
from ..registry import register
from ..rng import check_random_state
from ..solution import Solution, Status, relative_gap
from .common import P3Options, finish, prepare
from .exact import interior_point
from .structure import P3Data

#: Cutting-plane rounds of the CVaR method (each one kernel solve and one LP).
_CVAR_ROUNDS = 200
#: Each round's weighted SAA is certified to this fraction of ``tol``: its bound is
#: the CVaR method's lower bound, which must come within ``tol`` of the point.
_INNER = 0.1


@dataclass(frozen=True)
class RobustOptions(P3Options):
    """Options of ``p3/robust``.

    ``tol`` is the certified relative gap of the robust objective, 1e-7 by default:
    CVaR's cutting-plane LP (HiGHS) resolves its cuts to about 1e-9, so its gap stalls
    near 5e-9; and an objective estimated from ``S`` samples carries a sampling error
    orders of magnitude larger.
    """

    tol: float = option(1e-7, "positive", "certified relative gap of the robust objective")

    sigma_db: float = option(2.0, "nonnegative",
                             "std. deviation in dB of the log-normal channel-estimate error")
    scenarios: int = option(32, "positive_int", "channel scenarios drawn from the error model")
    risk: float = option(0.0, "unit", "0: mean latency over the scenarios (SAA); "
                         "alpha in (0, 1): CVaR_alpha, the mean of the worst 1 - alpha")
    seed: int = option(0, "nonnegative_int", "seed of the scenario draw")


def lognormal_factors(shape, sigma_db: float, rng) -> np.ndarray:
    """``delta`` with ``10 log10(delta) ~ N(0, sigma_db^2)``, i.i.d., of ``shape``."""
    return 10.0 ** (sigma_db * check_random_state(rng).standard_normal(shape) / 10.0)


def scenario_factors(problem: BandwidthProblem, options: RobustOptions) -> np.ndarray:
    """``[S, 2, R, U]`` error factors (downlink, uplink) for every device, loaded or not,
    so a draw does not depend on the selection."""
    inst = problem.instance
    rows = inst.n_layers if inst.system.fast_fading else 1
    return lognormal_factors((options.scenarios, 2, rows, inst.n_devices), options.sigma_db,
                             options.seed)


def scenario_data(data: P3Data, factors: np.ndarray, weights: np.ndarray) -> P3Data:
    """P3 with one layer per (scenario, layer): layer ``s I + i`` has ``weights[s] kappa[i]``,
    ``weights[s] pi[i]`` and the gains of row ``i`` times ``factors[s, :, i]`` (loaded
    devices: ``factors`` is ``[S, 2, R, U]`` over all devices)."""
    S, I = factors.shape[0], data.n_layers
    f = factors[..., data.loaded]                                  # [S, 2, R, U']
    w = np.asarray(weights, dtype=np.float64)[:, None, None]
    gains = [np.broadcast_to(g * f[:, j], (S, I, data.n_loaded)).reshape(S * I, -1)
             for j, g in enumerate((data.g_down, data.g_up))]
    return P3Data(loaded=data.loaded,
                  kappa=(w * data.kappa).reshape(S * I, -1),
                  pi=(w * data.pi).reshape(S * I, -1),
                  floor=(w[:, :, 0] * data.floor).reshape(S * I),
                  g_down=np.ascontiguousarray(gains[0]), g_up=np.ascontiguousarray(gains[1]),
                  time_scale_s=data.time_scale_s, total_bandwidth_hz=data.total_bandwidth_hz,
                  n_devices=data.n_devices)


def scenario_latency(data: P3Data, factors: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``T_s`` in normalized units, ``[..., S]``, at normalized points ``b`` (``[..., U']``)."""
    S = factors.shape[0]
    per = scenario_data(data, factors, np.ones(S))
    layer = per.layer_times(np.asarray(b, dtype=np.float64))             # [..., S I]
    return layer.reshape(layer.shape[:-1] + (S, -1)).sum(axis=-1)


def cvar(values: np.ndarray, alpha: float) -> float:
    """``CVaR_alpha`` of equally likely ``values``: ``min_eta eta + mean((v - eta)+) / (1 - alpha)``
    (the minimum is at the ``alpha``-quantile, where it is evaluated exactly)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    # the objective is piecewise linear in eta with breakpoints at the values
    obj = v + np.maximum(v[None, :] - v[:, None], 0.0).mean(axis=1) / (1.0 - alpha)
    return float(obj.min())


# exact for its own objective, not for P3: registered as not exact
@register("p3", "robust", options=RobustOptions, backends=("scipy", "p3kernel"))
def solve_robust(problem: BandwidthProblem, options: RobustOptions) -> Solution:
    """Mean (SAA) or CVaR latency over channel-error scenarios, certified (SPEC §8)."""
    if options.risk >= 1.0:
        raise InputError("risk", "must be in [0, 1): 0 for the mean, alpha for CVaR_alpha",
                         options.risk)
    data, done = prepare(problem, "p3/robust")
    if done is not None:
        return done
    start = time.perf_counter()
    factors = scenario_factors(problem, options)
    S = options.scenarios
    try:
        if options.risk == 0.0:
            res = interior_point(scenario_data(data, factors, np.full(S, 1.0 / S)),
                                 options.tol, options.max_iter, options.time_limit)
            b, bound, stopped = res.b, res.bound, res.status is Status.TIME_LIMIT
            extra = {"iterations": res.iterations}
        else:
            b, bound, extra = _cvar_point(data, factors, options)
            stopped = False
    except (FloatingPointError, ValueError) as exc:
        return finish(problem, data, data.uniform_point(), method="p3/robust",
                      status=Status.ERROR, extra={"error": str(exc)})
    b = np.clip(b, 0.0, None)
    b = b / b.sum()
    values = scenario_latency(data, factors, b)
    objective = float(values.mean()) if options.risk == 0.0 else cvar(values, options.risk)
    gap = relative_gap(objective, bound) if np.isfinite(bound) else float("inf")
    robust_status = (Status.TIME_LIMIT if stopped else
                     Status.OPTIMAL if gap <= options.tol else Status.FEASIBLE)
    scale = data.time_scale_s
    sol = finish(problem, data, b, method="p3/robust", status=Status.FEASIBLE, extra={
        **extra, "robust_measure": "mean" if options.risk == 0.0 else f"cvar_{options.risk:g}",
        "robust_objective_s": objective * scale,
        "robust_lower_bound_s": min(bound, objective) * scale if np.isfinite(bound) else None,
        "robust_status": robust_status.value,
        "scenario_latency_s": (values * scale).tolist(),
        "algorithm_time_s": time.perf_counter() - start})
    return sol


def _cvar_point(data: P3Data, factors: np.ndarray, options: RobustOptions):
    """CVaR by Kelley's cutting planes on the scenario weights (module docstring).

    Round ``j`` solves the ``q_j``-weighted SAA exactly (the kernel), which gives a
    certified lower bound ``phi(q_j)`` on the CVaR optimum and the cut
    ``phi(q) <= q . T(b_j)``. The LP ``max_{q in Q} min_j q . T(b_j)`` picks the next
    ``q``; by LP duality its value is ``min_mu CVaR(sum_j mu_j T(b_j))``, an upper bound
    reached by the averaged point ``sum_j mu_j b_j`` (each ``T_s`` is convex), with
    ``mu`` the duals of the cuts.
    """
    from scipy.optimize import linprog

    S, alpha = factors.shape[0], options.risk
    cap = 1.0 / ((1.0 - alpha) * S)
    deadline = time.perf_counter() + options.time_limit
    q = np.full(S, 1.0 / S)
    points, cuts, best_bound = [], [], -np.inf
    best_b, best_value, rounds = None, np.inf, 0
    while rounds < _CVAR_ROUNDS:
        rounds += 1
        res = interior_point(scenario_data(data, factors, q), _INNER * options.tol,
                             options.max_iter,
                             max(deadline - time.perf_counter(), 1e-3))
        best_bound = max(best_bound, res.bound)
        points.append(res.b / res.b.sum())
        cuts.append(scenario_latency(data, factors, points[-1]))
        # max z  s.t.  z <= q . T_j,  0 <= q <= cap,  sum q = 1   (variables q, z)
        lp = linprog(np.r_[np.zeros(S), -1.0],
                     A_ub=np.c_[-np.array(cuts), np.ones(len(cuts))], b_ub=np.zeros(len(cuts)),
                     A_eq=np.r_[np.ones(S), 0.0][None], b_eq=[1.0],
                     bounds=[(0.0, cap)] * S + [(None, None)], method="highs")
        if lp.status != 0:
            raise FloatingPointError(f"p3/robust CVaR: the cutting-plane LP failed ({lp.message})")
        q = lp.x[:S]
        mu = np.clip(-lp.ineqlin.marginals, 0.0, None)
        b = mu @ np.array(points) / mu.sum() if mu.sum() > 0 else points[-1]
        value = cvar(scenario_latency(data, factors, b), alpha)
        if value < best_value:
            best_b, best_value = b, value
        if best_value - best_bound <= options.tol * best_value or \
                time.perf_counter() > deadline:
            break
    return best_b, best_bound, {"cutting_plane_rounds": rounds}
