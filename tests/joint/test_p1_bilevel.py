"""P1 (eqs. 13-15): sequential, alternating and exact, refereed by brute force on tiny instances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import small_instance
from wdmoe_opt import BandwidthProblem, InputError, JointProblem, SelectionProblem, solve
from wdmoe_opt.check import check_solution
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.joint.bilevel import bilevel_search
from wdmoe_opt.joint.enumerate import all_candidates
from wdmoe_opt.model import latency as lat

SHAPES = [dict(layers=2, tokens=3, experts=3, devices=3),
          dict(layers=2, tokens=3, experts=2, devices=2),
          dict(layers=1, tokens=4, experts=3, devices=3),
          dict(layers=2, tokens=2, experts=4, devices=2, placement="round-robin")]
TOL = 1e-4  # p1/exact's default proven gap for the coupled reading


def tiny(seed, shape):
    return small_instance(seed, **SHAPES[shape])


def p2_best(instance, bandwidth_hz):
    """Referee: exact P2 by the independent brute force (p2/brute-force)."""
    return solve(SelectionProblem(instance, bandwidth_hz), "brute-force")


def simplex_grid(instance, steps):
    total, U = instance.system.total_bandwidth_hz, instance.n_devices
    pts = [c for c in itertools.product(range(1, steps), repeat=U - 1) if sum(c) < steps]
    return [np.array([*c, steps - sum(c)]) * total / steps for c in pts]


def assert_valid(instance, sol):
    assert check_solution(instance, solution_to_dict(sol)) == []
    assert sol.extra["lower_level"] in ("uniform", "coupled")
    assert sol.extra["bilevel_feasible"] in (True, False, None)


instances = st.builds(tiny, st.integers(0, 10_000), st.integers(0, len(SHAPES) - 1))


def _check_against_grid(instance, sol):
    assert_valid(instance, sol)
    assert sol.extra["bilevel_feasible"] is True
    # the returned selection is optimal for P2 at the returned bandwidth
    assert sol.wlr_total >= p2_best(instance, sol.bandwidth_hz).wlr_total * (1 - 1e-9)
    steps = 30 if instance.n_devices == 2 else 12
    for b in simplex_grid(instance, steps):
        follower = p2_best(instance, b)            # a bilevel-feasible point at b
        assert sol.lower_bound_s <= follower.objective_s * (1 + 1e-12)
        if str(sol.status) == "optimal":
            assert sol.objective_s <= follower.objective_s * (1 + TOL)


@pytest.mark.parametrize("seed, shape", [(0, 0), (1, 1), (2, 2), (3, 3), (5, 0)])
def test_p1_exact_coupled_is_proven_and_beats_every_feasible_grid_point(seed, shape):
    instance = tiny(seed, shape)
    sol = solve(JointProblem(instance, lower_level="coupled"), "exact")
    assert str(sol.status) == "optimal"
    _check_against_grid(instance, sol)


@settings(max_examples=6, deadline=None)
@given(instances)
@example(tiny(1404, 0))          # the optimum on a tie boundary: budget ends the search
def test_p1_exact_coupled_bound_holds_on_random_instances(instance):
    """Where the optimum sits on a follower-tie boundary the search may end at its box
    budget (status ``feasible``); its lower bound must hold all the same."""
    sol = solve(JointProblem(instance, lower_level="coupled"), "exact", max_boxes=20_000)
    assert str(sol.status) in ("optimal", "feasible")
    _check_against_grid(instance, sol)


@settings(max_examples=6, deadline=None)
@given(instances)
def test_p1_exact_coupled_beats_the_alternating_fixed_point(instance):
    problem = JointProblem(instance, lower_level="coupled")
    exact = solve(problem, "exact", max_boxes=20_000)
    alt = solve(problem, "alternating", selection="brute-force")
    assert_valid(instance, alt)
    if alt.extra["cycle_length"] == 1:
        fixed = alt.extra["fixed_point_objective_s"]
        assert exact.lower_bound_s <= fixed * (1 + 1e-12)
        if str(exact.status) == "optimal":
            assert exact.objective_s <= fixed * (1 + TOL)
        if alt.extra["best_iteration"] == alt.extra["iterations"] - 1:
            assert alt.extra["bilevel_feasible"] is True


@settings(max_examples=6, deadline=None)
@given(instances)
def test_p1_exact_uniform_is_p2_at_uniform_then_p3(instance):
    sol = solve(JointProblem(instance, lower_level="uniform"), "exact")
    assert_valid(instance, sol)
    follower = p2_best(instance, None)
    ref = solve(BandwidthProblem(instance, follower.selection), "exact")
    assert math.isclose(sol.objective_s, ref.objective_s, rel_tol=1e-7)
    assert sol.lower_bound_s <= ref.objective_s * (1 + 1e-9)


@settings(max_examples=5, deadline=None)
@given(instances, st.sampled_from(["uniform", "coupled"]),
       st.sampled_from(["topk", "alg1", "brute-force"]))
def test_p1_alternating_never_worse_than_sequential(instance, lower_level, selection):
    problem = JointProblem(instance, lower_level=lower_level)
    seq = solve(problem, "sequential", selection=selection)
    alt = solve(problem, "alternating", selection=selection)
    assert_valid(instance, seq)
    assert_valid(instance, alt)
    assert alt.objective_s <= seq.objective_s * (1 + 1e-12)
    assert alt.extra["objectives_s"][0] == pytest.approx(seq.objective_s, rel=1e-12)


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_p1_search_with_a_fixed_follower_matches_the_tie_profiles(shape):
    """The branch and bound with the follower frozen at the uniform split is a global P3."""
    instance = tiny(11, shape)
    cands = all_candidates(instance, "topk")
    res = bilevel_search(instance, cands, follower_bandwidth_hz=lat.uniform_bandwidth_hz(instance))
    exact = solve(JointProblem(instance, lower_level="uniform"), "exact")
    assert res.proven
    assert res.lower_bound_s <= exact.objective_s * (1 + 1e-9)
    assert exact.objective_s <= res.objective_s * (1 + 1e-12)
    assert res.objective_s <= exact.objective_s * (1 + TOL)


def test_p1_verdicts_follow_the_exact_follower():
    instance = tiny(5, 0)
    problem = JointProblem(instance, lower_level="coupled")
    seq = solve(problem, "sequential", selection="brute-force")
    reply = p2_best(instance, seq.bandwidth_hz)
    own = lat.wlr(instance, seq.selection, seq.bandwidth_hz).sum()
    assert seq.extra["bilevel_feasible"] is bool(own >= reply.wlr_total * (1 - 1e-9))
    assert solve(problem, "sequential", selection="topk").extra["bilevel_feasible"] in (False, None)


def test_p1_exact_on_the_literal_support_and_shared_placement():
    instance = tiny(2, 3)
    for ll in ("uniform", "coupled"):
        sol = solve(JointProblem(instance, support="all", lower_level=ll), "exact")
        assert_valid(instance, sol)
        assert str(sol.status) == "optimal"


def test_p1_exact_refuses_inexact_p3_and_large_instances():
    with pytest.raises(InputError, match="p3_method"):
        solve(JointProblem(tiny(0, 0)), "exact", p3_method="uniform")
    with pytest.raises(InputError, match="too large"):
        solve(JointProblem(small_instance(0)), "exact")


def test_p1_box_budget_gives_a_bound_not_a_proof():
    instance = tiny(3, 0)
    sol = solve(JointProblem(instance, lower_level="coupled"), "exact", max_boxes=3)
    assert str(sol.status) == "feasible"
    assert sol.lower_bound_s <= sol.objective_s
