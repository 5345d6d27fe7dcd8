"""The retained-weight floor problem (p1-floor/greedy, p1-floor/exact) and the P1 CLI."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples, small_instance
from tests.joint.test_bilevel import tiny
from wdmoe_opt import BandwidthProblem, JointProblem, Selection, solve
from wdmoe_opt.check import check_solution
from wdmoe_opt.cli import main
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.joint.enumerate import all_candidates
from wdmoe_opt.model import latency as lat
from wdmoe_opt.problems import WeightFloorProblem


def brute_force_floor(instance, rho):
    """Referee: every selection profile meeting the floor, each with exact P3."""
    cands = all_candidates(instance, "topk")
    best = np.inf
    for combo in itertools.product(*[c.masks for c in cands]):
        sel = Selection(np.stack(combo))
        if lat.retained_weight(instance, sel) >= rho - 1e-12:
            best = min(best, solve(BandwidthProblem(instance, sel), "exact").objective_s)
    return best


@settings(max_examples=examples(4), deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0, 1, 3]), st.sampled_from([1.0, 0.9, 0.75]))
def test_p1_weight_floor_exact_matches_brute_force(seed, shape, rho):
    instance = tiny(seed, shape)
    problem = WeightFloorProblem(instance, rho)
    exact, heur = solve(problem, "exact"), solve(problem, "greedy")
    for sol in (exact, heur):
        assert check_solution(instance, solution_to_dict(sol)) == []
        assert sol.extra["min_retained_weight"] == rho
        assert sol.retained_weight >= rho - 1e-9
    assert str(exact.status) == "optimal"
    assert exact.objective_s == pytest.approx(brute_force_floor(instance, rho), rel=1e-6)
    assert exact.objective_s <= heur.objective_s * (1 + 1e-9)


def test_p1_weight_floor_traces_a_monotone_curve():
    instance = small_instance(1, layers=3, tokens=24)
    values = [solve(WeightFloorProblem(instance, r), "greedy") for r in (1.0, 0.95, 0.9)]
    assert all(v.retained_weight >= r - 1e-9 for v, r in zip(values, (1.0, 0.95, 0.9), strict=True))
    assert values[0].objective_s >= values[-1].objective_s
    top = solve(JointProblem(instance), "sequential", selection="topk")
    assert values[0].objective_s == pytest.approx(top.objective_s, rel=1e-9)


def test_p1_cli_solves_alternating_and_exact(tmp_path):
    inst_file = tmp_path / "i.json"
    assert main(["generate", "wdmoe-sim", "-o", str(inst_file), "--layers", "2", "--tokens",
                 "3", "--experts", "3"]) == 0
    for joint, steps in (("alternating", ["--selection", "alg1"]), ("exact", [])):
        assert main(["solve", str(inst_file), "--joint", joint, *steps, "--bandwidth", "exact",
                     "--lower-level", "coupled", "-o", str(tmp_path / f"{joint}.json")]) == 0
        assert main(["check", str(inst_file), str(tmp_path / f"{joint}.json")]) == 0

