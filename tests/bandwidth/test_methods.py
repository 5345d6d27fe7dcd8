"""The P3 methods (eqs. 19-21): options, statuses, idle devices, limits, failures."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import small_instance
from wdmoe_opt import BandwidthProblem, InputError, Selection, Status, get_method, solve
from wdmoe_opt.bandwidth import exact as exact_module
from wdmoe_opt.bandwidth.structure import P3Data, inverse_rate_derivatives
from wdmoe_opt.check import check_solution
from wdmoe_opt.errors import BackendUnavailable
from wdmoe_opt.generate import generate
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.model import latency as lat

METHODS = ("uniform", "slsqp", "cvxpy", "exact")
CASES = {
    "identity": dict(),
    "fast-fading": dict(fast_fading=True),
    "shared": dict(experts=6, devices=3, placement="round-robin"),
    "idle": dict(experts=3, devices=5, placement="round-robin", fast_fading=True),
}


def _problem(case, seed=3):
    inst = small_instance(seed, **CASES[case])
    return BandwidthProblem(inst, Selection.topk(inst))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_method_is_checked_feasible_and_bounded_by_exact(case):
    prob = _problem(case)
    best = solve(prob, "exact")
    assert best.status is Status.OPTIMAL and best.gap <= 1e-9
    for name in METHODS:
        sol = solve(prob, name)
        assert check_solution(prob.instance, solution_to_dict(sol)) == []
        assert sol.status is not Status.ERROR
        assert sol.objective_s >= best.lower_bound_s * (1 - 1e-12)
        assert best.objective_s <= sol.objective_s * (1 + 1e-9)
        assert sol.lower_bound_s is None or sol.lower_bound_s <= sol.objective_s


def test_idle_devices_get_no_bandwidth():
    prob = _problem("idle")
    u, _ = lat.device_loads(prob.instance, prob.selection)
    idle = ~u.any(axis=0)
    assert idle.any()
    for name in ("slsqp", "cvxpy", "exact"):
        sol = solve(prob, name)
        assert (sol.bandwidth_hz[idle] == 0).all()
        assert (sol.bandwidth_hz[~idle] > 0).all()


def test_one_loaded_device_takes_everything():
    inst = small_instance(1)
    mask = np.zeros(inst.gating_weights.shape, dtype=bool)
    mask[:, :, 2] = True
    one = BandwidthProblem(inst, Selection(mask))
    for name in ("slsqp", "cvxpy", "exact"):
        sol = solve(one, name)
        assert sol.status is Status.OPTIMAL and sol.lower_bound_s == sol.objective_s
        assert sol.bandwidth_hz[2] == inst.system.total_bandwidth_hz


def test_a_selection_with_a_token_keeping_nothing_is_not_a_p3_input():
    inst = small_instance(1)
    with pytest.raises(InputError, match="keeps no expert"):
        BandwidthProblem(inst, Selection(np.zeros(inst.gating_weights.shape, dtype=bool)))


@pytest.mark.parametrize("name, options, field", [
    ("exact", {"tol": -1e-9}, "tol"),
    ("exact", {"time_limit": 0}, "time_limit"),
    ("slsqp", {"max_iter": 0}, "max_iter"),
    ("cvxpy", {"solver": "NOPE"}, "solver"),
    ("cvxpy", {"time_limit": -1}, "time_limit"),
    ("exact", {"gap": 1}, "gap"),
])
def test_bad_options_get_one_clear_error(name, options, field):
    with pytest.raises(InputError, match=f"'{field}' option of p3/{name}"):
        solve(_problem("identity"), name, options)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(InputError, match="cvxpy, exact, robust, slsqp, uniform"):
        get_method("simplex", "p3")


@pytest.mark.parametrize("name", ["slsqp", "cvxpy", "exact"])
def test_time_limit_returns_a_feasible_incumbent(name):
    prob = _problem("fast-fading")
    sol = solve(prob, name, time_limit=1e-9)
    assert sol.status is Status.TIME_LIMIT, sol.extra
    assert check_solution(prob.instance, solution_to_dict(sol)) == []
    assert sol.lower_bound_s is None or sol.lower_bound_s <= sol.objective_s


def test_exact_iteration_limit_is_feasible_with_a_valid_bound():
    prob = _problem("identity")
    sol = solve(prob, "exact", max_iter=2)
    assert sol.status is Status.FEASIBLE and sol.gap > 1e-9
    assert sol.lower_bound_s <= solve(prob, "exact").objective_s


def test_a_failing_solver_reports_error_not_a_wrong_answer(monkeypatch):
    def broken(*args, **kwargs):
        raise FloatingPointError("boom")

    monkeypatch.setattr(exact_module, "interior_point", broken)
    prob = _problem("identity")
    sol = solve(prob, "exact")
    assert sol.status is Status.ERROR and sol.lower_bound_s is None
    assert "boom" in sol.extra["error"]
    assert check_solution(prob.instance, solution_to_dict(sol)) == []


def test_an_unbuilt_kernel_is_a_clear_error_not_a_crash(monkeypatch):
    from wdmoe_opt.bandwidth import certificate

    monkeypatch.setattr(certificate, "_p3kernel", None)
    with pytest.raises(BackendUnavailable, match="pip install -e"):
        solve(_problem("identity"), "exact")
    assert solve(_problem("identity"), "uniform").status is Status.FEASIBLE


def test_cvxpy_model_is_built_once_per_structure():
    inst_a, inst_b = small_instance(11, layers=3), small_instance(12, layers=3)
    mask = np.ones(inst_a.gating_weights.shape, dtype=bool)  # same load pattern
    first = solve(BandwidthProblem(inst_a, Selection(mask)), "cvxpy")
    second = solve(BandwidthProblem(inst_b, Selection(mask)), "cvxpy")
    assert second.extra["model_cached"]
    assert first.status is Status.OPTIMAL and second.status is Status.OPTIMAL
    assert not np.allclose(first.bandwidth_hz, second.bandwidth_hz)


def test_inverse_rate_derivatives_match_finite_differences():
    b = np.array([1e-4, 0.01, 0.3, 2.0])
    g = np.array([[0.05], [30.0], [1e5]])
    f, f1, f2 = inverse_rate_derivatives(b, g)
    eps = 1e-6 * b
    fp, f1p, _ = inverse_rate_derivatives(b + eps, g)
    fm, f1m, _ = inverse_rate_derivatives(b - eps, g)
    np.testing.assert_allclose(f, 1 / (b * np.log1p(g / b)), rtol=1e-12)
    np.testing.assert_allclose(f1, (fp - fm) / (2 * eps), rtol=1e-5)
    np.testing.assert_allclose(f2, (f1p - f1m) / (2 * eps), rtol=1e-5)
    assert (f1 < 0).all() and (f2 > 0).all()


def test_low_snr_slope_has_no_cancellation():
    """``h' = ln(1 + x) - x / (1 + x)`` at small ``x = g / b``, against 50-digit arithmetic."""
    from decimal import Decimal, getcontext

    getcontext().prec = 50
    b = np.array([1.0, 1.0, 1.0])
    g = np.array([1e-7, 5e-4, 2e-3])
    f, f1, _ = inverse_rate_derivatives(b, g)
    for gk, fk, f1k in zip(g, f, f1, strict=True):
        x = Decimal(float(gk))
        lg = (1 + x).ln()
        h, h1 = lg, lg - x / (1 + x)
        assert float(-h1 / (h * h)) == pytest.approx(f1k, rel=1e-10)
        assert float(1 / h) == pytest.approx(fk, rel=1e-12)


