"""The independent checker catches every kind of violation."""

import copy

import pytest

from tests.conftest import small_instance
from wdmoe_opt import JointProblem, SelectionProblem, solve
from wdmoe_opt.check import check_solution
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.problems import WeightFloorProblem


@pytest.fixture(params=[{}, {"fast_fading": True},
                        {"experts": 6, "devices": 3, "placement": "round-robin"}])
def case(request):
    inst = small_instance(3, **request.param)
    sol = solve(JointProblem(inst), "sequential", selection="topk", bandwidth="uniform")
    return inst, solution_to_dict(sol)


def test_a_valid_solution_passes(case):
    inst, doc = case
    assert check_solution(inst, doc) == []


def _broken(doc, how):
    d = copy.deepcopy(doc)
    how(d)
    return d


@pytest.mark.parametrize("how, expected", [
    (lambda d: d["selection"][0].__setitem__(1, []), "keeps no expert"),
    (lambda d: d["bandwidth_hz"].__setitem__(0, d["bandwidth_hz"][0] * 1.5), "sums to"),
    (lambda d: d["bandwidth_hz"].__setitem__(0, -1.0), "negative"),
    (lambda d: d.update(objective_s=d["objective_s"] * 1.001), "objective_s"),
    (lambda d: d["layer_latency_s"].__setitem__(2, 0.0), "layer_latency_s[2]"),
    (lambda d: d.update(wlr_total=d["wlr_total"] * 2), "wlr_total"),
    (lambda d: d.update(lower_bound_s=d["objective_s"] * 2), "lower_bound_s"),
    (lambda d: d["instance"].update(hash="sha256:0"), "instance.hash"),
    (lambda d: d.update(status="great"), "status"),
    (lambda d: d["selection"][0][0].append(99), "outside"),
])
def test_violations_are_named(case, how, expected):
    inst, doc = case
    problems = check_solution(inst, _broken(doc, how))
    assert problems and expected in problems[0]


def test_support_topk_rejects_an_expert_outside_the_router_topk(case):
    inst, doc = case
    w = inst.gating_weights[0, 0]
    worst = int(w.argmin())
    d = _broken(doc, lambda d: d["selection"][0].__setitem__(0, [worst]))
    d["support"] = "topk"
    assert any("router Top-K" in p for p in check_solution(inst, d))
    d["support"] = "all"
    assert not any("router Top-K" in p for p in check_solution(inst, d))


@pytest.mark.parametrize("how, expected", [
    (lambda d: d.update(expert_invocations=d["expert_invocations"] + 1), "expert_invocations"),
    (lambda d: d.update(status="optimal"), "'optimal' without a lower_bound_s"),
    (lambda d: d.update(lower_bound_s=d["objective_s"] * 0.5, gap=0.0), "gap"),
    (lambda d: d.update(lower_bound_s=d["objective_s"] * 0.5, gap=0.5, status="optimal",
                        tolerance=1e-9), "above the stated tolerance"),
    (lambda d: d.update(lower_bound_s=d["objective_s"], gap=0.0, status="optimal"),
     "without a stated tolerance"),
    (lambda d: d.update(problem="p7"), "problem"),
])
def test_claims_are_held_to_the_recomputed_values(case, how, expected):
    inst, doc = case
    problems = check_solution(inst, _broken(doc, how))
    assert any(expected in p for p in problems), problems


def test_the_support_defaults_to_topk_when_the_document_omits_it(case):
    inst, doc = case
    worst = int(inst.gating_weights[0, 0].argmin())
    d = _broken(doc, lambda d: d["selection"][0].__setitem__(0, [worst]))
    d.pop("support")
    assert any("router Top-K" in p for p in check_solution(inst, d))


def test_a_p2_upper_bound_below_the_wlr_is_rejected():
    inst = small_instance(2)
    doc = solution_to_dict(solve(SelectionProblem(inst), "milp"))
    assert check_solution(inst, doc) == []
    doc["wlr_upper_bound"] = doc["wlr_total"] * 0.5
    assert any("below the recomputed WLR" in p for p in check_solution(inst, doc))


@pytest.mark.parametrize("lower_level", ["uniform", "coupled"])
def test_a_relabelled_topk_point_claiming_the_bilevel_optimum_fails(lower_level):
    """Issue 21's trick: a Top-K / uniform-split point relabelled p1/exact, optimal."""
    inst = small_instance(1404, layers=2, tokens=3, experts=3, devices=3)
    exact = solve(JointProblem(inst, lower_level=lower_level), "exact")
    assert check_solution(inst, solution_to_dict(exact)) == []
    fake = solution_to_dict(solve(JointProblem(inst, lower_level=lower_level), "sequential",
                                  selection="topk", bandwidth="uniform"))
    assert fake["objective_s"] > exact.objective_s * (1 + 1e-3)   # the claim is false
    fake.update(method="p1/exact", status="optimal", lower_bound_s=fake["objective_s"],
                gap=0.0, tolerance=1e-4)
    fake["extra"]["bilevel_feasible"] = True
    assert any("constraint 15" in p for p in check_solution(inst, fake))


def test_a_floor_point_below_its_floor_is_rejected():
    inst = small_instance(0, layers=2, tokens=6)
    doc = solution_to_dict(solve(WeightFloorProblem(inst, 0.8), "greedy"))
    assert check_solution(inst, doc) == []
    doc["extra"]["min_retained_weight"] = 0.999
    assert any("below the floor" in p for p in check_solution(inst, doc))
