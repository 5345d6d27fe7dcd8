"""The independent checker catches every kind of violation."""

import copy

import pytest

from tests.conftest import small_instance
from wdmoe_opt import JointProblem, solve
from wdmoe_opt.check import check_solution
from wdmoe_opt.io import solution_to_dict


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
