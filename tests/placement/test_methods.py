"""P5, expert placement: the capacity field, the problem, every method's guarantees,
the MILP against brute force, and the independent check."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import reference as ref
from tests.conftest import small_instance
from wdmoe_opt import InputError
from wdmoe_opt.check_placement import check_p5
from wdmoe_opt.io import instance_from_dict, instance_to_dict, solution_to_dict
from wdmoe_opt.model import ModelSizes
from wdmoe_opt.placement import PlacementProblem, concat_batches, split_batches
from wdmoe_opt.placement.evaluate import PlacementEvaluator
from wdmoe_opt.placement.heuristics import greedy, round_robin, staggered
from wdmoe_opt.placement.joint import alternate, heldout_latency, split_trace, stage_shares
from wdmoe_opt.placement.local_search import LocalSearchOptions, local_search
from wdmoe_opt.registry import get_method, methods

P5 = [m for m in methods("p5")]
FAST = [m for m in P5 if not m.exact]


def trace(seed=0, layers=2, batches=2, batch_tokens=4, experts=4, devices=6, **kw):
    return small_instance(seed, layers=layers, tokens=batches * batch_tokens, experts=experts,
                          devices=devices, placement="round-robin", **kw)


def hosted(placement, devices):
    return np.stack([np.bincount(row, minlength=devices) for row in placement])


# -- the instance field -----------------------------------------------------------------
def test_capacity_field_is_validated_hashed_and_round_trips():
    inst = trace()
    capped = inst.with_system(capacity_experts=np.full(6, 2))
    assert capped.content_hash != inst.content_hash
    again = instance_from_dict(json.loads(json.dumps(instance_to_dict(capped))))
    assert again.content_hash == capped.content_hash
    np.testing.assert_array_equal(again.system.capacity_experts, np.full(6, 2))
    per_layer = inst.with_system(capacity_experts=np.tile([2, 2, 1, 1, 1, 1], (2, 1)))
    assert instance_from_dict(instance_to_dict(per_layer)).content_hash == \
        per_layer.content_hash
    with pytest.raises(InputError, match=r"devices\[3\].capacity_experts"):
        inst.with_system(capacity_experts=[2, 2, 2, -1, 2, 2])
    with pytest.raises(InputError, match=r"devices\[1\].capacity_experts"):
        inst.with_system(capacity_experts=[2, 1.5, 2, 2, 2, 2])
    with pytest.raises(InputError, match="one value per device"):
        inst.with_system(capacity_experts=[2, 2])
    # round-robin puts experts 0 and 1 on devices 0 and 1: a capacity of 0 there fails
    with pytest.raises(InputError, match=r"placement\[0\] puts more experts on device 0"):
        inst.with_system(capacity_experts=[0, 1, 1, 1, 1, 1])


def with_expert_bytes(inst, expert_bytes):
    return inst.replace(model=dataclasses.replace(inst.model, expert_bytes=expert_bytes))


def test_expert_size_comes_from_the_dims_or_the_field():
    sizes = ModelSizes.from_dims(2, 4, 2, hidden_dim=8, ffn_hidden_dim=16, precision_bits=16)
    assert sizes.expert_size_bytes == 3 * 8 * 16 * 2          # 3 m m_h weights of 2 bytes
    assert dataclasses.replace(sizes, expert_bytes=1000.0).expert_size_bytes == 1000.0
    mixtral = trace().model                                    # the preset: Mixtral's dims
    assert mixtral.expert_size_bytes == 3 * 4096 * 14336 * 2  # 352 MB per expert at bf16
    bare = ModelSizes(2, 4, 2, mixtral.token_bits, mixtral.token_flops)
    assert bare.expert_size_bytes is None                     # sizes without dims
    with pytest.raises(InputError, match="model.expert_bytes"):
        dataclasses.replace(sizes, expert_bytes=-1.0)


def test_byte_capacity_field_is_validated_hashed_and_round_trips():
    inst = trace()                                            # 2 layers, 4 experts, 6 devices
    bare = inst.replace(model=ModelSizes(2, 4, 2, inst.model.token_bits, inst.model.token_flops))
    with pytest.raises(InputError, match="model.expert_bytes is required"):
        bare.with_system(capacity_bytes=np.full(6, 400.0))
    sized = with_expert_bytes(inst, 100.0)
    assert sized.content_hash == inst.content_hash            # a record until bytes count
    # 450 bytes over 2 layers of 100-byte experts: 2 experts per layer (floor(450 / 200))
    capped = sized.with_system(capacity_bytes=np.full(6, 450.0))
    np.testing.assert_array_equal(capped.capacity_limit, np.full((2, 6), 2))
    assert capped.content_hash != sized.content_hash
    assert with_expert_bytes(capped, 110.0).content_hash != capped.content_hash
    again = instance_from_dict(json.loads(json.dumps(instance_to_dict(capped))))
    assert again.content_hash == capped.content_hash
    np.testing.assert_array_equal(again.system.capacity_bytes, np.full(6, 450.0))
    assert again.model.expert_bytes == 100.0
    both = capped.with_system(capacity_experts=[2, 2, 2, 2, 2, 1])
    np.testing.assert_array_equal(both.capacity_limit[:, 5], [1, 1])  # the tighter one
    with pytest.raises(InputError, match=r"devices\[3\].capacity_bytes"):
        sized.with_system(capacity_bytes=[400.0, 400, 400, -1, 400, 400])
    with pytest.raises(InputError, match="capacity_bytes must be one number per device"):
        sized.with_system(capacity_bytes=np.full((2, 6), 400.0))
    # round-robin puts expert 0 on device 0: 150 bytes there hold no expert per layer
    with pytest.raises(InputError, match=r"placement\[0\] puts more experts on device 0"):
        sized.with_system(capacity_bytes=[150.0, 400, 400, 400, 400, 400])


def test_every_fast_method_respects_byte_capacities_and_the_check_verifies_them():
    inst = with_expert_bytes(trace(4, devices=6), 100.0)
    # per layer: devices 0-3 hold one expert (round-robin fits), device 4 two, device 5 none
    mem = np.array([200.0, 250, 399, 200, 400, 0])
    limit = np.array([1, 1, 1, 1, 2, 0])
    inst = inst.with_system(capacity_bytes=mem)
    problem = PlacementProblem(inst, batch_tokens=4)
    np.testing.assert_array_equal(problem.capacity, np.tile(limit, (2, 1)))
    with pytest.raises(InputError, match="only tighten"):
        PlacementProblem(inst, capacity_experts=2)
    for method in FAST:
        sol = method(problem)
        assert (hosted(sol.placement, 6) <= limit).all(), method.key
        doc = solution_to_dict(sol)
        assert check_p5(inst, doc) == [], method.key
    bad = json.loads(json.dumps(doc))
    bad["placement"][1] = [4, 4, 5, 0]
    assert any("over the instance's capacity_bytes (0)" in v for v in check_p5(inst, bad))


def test_problem_validates_batches_and_capacities():
    inst = trace()
    with pytest.raises(InputError, match="batch_tokens"):
        PlacementProblem(inst, batch_tokens=3)
    with pytest.raises(InputError, match="without room"):
        PlacementProblem(inst, capacity_experts=np.zeros(6, dtype=int))
    with pytest.raises(InputError, match="capacity_experts must be a positive integer"):
        PlacementProblem(inst, capacity_experts=0)
    capped = inst.with_system(capacity_experts=np.full(6, 1))
    with pytest.raises(InputError, match="only tighten"):
        PlacementProblem(capped, capacity_experts=2)
    assert PlacementProblem(capped).capacity.max() == 1
    assert PlacementProblem(inst, batch_tokens=4).n_batches == 2


def test_traces_split_and_join():
    inst = trace(batches=4)
    parts = [split_batches(inst, 4, b, 1) for b in range(4)]
    joined = concat_batches(parts)
    np.testing.assert_array_equal(joined.gating_weights, inst.gating_weights)
    other = trace(seed=1, batches=1)
    with pytest.raises(InputError, match=r"instances\[1\] differs"):
        concat_batches([parts[0], other])
    with pytest.raises(InputError, match="batches"):
        split_batches(inst, 4, 3, 2)


# -- every method ------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), cap=st.integers(1, 3), devices=st.integers(2, 7))
def test_every_fast_method_respects_capacities_and_passes_the_check(seed, cap, devices):
    inst = trace(seed, devices=devices)
    cap = max(cap, math.ceil(inst.n_experts / devices))
    rng = np.random.default_rng(seed)
    caps = np.maximum(rng.integers(0, cap + 1, devices), 0)
    caps[: math.ceil(inst.n_experts / cap)] = cap                  # room for every expert
    problem = PlacementProblem(inst, batch_tokens=4, capacity_experts=caps)
    for method in FAST:
        sol = method(problem)
        assert (hosted(sol.placement, devices) <= caps).all(), method.key
        assert check_p5(inst, solution_to_dict(sol)) == [], method.key


def test_local_search_is_never_worse_than_its_start():
    inst = trace(3, devices=8)
    problem = PlacementProblem(inst, batch_tokens=4, capacity_experts=2)
    ev = PlacementEvaluator(problem)
    for start in (round_robin(problem), staggered(problem), greedy(problem, ev)[0]):
        pl, tr = local_search(problem, start, LocalSearchOptions(), ev)
        assert ev.score(pl) <= ev.score(start)
        assert tr["search_objective_s"] <= tr["start_objective_s"]


def test_the_score_is_invariant_under_device_relabelling():
    inst = trace(5, devices=5)
    problem = PlacementProblem(inst, batch_tokens=4, capacity_experts=2)
    perm = np.random.default_rng(0).permutation(5)        # new device k = old perm[k]
    s = inst.system
    moved = inst.with_system(compute_flops=s.compute_flops[perm],
                             tx_power_w=s.tx_power_w[perm], gain_down=s.gain_down[perm],
                             gain_up=s.gain_up[perm], distance_m=s.distance_m[perm])
    moved_problem = PlacementProblem(moved.replace(placement=np.argsort(perm)[
        inst.placement]), batch_tokens=4, capacity_experts=2)
    inverse = np.argsort(perm)                            # old device d -> new inverse[d]
    pl = greedy(problem)[0]
    a = PlacementEvaluator(problem).score(pl)
    b = PlacementEvaluator(moved_problem).score(inverse[pl])
    assert math.isclose(a, b, rel_tol=1e-9)
    # greedy ranks devices by speed, not by id: the same value after relabelling
    assert math.isclose(a, PlacementEvaluator(moved_problem).score(greedy(moved_problem)[0]),
                        rel_tol=1e-9)


# -- the MILP against brute force ---------------------------------------------------------
def brute_force(problem: PlacementProblem) -> float:
    """Best mean batch latency over every placement within the capacities, each batch's
    P3 optimum by golden section (tests/reference.py), no solver code."""
    inst = problem.instance
    I, E, U = inst.n_layers, inst.n_experts, inst.n_devices
    jb, best = problem.batch_tokens, math.inf
    for flat in itertools.product(range(U), repeat=I * E):
        pl = np.array(flat).reshape(I, E)
        if (hosted(pl, U) > problem.capacity).any():
            continue
        total = 0.0
        for n in range(problem.n_batches):
            sl = slice(n * jb, (n + 1) * jb)
            b = inst.replace(gating_weights=inst.gating_weights[:, sl], placement=pl)
            total += ref.p3_optimum_s(b, ref.topk_mask(b))
        best = min(best, total / problem.n_batches)
    return best


TINY = {"2x3on2-cap2": dict(layers=2, experts=3, devices=2, cap=2),
        "1x3on3-cap1": dict(layers=1, experts=3, devices=3, cap=1)}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(TINY))
def test_milp_equals_brute_force_and_bounds_every_method(case):
    params = dict(TINY[case])
    cap = params.pop("cap")
    inst = trace(11, batches=2, batch_tokens=3, **params)
    problem = PlacementProblem(inst, batch_tokens=3, capacity_experts=cap)
    ref = brute_force(problem)
    sol = get_method("p5/milp")(problem)
    assert str(sol.status) == "optimal"
    # P3 inside is certified to 1e-9 (p3/exact) and the reference is a golden-section
    # minimum: they agree to ~1e-8 relative
    assert math.isclose(sol.objective_s, ref, rel_tol=1e-7)
    assert sol.lower_bound_s <= ref * (1 + 1e-7)
    assert check_p5(inst, solution_to_dict(sol)) == []
    for method in FAST:
        assert sol.lower_bound_s <= method(problem).objective_s * (1 + 1e-9), method.key


def test_milp_on_one_tiny_case():
    """The fast suite's MILP check: a case proven optimal in one relaxation."""
    inst = trace(2, layers=1, batches=1, batch_tokens=3, experts=2, devices=2)
    problem = PlacementProblem(inst, capacity_experts=1)
    sol = get_method("p5/milp")(problem)
    ref = brute_force(problem)
    assert math.isclose(sol.objective_s, ref, rel_tol=1e-7)
    assert sol.lower_bound_s <= ref * (1 + 1e-7)
    assert (hosted(sol.placement, 2) <= 1).all()


