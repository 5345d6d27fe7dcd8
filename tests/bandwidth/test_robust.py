"""``p3/robust``: SAA and CVaR latency over channel-error scenarios (SPEC §8)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples, small_instance
from wdmoe_opt import BandwidthProblem, InputError, Selection, solve
from wdmoe_opt.bandwidth.robust import RobustOptions, cvar, scenario_factors, scenario_latency
from wdmoe_opt.bandwidth.structure import P3Data

#: Both the robust and the exact optimum are certified within their ``tol``.
TOL = RobustOptions().tol + 1e-9


def _problem(seed=0, **params):
    inst = small_instance(seed=seed, **params)
    return BandwidthProblem(inst, Selection.topk(inst))


def _realized(problem, options, bandwidth_hz):
    """Scenario latencies (seconds) of an allocation on the method's own scenarios."""
    data = P3Data.from_problem(problem)
    b = bandwidth_hz[..., data.loaded] / data.total_bandwidth_hz
    factors = scenario_factors(problem, options)
    return scenario_latency(data, factors, b) * data.time_scale_s


def test_zero_error_is_the_nominal_optimum():
    pb = _problem()
    rob = solve(pb, "robust", sigma_db=0.0, scenarios=3)
    nom = solve(pb, "exact")
    assert rob.extra["robust_status"] == "optimal"
    np.testing.assert_allclose(rob.extra["robust_objective_s"], nom.objective_s, rtol=TOL)
    np.testing.assert_allclose(rob.objective_s, nom.objective_s, rtol=TOL)


def test_one_scenario_is_p3_on_that_channel():
    pb = _problem(fast_fading=True)
    opts = RobustOptions(sigma_db=5.0, scenarios=1, seed=3)
    f = scenario_factors(pb, opts)[0]
    s = pb.instance.system
    true = pb.instance.with_system(gain_down=s.gain_down * f[0], gain_up=s.gain_up * f[1])
    ref = solve(BandwidthProblem(true, pb.selection), "exact")
    rob = solve(pb, "robust", sigma_db=5.0, scenarios=1, seed=3)
    np.testing.assert_allclose(rob.extra["robust_objective_s"], ref.objective_s, rtol=TOL)


@settings(max_examples=examples(8), deadline=None)
@given(seed=st.integers(0, 50), sigma=st.floats(0.5, 8.0), risk=st.sampled_from([0.0, 0.75]),
       fast=st.booleans())
def test_robust_beats_nominal_on_its_own_scenarios(seed, sigma, risk, fast):
    pb = _problem(seed=seed, fast_fading=fast)
    opts = RobustOptions(sigma_db=sigma, scenarios=12, risk=risk, seed=seed)
    rob = solve(pb, "robust", opts)
    nom = solve(pb, "exact")
    measure = (lambda v: v.mean()) if risk == 0.0 else (lambda v: cvar(v, risk))
    robust_value = measure(_realized(pb, opts, rob.bandwidth_hz))
    nominal_value = measure(_realized(pb, opts, nom.bandwidth_hz))
    # the robust point is certified within tol of the best value on these scenarios
    assert rob.extra["robust_status"] == "optimal"
    np.testing.assert_allclose(robust_value, rob.extra["robust_objective_s"], rtol=1e-12)
    assert robust_value <= nominal_value * (1 + opts.tol)
    assert rob.extra["robust_lower_bound_s"] <= robust_value


@pytest.mark.parametrize("risk", [0.0, 0.5])
def test_robust_matches_a_grid_on_two_devices(risk):
    pb = _problem(seed=2, devices=2, experts=2, top_k=1, layers=3)
    opts = RobustOptions(sigma_db=6.0, scenarios=8, risk=risk, seed=1)
    rob = solve(pb, "robust", opts)
    total = pb.instance.system.total_bandwidth_hz
    grid = np.linspace(1e-4, 1 - 1e-4, 20001)
    values = _realized(pb, opts, np.c_[grid, 1 - grid] * total)
    measure = (lambda v: v.mean()) if risk == 0.0 else (lambda v: cvar(v, risk))
    best = min(measure(v) for v in values)
    # the grid step 5e-5 of the budget moves the value by at most ~1e-4 relative
    assert rob.extra["robust_objective_s"] <= best * (1 + opts.tol)
    assert rob.extra["robust_objective_s"] >= best * (1 - 1e-4)
    assert rob.extra["robust_lower_bound_s"] <= best


def test_cvar_is_the_mean_of_the_worst_tail():
    v = np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.0, 6.0, 5.0])
    assert cvar(v, 0.0) == pytest.approx(v.mean())
    assert cvar(v, 0.75) == pytest.approx(np.sort(v)[-2:].mean())
    assert cvar(v, 0.5) == pytest.approx(np.sort(v)[-4:].mean())


def test_risk_one_is_refused():
    with pytest.raises(InputError, match="risk"):
        solve(_problem(), "robust", risk=1.0)
