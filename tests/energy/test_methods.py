"""Every P4 method: checked by the independent checker, feasible or honestly
infeasible, never below the exact optimum; the bounds hold; energy is
non-increasing in the budget and in the deadline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.energy.conftest import brute_force, deadline_between, tiny_sift
from wdmoe_opt.check_energy import check_p4
from wdmoe_opt.energy import EnergyProblem
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.registry import get_method, methods

P4 = [m for m in methods("p4")]
OWN_BANDWIDTH = ("wdmoe", "joint-bandwidth")
CASES = {
    "decode": dict(seed=3, tokens=1, experts=4, frac=1.0, eps=1.0),
    "prefill": dict(seed=4, tokens=3, experts=3, frac=1.0, eps=2.0),
    "shared": dict(seed=5, tokens=2, experts=4, devices=2, frac=0.8, eps=2.0),
    "fast-fading": dict(seed=6, tokens=2, experts=3, fast_fading=True, frac=0.9, eps=1.0),
}


def _problem(case: str) -> EnergyProblem:
    params = dict(CASES[case])
    frac, eps = params.pop("frac"), params.pop("eps")
    inst = tiny_sift(**params)
    return EnergyProblem(inst, eps, deadlines_s=deadline_between(inst, frac))


PROBLEMS = {case: _problem(case) for case in CASES}
REFERENCE = {case: brute_force(p)[0] for case, p in PROBLEMS.items()}


def _doc(sol) -> dict:
    return json.loads(json.dumps(solution_to_dict(sol)))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", P4, ids=[m.key for m in P4])
def test_every_method_is_checked_feasible_or_honestly_infeasible(method, case):
    problem = PROBLEMS[case]
    sol = method(problem)
    doc = _doc(sol)
    assert doc["problem"] == "p4"
    assert check_p4(problem.instance, doc) == []
    assert sol.status != "error", sol.extra
    if method.name in OWN_BANDWIDTH:       # the reference is at the uniform split
        return
    ref = REFERENCE[case]
    if sol.status in ("optimal", "feasible"):
        assert not math.isinf(ref)
        assert sol.extra["energy_j"] >= ref * (1 - 1e-9) - 1e-15
    if method.exact:
        if math.isinf(ref):
            assert sol.status == "infeasible"
        else:
            assert math.isclose(sol.extra["energy_j"], ref, rel_tol=1e-9, abs_tol=1e-15)
    lb = sol.extra.get("energy_lower_bound_j")
    if lb is not None and not math.isinf(ref):
        assert lb <= ref * (1 + 1e-7) + 1e-12


def test_every_p4_method_is_covered():
    assert {m.key for m in methods("p4")} >= {
        "p4/topk", "p4/wdmoe", "p4/skip-threshold", "p4/substitute", "p4/exact",
        "p4/milp-highspy", "p4/milp-pyomo", "p4/relax", "p4/joint-bandwidth"}
    assert all(m.summary for m in P4)


@pytest.mark.parametrize("seed", range(6))
def test_relax_bound_brackets_the_optimum(seed):
    inst = tiny_sift(300 + seed, tokens=3)
    problem = EnergyProblem(inst, 1.0, deadlines_s=deadline_between(inst, 0.8))
    ref = brute_force(problem)[0]
    sol = get_method("p4/relax")(problem)
    if math.isinf(ref):
        assert sol.status == "infeasible"
        return
    assert sol.extra["energy_lower_bound_j"] <= ref * (1 + 1e-7) + 1e-12
    if sol.status in ("optimal", "feasible"):
        assert sol.extra["energy_j"] >= ref * (1 - 1e-9) - 1e-15


@pytest.mark.parametrize("method", ["p4/exact", "p4/relax"])
def test_energy_is_non_increasing_in_budget_and_deadline(method):
    inst = tiny_sift(11, tokens=8, experts=4, layers=3)
    solve = get_method(method)
    for frac in (0.7, 1.0):
        prev = math.inf
        for eps in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
            sol = solve(EnergyProblem(inst, eps, deadlines_s=deadline_between(inst, frac)))
            e = math.inf if sol.status == "infeasible" else sol.extra["energy_j"]
            # exact: monotone by optimality; relax: its bound tracks within its gap
            slack = 1e-9 if method == "p4/exact" else (sol.extra.get("energy_gap") or 0) + 1e-9
            assert e <= prev * (1 + slack) + 1e-15
            prev = min(prev, e)
    prev = math.inf
    for frac in (0.5, 0.7, 0.9, 1.2, 2.0):
        sol = get_method("p4/exact")(
            EnergyProblem(inst, 1.0, deadlines_s=deadline_between(inst, frac)))
        e = math.inf if sol.status == "infeasible" else sol.extra["energy_j"]
        assert e <= prev * (1 + 1e-9) + 1e-15
        prev = e


def test_infeasible_deadline_is_reported_not_answered():
    inst = tiny_sift(2, tokens=3)
    problem = EnergyProblem(inst, 0.0, deadlines_s=1e-9)
    for name in ("p4/exact", "p4/relax", "p4/milp-pyomo"):
        sol = get_method(name)(problem)
        assert sol.status == "infeasible"
        assert sol.extra["energy_lower_bound_j"] is None


def test_layer_budgets_follow_the_sensitivities():
    inst = tiny_sift(1, tokens=1, layers=3)
    problem = EnergyProblem(inst, 8.0, sensitivities=np.array([1.0, 2.0, 4.0]))
    assert np.allclose(problem.layer_budget, [8.0 / 8.0, 8.0 / 4.0, 8.0])


def test_joint_bandwidth_never_worse_than_the_uniform_split():
    inst = tiny_sift(7, tokens=1, experts=4, layers=4)
    problem = EnergyProblem(inst, 1.0, deadlines_s=deadline_between(inst, 1.2))
    fixed = get_method("p4/exact")(problem)
    joint = get_method("p4/joint-bandwidth")(problem)
    assert joint.status == "feasible" and fixed.status == "optimal"
    assert joint.extra["energy_j"] <= fixed.extra["energy_j"] * (1 + 1e-9)
    assert math.isclose(joint.bandwidth_hz.sum(), inst.system.total_bandwidth_hz, rel_tol=1e-9)


def test_relax_falls_back_where_the_repair_is_stuck():
    # wdmoe-sift seed 0, 64 tokens: the greedy repair of layer 1 gets stuck (regression)
    from wdmoe_opt.generate import generate
    from wdmoe_opt.model import Selection
    from wdmoe_opt.model import latency as lat
    inst = generate("wdmoe-sift", seed=0, tokens=64, layers=2)
    top = lat.layer_latency_s(inst, Selection.topk(inst), lat.uniform_bandwidth_hz(inst))
    problem = EnergyProblem(inst, 1.5, deadlines_s=float(top.min() * 0.3))
    relax = get_method("p4/relax")(problem)
    exact = get_method("p4/exact")(problem)
    assert exact.status == "optimal" and relax.status in ("feasible", "optimal")
    assert relax.extra["energy_lower_bound_j"] <= exact.extra["energy_j"] * (1 + 1e-7)
    assert relax.extra["energy_j"] >= exact.extra["energy_j"] * (1 - 1e-9)
    assert relax.extra["energy_gap"] < 0.01


def test_skip_threshold_default_beta_is_the_median_ratio():
    # Lu et al.'s default: per layer, the median over the batch of w/w_top of the
    # non-top Top-K experts, so (without a budget) about half of them are skipped
    inst = tiny_sift(7, tokens=40)
    sol = get_method("p4/skip-threshold")(EnergyProblem(inst))
    beta = np.asarray(sol.extra["beta"])
    w = np.sort(inst.gating_weights, axis=2)[:, :, -2:]
    ratio = w[..., 0] / w[..., 1]
    assert np.allclose(beta, np.median(ratio, axis=1), rtol=1e-12)
    skipped = (np.asarray(sol.extra["actions"])[..., 1] < 0).sum(axis=(1, 2))
    assert ((skipped >= 1) & (skipped <= inst.n_tokens // 2)).all()


def test_joint_bandwidth_takes_its_selection_steps_with_options():
    """``decode`` / ``prefill`` are steps: their options reach the inner method (the
    32-expert model needs ``replacements``), and an unknown one is refused."""
    from wdmoe_opt.errors import InputError
    method = get_method("p4/joint-bandwidth")
    step = {"method": "relax", "options": {"replacements": 1}}
    opts = method.options_cls(prefill=step)
    opts.validate("p4/joint-bandwidth")
    assert opts.prefill.options.replacements == 1
    with pytest.raises(InputError, match="replacements"):
        method.options_cls(prefill={"method": "relax", "options": {"replacements": -1}}
                           ).validate("p4/joint-bandwidth")


def test_replicated_experts_are_refused():
    """P4 reads one copy per expert (its tables count loads on the placement): an
    instance with replicated experts is refused by name, not solved on its primaries."""
    from wdmoe_opt.errors import InputError
    inst = tiny_sift(3, tokens=4)
    spare = inst.n_devices - 1
    lists = [[[int(k)] + ([spare] if e == 0 and k != spare else []) for e, k in enumerate(row)]
             for row in inst.placement]
    with pytest.raises(InputError, match=r"^replicas are not modelled by p4"):
        EnergyProblem(inst.replace(replicas=lists), 1.5)
