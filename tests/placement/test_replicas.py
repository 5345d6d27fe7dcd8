"""P5 with replicated experts: the field, the split rule, capacities, the search, the
MILP's optimal route against brute force, the independent check and the CLI."""

from __future__ import annotations

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
from wdmoe_opt.check import check_solution
from wdmoe_opt.check_placement import check_p5
from wdmoe_opt.cli import main
from wdmoe_opt.io import instance_from_dict, instance_to_dict, solution_to_dict
from wdmoe_opt.model import Selection
from wdmoe_opt.model import latency as lat
from wdmoe_opt.model.replicas import (
    copies_per_device,
    replicas_array,
    route_loads,
    split_route,
)
from wdmoe_opt.placement import PlacementProblem
from wdmoe_opt.placement.evaluate import PlacementEvaluator
from wdmoe_opt.placement.result import placement_solution
from wdmoe_opt.problems import (
    BandwidthProblem,
    JointProblem,
    SelectionProblem,
    WeightFloorProblem,
)
from wdmoe_opt.registry import get_method


def trace(seed=0, layers=2, batches=2, batch_tokens=4, experts=4, devices=8, **kw):
    return small_instance(seed, layers=layers, tokens=batches * batch_tokens, experts=experts,
                          devices=devices, placement="round-robin", **kw)


