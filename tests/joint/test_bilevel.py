"""P1 (eqs. 13-15): sequential, alternating and exact, refereed by brute force on tiny instances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tests import reference as ref
from tests.conftest import examples, small_instance
from wdmoe_opt import BandwidthProblem, InputError, JointProblem, solve
from wdmoe_opt.check import check_solution
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.joint.bilevel import _Bounder, _tighten, bilevel_search
from wdmoe_opt.joint.enumerate import (
    TIE_TOL,
    all_candidates,
    device_times,
    follower_optimal,
    layer_wlr,
    leader_choice,
)
from wdmoe_opt.joint.tiesurface import tie_surface_point
from wdmoe_opt.model import latency as lat

SHAPES = [dict(layers=2, tokens=3, experts=3, devices=3),
          dict(layers=2, tokens=3, experts=2, devices=2),
          dict(layers=1, tokens=4, experts=3, devices=3),
          dict(layers=2, tokens=2, experts=4, devices=2, placement="round-robin")]
TOL = 1e-4  # p1/exact's default proven gap for the coupled reading
#: Accuracy allowed to the brute-force referee (sums in another order).
REF_RTOL = 1e-9


def tiny(seed, shape):
    return small_instance(seed, **SHAPES[shape])


def assert_valid(instance, sol, lower_level):
    """The checker accepts the point, it says which reading it solved, and its bilevel
    verdict agrees with the brute-force referee (:mod:`tests.reference`)."""
    assert check_solution(instance, solution_to_dict(sol)) == []
    assert sol.extra["lower_level"] == lower_level
    ref.assert_bilevel_verdict(instance, sol, REF_RTOL)


instances = st.builds(tiny, st.integers(0, 10_000), st.integers(0, len(SHAPES) - 1))


def _check_against_grid(instance, sol):
    """Bilevel-feasible (the verdict is True and the referee agrees); the lower bound holds
    below every bilevel-feasible point of a grid, and an ``optimal`` status is within
    ``TOL`` of each of them."""
    assert_valid(instance, sol, "coupled")
    assert sol.extra["bilevel_feasible"] is True
    proven = str(sol.status) == "optimal"
    for b in ref.simplex_grid_hz(instance, 30 if instance.n_devices == 2 else 12):
        feasible = ref.coupled_point_latency_s(instance, b)
        assert sol.lower_bound_s <= feasible * (1 + REF_RTOL)
        assert not proven or sol.objective_s <= feasible * (1 + TOL)


@pytest.mark.parametrize("seed, shape", [(0, 0), (1, 1), (2, 2), (3, 3), (5, 0)])
def test_p1_exact_coupled_is_proven_and_beats_every_feasible_grid_point(seed, shape):
    instance = tiny(seed, shape)
    sol = solve(JointProblem(instance, lower_level="coupled"), "exact")
    assert str(sol.status) == "optimal"
    _check_against_grid(instance, sol)


@settings(max_examples=examples(6), deadline=None)
@given(instances)
# Found by hypothesis in a CI run: the search used to end at its box budget with a 13 % gap
# (the follower test kept a box's width of slack and the incumbent's profile was polished by
# P3 only at the end). Its gating statistics are those of the preset when it was found (the
# preset has been re-tuned since), so the example stays the same instance.
@example(small_instance(1404, **SHAPES[0], layer_correlation=0.97, sharpness=1.0))
def test_p1_exact_coupled_closes_small_instances_to_its_gap(instance):
    """Every small instance closes to ``tol``, its optimum on a tie surface or not, and the
    proven bound holds below every bilevel-feasible grid point."""
    sol = solve(JointProblem(instance, lower_level="coupled"), "exact")
    assert str(sol.status) == "optimal" and sol.gap <= TOL
    _check_against_grid(instance, sol)


@settings(max_examples=examples(6), deadline=None)
@given(instances)
def test_p1_exact_coupled_beats_the_alternating_fixed_point(instance):
    problem = JointProblem(instance, lower_level="coupled")
    alt = solve(problem, "alternating", selection="brute-force")
    assert_valid(instance, alt, "coupled")
    assume(alt.extra["cycle_length"] == 1)    # a fixed point: a bilevel-feasible point
    exact = solve(problem, "exact", max_boxes=20_000)
    fixed = alt.extra["fixed_point_objective_s"]
    assert exact.lower_bound_s <= fixed * (1 + REF_RTOL)
    assert str(exact.status) != "optimal" or exact.objective_s <= fixed * (1 + TOL)
    # the best point is the fixed point when it came last: then it is bilevel-feasible
    last = alt.extra["best_iteration"] == alt.extra["iterations"] - 1
    assert not last or alt.extra["bilevel_feasible"] is True


@settings(max_examples=examples(6), deadline=None)
@given(instances)
def test_p1_exact_uniform_is_p2_at_uniform_then_p3(instance):
    sol = solve(JointProblem(instance, lower_level="uniform"), "exact")
    assert_valid(instance, sol, "uniform")
    expected = ref.p1_uniform_optimum_s(instance)
    assert math.isclose(sol.objective_s, expected, rel_tol=1e-7)
    assert sol.lower_bound_s <= expected * (1 + 1e-7)


@settings(max_examples=examples(5), deadline=None)
@given(instances, st.sampled_from(["uniform", "coupled"]),
       st.sampled_from(["topk", "alg1", "brute-force"]))
def test_p1_alternating_never_worse_than_sequential(instance, lower_level, selection):
    problem = JointProblem(instance, lower_level=lower_level)
    seq = solve(problem, "sequential", selection=selection)
    alt = solve(problem, "alternating", selection=selection)
    assert_valid(instance, seq, lower_level)
    assert_valid(instance, alt, lower_level)
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
    best, _ = ref.p2_enumerate(instance, seq.bandwidth_hz)
    own = ref.wlr(instance, seq.selection.mask, seq.bandwidth_hz).sum()
    assert seq.extra["bilevel_feasible"] is bool(own >= best * (1 - REF_RTOL))
    # Top-K re-solving P2 finds nothing better than itself and proves nothing: unknown
    assert solve(problem, "sequential", selection="topk").extra["bilevel_feasible"] is None


def test_p1_exact_on_the_literal_support_and_shared_placement():
    instance = tiny(2, 3)
    for ll in ("uniform", "coupled"):
        sol = solve(JointProblem(instance, support="all", lower_level=ll), "exact")
        assert_valid(instance, sol, ll)
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


def _box_and_points(instance, rng):
    """A random box around a random simplex point, and points of the box on the simplex."""
    total, U = instance.system.total_bandwidth_hz, instance.n_devices
    centre = rng.dirichlet(np.ones(U)) * total
    half = rng.uniform(0.001, 0.2) * total
    lo, hi = np.maximum(centre - half, 0.0), np.minimum(centre + half, total)
    lo, hi = _tighten(lo[None], hi[None], total)
    points = lo + rng.uniform(size=(400, U)) * (hi - lo)
    points[:, -1] = total - points[:, :-1].sum(axis=1)          # onto the simplex
    inside = (points >= lo - 1e-9 * total).all(axis=1) & (points <= hi + 1e-9 * total).all(axis=1)
    return lo, hi, points[inside]


@settings(max_examples=examples(10), deadline=None)
@given(instances, st.integers(0, 2**32 - 1))
def test_p1_box_test_never_prunes_a_best_reply(instance, seed):
    """Soundness of the follower test of the branch and bound: a selection that is the
    follower's reply (within ``tie_tol``) at a point of the box survives on the box."""
    cands = all_candidates(instance, "topk")
    bounder = _Bounder(instance, cands, TIE_TOL, None)
    lo, hi, points = _box_and_points(instance, np.random.default_rng(seed))
    assume(points.shape[0] > 0)
    for c in cands:
        ok = bounder._may_reply(c, lo, device_times(instance, c, hi))[0]
        replies = follower_optimal(layer_wlr(c, device_times(instance, c, points)))
        assert not (replies & ~ok).any()