def test_normalized_times_match_the_model():
    prob = _problem("shared")
    data = P3Data.from_problem(prob)
    b = np.array([0.5, 0.3, 0.2])
    t = lat.device_time_s(prob.instance, prob.selection, data.bandwidth_hz(b))
    np.testing.assert_allclose(data.times(b) * data.time_scale_s, t[:, data.loaded], rtol=1e-12)


def test_exact_leaves_a_predictor_corrector_cycle_with_safe_steps():
    """An extreme instance (a 10^4 spread of device compute, 6 m to 500 m) on which
    Mehrotra's steps went round at a duality gap of 1e-3 for 200 iterations."""
    inst = generate("wdmoe-sim", seed=364, layers=13, tokens=12, devices=9, experts=9,
                    top_k=2, total_bandwidth_hz=124317385.3, bs_power_w=13.2212,
                    device_power_w=0.0067396, distance_min_m=6.217, distance_max_m=503.135,
                    compute_min_flops=7.6536e10, compute_max_flops=6.876e14,
                    popularity_skew=2.249)
    prob = BandwidthProblem(inst, Selection.topk(inst))
    exact, slsqp = solve(prob, "exact"), solve(prob, "slsqp")
    assert exact.status is Status.OPTIMAL and exact.gap <= 1e-9
    assert exact.objective_s <= slsqp.objective_s * (1 + 1e-9)