# -- the check finds violations ---------------------------------------------------------
def test_check_p5_reports_violations():
    inst = trace(1)
    problem = PlacementProblem(inst, batch_tokens=4, capacity_experts=1)
    doc = solution_to_dict(get_method("p5/greedy")(problem))
    assert check_p5(inst, doc) == []
    bad = json.loads(json.dumps(doc))
    bad["placement"][0] = [0, 0, 1, 2]
    assert any("hosts 2 experts" in v for v in check_p5(inst, bad))
    bad = json.loads(json.dumps(doc))
    bad["extra"]["batch_bandwidth_hz"][1][0] *= 2
    assert any("eq. 20" in v for v in check_p5(inst, bad))
    bad = json.loads(json.dumps(doc))
    bad["objective_s"] *= 0.9
    assert any(v.startswith("objective_s") for v in check_p5(inst, bad))
    bad = json.loads(json.dumps(doc))
    bad["selection"][0][0] = []
    assert any("keeps no expert" in v for v in check_p5(inst, bad))


# -- generalization and the joint alternation ---------------------------------------------
def test_alternation_never_worsens_training_and_shares_add_up():
    inst = trace(4, layers=2, batches=4, batch_tokens=4, devices=8)
    train, test = split_trace(inst, 4, 2, capacity=2)
    res = alternate(train, "alg1", max_rounds=2,
                    search=LocalSearchOptions(start="round-robin", time_limit=5.0))
    assert res["objective_s"] <= res["start_objective_s"]
    assert (hosted(res["placement"], 8) <= 2).all()
    shares = stage_shares(test, round_robin(train), res["placement"], "alg1")
    if shares["p5_share"] is not None:
        assert math.isclose(shares["p5_share"] + shares["p2_share"], 1.0, rel_tol=1e-9)
    # the held-out scores are P3 optima: never above the uniform split's
    assert shares["joint_s"] <= shares["joint_uniform_s"] * (1 + 1e-9)
    # WDMoE on round-robin, scored through the same path as the P5 evaluator (Top-K)
    topk = heldout_latency(test, round_robin(train), "topk")
    assert math.isclose(topk, PlacementEvaluator(test).score(round_robin(train)),
                        rel_tol=1e-6)