def test_tie_surface_point_is_the_best_point_keeping_its_profile():
    """On two devices (a segment), the leader's optimum keeping a profile whose P3 optimum
    the follower leaves lies on a tie: it is a best reply there, and no point of a fine
    grid where the profile is the follower's reply does better."""
    instance = tiny(0, 1)
    cands = all_candidates(instance, "topk")
    total = instance.system.total_bandwidth_hz
    grid = np.linspace(1e-4, 1 - 1e-4, 20_001)[:, None] * [1.0, -1.0] + [0.0, 1.0]
    layer_t, replies = [], []
    for c in cands:
        t = device_times(instance, c, grid * total)
        layer_t.append(t.max(axis=-1))
        replies.append(follower_optimal(layer_wlr(c, t)))
    sol = solve(JointProblem(instance, lower_level="coupled"), "exact")
    profile = [int(np.flatnonzero((c.masks == m).all(axis=(1, 2)))[0])
               for c, m in zip(cands, sol.selection.mask, strict=True)]
    keeps = np.logical_and.reduce([r[:, s] for r, s in zip(replies, profile, strict=True)])
    best_on_grid = sum(t[:, s] for t, s in zip(layer_t, profile, strict=True))[keeps].min()
    p3 = solve(BandwidthProblem(instance, sol.selection), "exact")
    assert p3.objective_s < best_on_grid * (1 - 1e-3)     # P3's optimum is left by the follower
    b = tie_surface_point(instance, cands, profile, p3.bandwidth_hz)
    value, choice = leader_choice(instance, cands, b)
    assert list(choice) == profile
    # the grid's step moves the tie by ~1e-4 of the band: the optimum is within that
    assert value <= best_on_grid * (1 + 1e-9)
    assert value >= best_on_grid * (1 - 1e-3)
