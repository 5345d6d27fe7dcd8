"""Fast fading: the expected-energy surrogate and the per-slot dynamic program."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.energy.conftest import tiny_sift
from wdmoe_opt.energy import EnergyProblem
from wdmoe_opt.energy.fading import effective_uplink_gain, simulate, slot_dp
from wdmoe_opt.model import latency as lat


def test_effective_gain_matches_the_expected_inverse_rate():
    inst = tiny_sift(0, tokens=1)
    b = lat.uniform_bandwidth_hz(inst)
    g_eff = effective_uplink_gain(inst, b, shape=2.0)
    s = inst.system
    rng = np.random.default_rng(0)
    G = rng.gamma(2.0, 0.5, size=(400_000, 1))
    rate = lambda g: b * np.log2(1 + s.tx_power_w * g / (s.noise_psd_w_per_hz * b))  # noqa: E731
    mc = (1 / rate(s.gain_up * G)).mean(axis=0)
    se = (1 / rate(s.gain_up * G)).std(axis=0) / np.sqrt(len(G))
    assert (np.abs(1 / rate(g_eff) - mc) <= 5 * se).all()
    assert (g_eff < s.gain_up).all()                     # Jensen: E[1/R] > 1/R(E g)


def _exact_expectation(policy_fn, n, e, cap, slots):
    """Expected energy over every channel sequence (equiprobable levels)."""
    Q = len(e)
    total = 0.0
    for seq in itertools.product(range(Q), repeat=slots):
        total += float(policy_fn(np.array([seq])))
    return total / Q ** slots


@pytest.mark.parametrize("seed", range(5))
def test_dp_is_optimal_and_beats_the_equal_split(seed):
    rng = np.random.default_rng(seed)
    Q, S, N = 3, 3, 5
    e = np.sort(rng.uniform(1, 4, Q))[::-1]
    cap = rng.integers(1, 4, Q).astype(float)
    pol = slot_dp(N, S, e, cap)
    dp = _exact_expectation(lambda d: simulate(pol, N, e, cap, d)[0], N, e, cap, S)
    eq = _exact_expectation(lambda d: simulate(None, N, e, cap, d)[0], N, e, cap, S)
    assert np.isclose(dp, pol.value[0, N], rtol=1e-12)
    assert dp <= eq * (1 + 1e-12)
    # brute force over every deterministic rule of slot 0 (chunks per level), then the
    # DP's own continuation: the DP's slot-0 choice is the best
    best = min(
        np.mean([rule[q] * e[q] + pol.value[1, N - rule[q]] for q in range(Q)])
        for rule in itertools.product(*[range(int(min(N, cap[q])) + 1) for q in range(Q)]))
    assert np.isclose(pol.value[0, N], best, rtol=1e-12)


def test_fast_fading_method_reports_the_dp_saving():
    from wdmoe_opt.registry import get_method
    inst = tiny_sift(1, tokens=2, experts=3)
    sol = get_method("p4/fast-fading")(EnergyProblem(inst, 2.0), {"draws": 500})
    assert sol.status in ("feasible", "infeasible")
    assert sol.extra["uplink_energy_dp_j"] <= sol.extra["uplink_energy_equal_j"] * (1 + 0.05)
