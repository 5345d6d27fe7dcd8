"""P4 under fast fading (SPEC §6): the uplink of a layer is ``S`` slots with i.i.d.
Gamma power gains (mean the device's gain, shape ``m``; SiftMoE's fading).

* **Selection** on the expected-energy surrogate: each uplink gain is replaced by the
  effective gain ``g_eff`` with ``1 / R(g_eff) = E[1 / R(g)]`` (Gauss-Laguerre
  quadrature over the Gamma law), so the per-token uplink energy ``P L / R`` and
  time are their expectations when a token is sent at a random slot; any P4 method
  then selects on that instance. By Jensen, ``E[1/R] >= 1/R(E g)``: the surrogate
  energy bounds the mean-channel energy from above.
* **Bits per slot**: a device sends ``N`` chunks (its tokens' bits) in the uplink
  window left after the downlink and compute within the deadline. Seeing slot ``s``'s
  channel (quantized to ``Q`` equiprobable levels), it sends ``b`` chunks at energy
  ``P b L_chunk / R`` up to the slot's capacity; the dynamic program
  ``V_s(n) = E_q min_b [e_q b + V_{s+1}(n - b)]`` (the last slot sends what is left)
  gives the policy, scored by Monte Carlo against the equal split ``N / S`` per slot
  (a slot's shortfall carried to the next).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import latency as lat
from ..model.deviation import selection_from_actions
from ..options import Options, option
from ..registry import get_method, register
from ..rng import check_random_state
from ..solution import Solution, Status
from .problem import EnergyProblem
from .result import p4_solution

LN2 = np.log(2.0)


def _rate(b: float, signal, n0: float):
    return b * np.log1p(signal / (n0 * b)) / LN2


def effective_uplink_gain(instance, bandwidth_hz: np.ndarray, shape: float,
                          nodes: int = 48) -> np.ndarray:
    """``[U]`` (or ``[I, U]``) gains with ``1/R(g_eff) = E[1/R(g)]``, ``g = g_up G``,
    ``G ~ Gamma(shape, 1/shape)``; a device without bandwidth keeps its gain."""
    from scipy.special import gammaln

    s = instance.system
    x, wq = np.polynomial.laguerre.laggauss(nodes)
    # E f(G) = 1/Gamma(m) int t^(m-1) e^-t f(t/m) dt: generalized weights t^(m-1)
    w = wq * np.exp((shape - 1) * np.log(x) - gammaln(shape))
    g = np.asarray(s.gain_up, dtype=np.float64)
    b = np.broadcast_to(bandwidth_hz, g.shape)
    # E[1/R] by quadrature, then invert R(g_eff) = 1 / E[1/R] by bisection on log g
    G = (x / shape).reshape((nodes,) + (1,) * g.ndim)
    with np.errstate(divide="ignore", over="ignore"):
        inv = (w.reshape(G.shape) / _rate(b, s.tx_power_w * g * G, s.noise_psd_w_per_hz)).sum(0)
    target = 1.0 / inv
    lo, hi = np.log(g) - 60.0, np.log(g)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        low = _rate(b, s.tx_power_w * np.exp(mid), s.noise_psd_w_per_hz) < target
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return np.where(b > 0, np.exp(hi), g)


def surrogate_problem(problem: EnergyProblem, shape: float) -> EnergyProblem:
    """``problem`` on the instance whose uplink gains are the effective ones."""
    inst = problem.instance
    g = effective_uplink_gain(inst, problem.bandwidth_hz, shape)
    return EnergyProblem(inst.with_system(gain_up=g), problem.layer_budget,
                         problem.bandwidth_hz, problem.layer_deadline,
                         problem.layer_sensitivity)


@dataclass(frozen=True)
class SlotPolicy:
    """The dynamic program of one device's uplink: ``choice[s, n, q]`` chunks to send
    in slot ``s`` with ``n`` left at channel level ``q``; ``value[0, N]`` its expected
    energy."""

    choice: np.ndarray
    value: np.ndarray
    levels: np.ndarray       # [Q] Gamma quantile levels (mean 1)


def gamma_levels(shape: float, levels: int) -> np.ndarray:
    """``[Q]`` equiprobable levels of ``Gamma(shape, 1/shape)`` (mid-quantiles)."""
    from scipy.stats import gamma

    return gamma.ppf((np.arange(levels) + 0.5) / levels, shape, scale=1.0 / shape)


def slot_dp(n_chunks: int, slots: int, energy_per_chunk: np.ndarray,
            capacity: np.ndarray) -> SlotPolicy:
    """DP over (slot, chunks left) with the channel level observed before choosing
    (``energy_per_chunk`` and ``capacity`` are ``[Q]``, equiprobable levels)."""
    N, Q = n_chunks, len(energy_per_chunk)
    value = np.zeros((slots + 1, N + 1))
    value[slots, 1:] = np.inf
    choice = np.zeros((slots, N + 1, Q), dtype=np.int64)
    n = np.arange(N + 1)
    for s in range(slots - 1, -1, -1):
        best = np.empty((N + 1, Q))
        for q in range(Q):
            if s == slots - 1:                           # the last slot sends what is left
                choice[s, :, q], best[:, q] = n, n * energy_per_chunk[q]
                continue
            b = np.arange(min(N, int(capacity[q])) + 1)
            cost = b[None, :] * energy_per_chunk[q] + np.where(
                b[None, :] <= n[:, None], value[s + 1][np.maximum(n[:, None] - b[None, :], 0)],
                np.inf)
            choice[s, :, q] = np.argmin(cost, axis=1)
            best[:, q] = cost.min(axis=1)
        value[s] = best.mean(axis=1)
    return SlotPolicy(choice, value, np.empty(0))


def simulate(policy: SlotPolicy | None, n_chunks: int, energy_per_chunk: np.ndarray,
             capacity: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Energy of each channel draw ``draws[r, s]`` (level ids) under ``policy``
    (None: the equal split, a slot's shortfall carried to the next)."""
    R, S = draws.shape
    left = np.full(R, n_chunks)
    energy = np.zeros(R)
    for s in range(S):
        q = draws[:, s]
        if policy is None:
            want = left if s == S - 1 else np.minimum(
                left, np.ceil(n_chunks * (s + 1) / S) - (n_chunks - left))
            send = want if s == S - 1 else np.minimum(want, capacity[q])
        else:
            send = policy.choice[s, left, q]
        energy += send * energy_per_chunk[q]
        left = left - send
    return energy