def naive_loads(replicas, q, U):
    """``(u, p)`` [I, U] of the split rule written as loops: the tokens selecting some
    expert of e's group (same primary device) are ranked; the one of rank t of n
    sends its pair with e to copy floor(t R / n)."""
    I, J, E = q.shape
    sent = np.zeros((I, J, U), dtype=bool)
    p = np.zeros((I, U), dtype=np.int64)
    for i in range(I):
        for e in range(E):
            copies = [k for k in replicas[i, e] if k >= 0]
            group = [f for f in range(E) if replicas[i, f, 0] == copies[0]]
            tokens = [j for j in range(J) if any(q[i, j, f] for f in group)]
            for t, j in enumerate(tokens):
                if q[i, j, e]:
                    k = copies[t * len(copies) // len(tokens)]
                    p[i, k] += 1
                    sent[i, j, k] = True
    return sent.sum(axis=1), p


# -- the split rule -------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_split_rule_routes_to_copies_evenly(seed):
    rng = np.random.default_rng(seed)
    I, J, E, U = 2, int(rng.integers(1, 12)), 3, 5
    q = rng.random((I, J, E)) < 0.5
    lists = [[list(rng.permutation(U)[:rng.integers(1, 4)]) for _ in range(E)]
             for _ in range(I)]
    rep = replicas_array(lists, None, I, E, U)
    route = split_route(rep, q)
    assert ((route >= 0) == q).all()
    for i in range(I):
        for e in range(E):
            got = route[i, q[i, :, e], e]
            assert np.isin(got, lists[i][e]).all()            # only devices holding e
            share = [(got == k).sum() for k in lists[i][e]]
            if (rep[i, :, 0] == rep[i, e, 0]).sum() == 1:     # alone in its group:
                assert max(share) - min(share) <= 1            # an even split
            for f in range(E):                                 # a mirrored group: a token's
                if (rep[i, f] == rep[i, e]).all():             # pairs on one device
                    both = q[i, :, e] & q[i, :, f]
                    assert (route[i, both, e] == route[i, both, f]).all()
    u, p = naive_loads(rep, q, U)
    ru, rp = route_loads(route, U)
    np.testing.assert_array_equal(ru, u)
    np.testing.assert_array_equal(rp, p)


def test_single_copies_change_nothing():
    """``replicas`` of one copy each gives the loads, latency and solution of the plain
    placement; ``max_replicas = 1`` is the unreplicated search, bit for bit."""
    inst = trace(3)
    single = inst.replace(replicas=[[[int(k)] for k in row] for row in inst.placement])
    assert single.content_hash != inst.content_hash
    sel = Selection.topk(inst)
    sel2 = Selection.topk(single)
    for a, b in zip(lat.device_loads(inst, sel), lat.device_loads(single, sel2), strict=True):
        np.testing.assert_array_equal(a, b)
    p3 = get_method("p3/exact")
    assert p3(BandwidthProblem(inst, sel)).objective_s == \
        p3(BandwidthProblem(single, sel2)).objective_s
    problem = PlacementProblem(inst, 4, capacity_experts=2)
    one = get_method("p5/local-search")(PlacementProblem(inst, 4, capacity_experts=2,
                                                         max_replicas=1))
    plain = get_method("p5/local-search")(problem)
    assert one.objective_s == plain.objective_s
    np.testing.assert_array_equal(one.placement, plain.placement)
    assert one.replicas is None and "replicas" not in solution_to_dict(one)


def test_instance_field_validated_hashed_round_trips():
    inst = trace(1, devices=6).with_system(capacity_experts=np.full(6, 2))
    pl = inst.placement                          # experts 0..3 on devices 0..3
    lists = [[[int(pl[i, e])] + ([5] if e == 0 else []) for e in range(4)]
             for i in range(2)]
    rep = inst.replace(replicas=lists)
    assert rep.content_hash != inst.content_hash
    again = instance_from_dict(json.loads(json.dumps(instance_to_dict(rep))))
    assert again.content_hash == rep.content_hash
    np.testing.assert_array_equal(again.replicas, rep.replicas)
    np.testing.assert_array_equal(copies_per_device(rep.replicas, 6)[0], [1, 1, 1, 1, 0, 1])
    bad = [row[:] for row in lists]
    bad[1] = [[3], [1], [2], [3]]
    with pytest.raises(InputError, match=r"replicas\[1\]\[0\].*must start with placement"):
        inst.replace(replicas=bad)
    bad[1] = [[0, 0], [1], [2], [3]]
    with pytest.raises(InputError, match=r"replicas\[1\]\[0\].*twice"):
        inst.replace(replicas=bad)
    bad[1] = [[0, 9], [1], [2], [3]]
    with pytest.raises(InputError, match=r"replicas\[1\]\[0\].*missing device"):
        inst.replace(replicas=bad)
    bad[1] = [[0], [], [2], [3]]
    with pytest.raises(InputError, match=r"replicas\[1\]\[1\].*non-empty"):
        inst.replace(replicas=bad)
    with pytest.raises(InputError, match=r"^replicas"):
        inst.replace(replicas=[[[0]]])
    # each copy uses capacity: a third expert on device 5 (capacity 2) in layer 0
    full = [row[:] for row in lists]
    full[0] = [[0, 5], [1, 5], [2, 5], [3]]
    with pytest.raises(InputError, match=r"replicas\[0\] puts more experts on device 5"):
        inst.replace(replicas=full)
    # an explicit route must name a device holding the expert
    route = np.full((2, 8, 4), -1)
    route[0, 0, 1] = 5
    with pytest.raises(InputError, match=r"route\[0\]\[0\]\[1\]"):
        rep.replace(route=route)


def test_problem_inputs_name_the_field():
    inst = trace(2)
    for bad in (0, 9, 1.5, True):
        with pytest.raises(InputError, match="max_replicas"):
            PlacementProblem(inst, 4, max_replicas=bad)
    problem = PlacementProblem(inst, 4, capacity_experts=1, max_replicas=2)
    pl = np.tile(np.arange(4), (2, 1))
    with pytest.raises(InputError, match=r"replicas\[0\] puts more experts on device 0"):
        problem.check_replicas(pl, [[[0], [1, 0], [2], [3]], [[0], [1], [2], [3]]])
    with pytest.raises(InputError, match=r"replicas\[0\]\[1\].*max_replicas"):
        problem.check_replicas(pl, [[[0], [1, 4, 5], [2], [3]], [[0], [1], [2], [3]]])
    for name in ("round-robin", "staggered", "greedy"):
        with pytest.raises(InputError, match="max_replicas"):
            get_method(f"p5/{name}")(problem)


# -- the search ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_replication_never_worse_and_respects_capacities(seed):
    inst = trace(seed, layers=2, batches=2, batch_tokens=8, devices=8)
    plain = get_method("p5/local-search")(PlacementProblem(inst, 8, capacity_experts=2))
    problem = PlacementProblem(inst, 8, capacity_experts=2, max_replicas=3)
    sol = get_method("p5/local-search")(problem)
    assert sol.objective_s <= plain.objective_s * (1 + 1e-9)
    assert (copies_per_device(sol.replicas, 8) <= 2).all()
    assert ((sol.replicas >= 0).sum(axis=-1) <= 3).all()
    np.testing.assert_array_equal(sol.replicas[:, :, 0], sol.placement)
    doc = solution_to_dict(sol)
    assert doc["extra"]["route_rule"] == "split"
    assert check_p5(inst, doc) == []
    # the evaluator's score is the solution's (P3 re-solved by p3/exact)
    assert math.isclose(PlacementEvaluator(problem).score(sol.placement, sol.replicas),
                        sol.objective_s, rel_tol=1e-6)


def test_check_rejects_bad_routes_and_copies():
    inst = trace(5, layers=1, batches=2, batch_tokens=6, devices=6)
    problem = PlacementProblem(inst, 6, capacity_experts=2, max_replicas=2)
    pl = np.array([[0, 1, 2, 3]])
    doc = solution_to_dict(placement_solution(problem, pl, method="test",
                                              replicas=[[[0, 4], [1], [2, 5], [3]]]))
    assert check_p5(inst, doc) == []
    first = next(j for j, kept in enumerate(doc["selection"][0]) if 0 in kept)

    def broken(change):
        bad = json.loads(json.dumps(doc))
        change(bad)
        return check_p5(inst, bad)

    def to_device(d, k):
        d["extra"]["route"][0][first][d["selection"][0][first].index(0)] = k
    assert any("holds no copy of expert 0" in v for v in broken(lambda d: to_device(d, 1)))
    assert any("not routed by the split rule" in v
               for v in broken(lambda d: to_device(d, 4)))
    assert any("hosts 3 experts" in v for v in broken(
        lambda d: d.__setitem__("replicas", [[[0, 4], [1, 4], [2, 4], [3]]])))
    assert any("not the placement's" in v for v in broken(
        lambda d: d.__setitem__("replicas", [[[4, 0], [1], [2, 5], [3]]])))
    assert any("required when experts are replicated" in v for v in broken(
        lambda d: d["extra"].pop("route")))
    assert any("unknown rule" in v for v in broken(
        lambda d: d["extra"].__setitem__("route_rule", "fastest")))
    # malformed entries are reported, not raised
    assert any("not a list of distinct device ids" in v for v in broken(
        lambda d: d.__setitem__("replicas", [[[[0]], [1], [2, 5], [3]]])))
    assert any("one device per selected expert" in v for v in broken(
        lambda d: d["extra"]["route"][0].__setitem__(first, 5)))
    # a route that moves no pair but drops the copies changes the recomputed latency
    assert any(v.startswith("objective_s") for v in broken(
        lambda d: d.__setitem__("objective_s", d["objective_s"] * 0.9)))


# -- the MILP against brute force --------------------------------------------------------
def brute_force(problem: PlacementProblem) -> float:
    """Best mean batch latency over every set of copies within the capacities and
    ``max_replicas``, each batch over every route of its pairs to the copies, P3 by
    golden section (tests/reference.py), no solver code."""
    inst = problem.instance
    I, E, U = inst.n_layers, inst.n_experts, inst.n_devices
    sets = [c for r in range(1, problem.max_replicas + 1)
            for c in itertools.combinations(range(U), r)]
    q = ref.topk_mask(inst)
    jb, best = problem.batch_tokens, math.inf
    for choice in itertools.product(sets, repeat=I * E):
        copies = [choice[i * E:(i + 1) * E] for i in range(I)]
        hosted = np.zeros((I, U), dtype=int)
        for i, e in itertools.product(range(I), range(E)):
            hosted[i, list(copies[i][e])] += 1
        if (hosted > problem.capacity).any():
            continue
        total = 0.0
        for n in range(problem.n_batches):
            pairs = [(i, j, e) for i in range(I) for j in range(n * jb, (n + 1) * jb)
                     for e in range(E) if q[i][j][e]]
            batch = math.inf
            for route in itertools.product(*[copies[i][e] for i, _, e in pairs]):
                u = np.zeros((I, U))
                p = np.zeros((I, U))
                for (i, _, _), k in zip(pairs, route, strict=True):
                    p[i, k] += 1
                for i in range(I):
                    for k in range(U):
                        u[i, k] = len({j for (ii, j, _), kk in zip(pairs, route, strict=True)
                                       if ii == i and kk == k})
                batch = min(batch, ref.p3_optimum_of_loads_s(inst, u, p))
            total += batch
        best = min(best, total / problem.n_batches)
    return best


@pytest.mark.slow
def test_milp_with_replication_equals_brute_force():
    """A case where the optimum replicates (both experts on both devices) and routes
    the pairs itself (not by the split rule)."""
    inst = trace(1, layers=1, batches=2, batch_tokens=2, experts=2, devices=2)
    problem = PlacementProblem(inst, 2, capacity_experts=2, max_replicas=2)
    sol = get_method("p5/milp")(problem)
    reference = brute_force(problem)
    single = brute_force(PlacementProblem(inst, 2, capacity_experts=2))
    assert reference < single * (1 - 1e-3)            # replication pays here
    assert str(sol.status) == "optimal"
    # P3 certified to 1e-9 against a golden-section minimum: ~1e-8 relative
    assert math.isclose(sol.objective_s, reference, rel_tol=1e-7)
    assert sol.lower_bound_s <= reference * (1 + 1e-7)
    doc = solution_to_dict(sol)
    assert check_p5(inst, doc) == []
    assert doc["extra"]["route_rule"] in ("split", "given")


# -- the CLI ---------------------------------------------------------------------------
def test_cli_max_replicas_and_placement_from(tmp_path, capsys):
    train, test = tmp_path / "train.json", tmp_path / "test.json"
    for path, tokens, seed in ((train, 32, "1"), (test, 16, "2")):
        assert main(["generate", "wdmoe-sim", "--seed", seed, "--tokens", str(tokens),
                     "--layers", "2", "--devices", "16", "--experts", "4", "--placement",
                     "round-robin", "-o", str(path)]) == 0
    placed, sol = tmp_path / "placed.json", tmp_path / "sol.json"
    assert main(["solve", str(train), "--problem", "p5", "--placement-method", "local-search",
                 "--max-replicas", "3", "--capacity-experts", "1", "--batch-tokens", "16",
                 "--time-limit", "20", "-o", str(placed)]) == 0
    doc = json.loads(placed.read_text())
    assert [[c[0] for c in row] for row in doc["replicas"]] == doc["placement"]
    assert main(["check", str(train), str(placed)]) == 0
    assert main(["solve", str(test), "--placement-from", str(placed), "--problem", "p3",
                 "-o", str(sol)]) == 0
    out = json.loads(sol.read_text())
    assert out["replicas"] == doc["replicas"]
    assert main(["check", str(test), str(sol)]) == 0
    # the p3 document is checked under the copies: the same under the primaries is not it
    out_primary = dict(out, replicas=None)
    solved = check_solution(instance_from_dict(json.loads(test.read_text())), out_primary)
    assert doc["extra"]["extra_copies"] > 0 and solved != []
    capsys.readouterr()
    assert main(["solve", str(train), "--problem", "p5", "--max-replicas", "2"]) == 2
    assert "--max-replicas" in capsys.readouterr().err
    assert main(["solve", str(test), "--placement-from", str(placed)]) == 2   # p1
    assert main(["solve", str(test), "--placement-from", str(placed), "--problem", "p3",
                 "--selection", "alg1"]) == 2
    assert main(["solve", str(train), "--problem", "p5", "--max-replicas", "0"]) == 2


def test_mirrored_group_crosses_once():
    """Experts 0 and 1 share device 0 and are both mirrored on device 2: every token
    selecting both sends its two pairs to one device (u counts it once), and the
    group's tokens split evenly over the two devices."""
    q = np.zeros((1, 6, 3), dtype=bool)
    q[0, :, 0] = q[0, :, 1] = True                    # every token selects 0 and 1
    rep = replicas_array([[[0, 2], [0, 2], [1]]], None, 1, 3, 3)
    u, p = route_loads(split_route(rep, q), 3)
    np.testing.assert_array_equal(p[0], [6, 0, 6])
    np.testing.assert_array_equal(u[0], [3, 0, 3])


def test_replicas_in_the_instance_file_are_refused_where_not_modelled(tmp_path, capsys):
    """The selection methods read one copy per expert: an instance file that carries
    ``replicas`` itself (not through --placement-from) is refused the same way."""
    inst = trace(1, devices=6)
    lists = [[[int(inst.placement[i, e])] + ([5] if e == 0 else []) for e in range(4)]
             for i in range(2)]
    path = tmp_path / "rep.json"
    path.write_text(json.dumps(instance_to_dict(inst.replace(replicas=lists))))
    for problem in ("p1", "p2"):
        capsys.readouterr()
        assert main(["solve", str(path), "--problem", problem]) == 2
        assert "replicas" in capsys.readouterr().err
    assert main(["solve", str(path), "--problem", "p3", "--selection", "alg1"]) == 2
    assert main(["solve", str(path), "--problem", "p3", "-o", str(tmp_path / "s.json")]) == 0
    rep = inst.replace(replicas=lists)
    for make in (SelectionProblem, JointProblem, WeightFloorProblem):
        with pytest.raises(InputError, match=r"^replicas are not modelled"):
            make(rep)


def test_check_follows_the_instances_route():
    """An instance whose ``route`` sends pairs to their second copy: the solver's model
    and the independent checker agree (the checker used to apply the split rule)."""
    inst = trace(1, devices=6)
    lists = [[[int(inst.placement[i, e]), 4 + (e % 2)] for e in range(4)] for i in range(2)]
    rep = inst.replace(replicas=lists)
    sel = Selection.topk(rep)
    route = np.where(sel.mask, np.array([[c[1] for c in row] for row in lists])[:, None, :],
                     -1)
    routed = rep.replace(route=route)
    sol = get_method("p3/exact")(BandwidthProblem(routed, sel))
    assert check_solution(routed, solution_to_dict(sol)) == []
    # the same document is not valid for the split rule's routing
    assert check_solution(rep, solution_to_dict(sol)) != []