@dataclass(frozen=True)
class FadingOptions(Options):
    """Knobs of ``p4/fast-fading``."""

    selection: str = option("auto", ("auto", "exact", "relax"),
                            "P4 method on the surrogate (auto: exact for decode, else relax)")
    shape: float = option(2.0, "positive", "Gamma shape of the slot gains (SiftMoE: 2)")
    slots: int = option(8, "positive_int", "uplink slots per layer")
    levels: int = option(8, "positive_int", "channel levels of the dynamic program")
    chunks_per_token: int = option(4, "positive_int", "DP granularity (chunks per token)")
    draws: int = option(2000, "positive_int", "Monte Carlo channel draws")
    seed: int = option(0, "nonnegative_int", "seed of the draws")


@register("p4", "fast-fading", options=FadingOptions, backends=("highspy",))
def solve_fast_fading(problem: EnergyProblem, options: FadingOptions) -> Solution:
    """Fast fading: select on the expected-energy surrogate, then the per-slot DP of
    the uplink bits; reports the DP's expected uplink energy against the equal split."""
    name = options.selection
    if name == "auto":
        name = "exact" if problem.decode else "relax"
    sur = surrogate_problem(problem, options.shape)
    sol = get_method(f"p4/{name}")(sur)
    inst = problem.instance
    actions = np.asarray(sol.extra["actions"])[..., 1]
    u, p = lat.device_loads(inst, selection_from_actions(inst, actions))
    dp_e, eq_e = uplink_energies(problem, u, p, options)
    # optimal (or within a gap) for the surrogate only: a feasible point of P4 itself
    status = sol.status if sol.status in (Status.INFEASIBLE, Status.ERROR) else Status.FEASIBLE
    return p4_solution(problem, actions, "p4/fast-fading", status=status, extra={
        "surrogate_energy_j": sol.extra["energy_j"], "uplink_energy_dp_j": dp_e,
        "uplink_energy_equal_j": eq_e,
        "dp_saving": None if eq_e == 0 else 1 - dp_e / eq_e})


def uplink_energies(problem: EnergyProblem, u: np.ndarray, p: np.ndarray,
                    options: FadingOptions) -> tuple[float, float]:
    """Expected uplink energy of loads ``u, p`` under the slot fading: the DP policy
    and the equal split (Monte Carlo, the same draws for both)."""
    inst = problem.instance
    s = inst.system
    L = inst.model.token_bits
    b = problem.bandwidth_hz
    levels = gamma_levels(options.shape, options.levels)
    rng = check_random_state(options.seed)
    down, up = lat.link_rates_bps(inst, b)
    a = lat.compute_time_per_token_s(inst)
    total_dp = total_eq = 0.0
    chunk = L / options.chunks_per_token
    for i, k in zip(*np.nonzero((u > 0) & ~s.local_mask), strict=True):
        n = int(u[i, k]) * options.chunks_per_token
        mean_up = float(up[i, k])
        window = problem.layer_deadline[i] - u[i, k] * L / down[i, k] - p[i, k] * a[k]
        if not np.isfinite(window) or window <= 0:
            window = 2 * u[i, k] * L / mean_up
        gain = inst.gain_up_per_layer[i, k] * levels
        rate = _rate(b[k], s.tx_power_w[k] * gain, s.noise_psd_w_per_hz)
        e_chunk = s.tx_power_w[k] * chunk / rate
        cap = np.floor(rate * window / options.slots / chunk)
        policy = slot_dp(n, options.slots, e_chunk, cap)
        draws = rng.integers(0, options.levels, size=(options.draws, options.slots))
        total_dp += float(simulate(policy, n, e_chunk, cap, draws).mean())
        total_eq += float(simulate(None, n, e_chunk, cap, draws).mean())
    return total_dp, total_eq
