"""The P4 model: instance blocks (read, written, validated, hashed), the one energy
definition with local devices, and the vectorized deviation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.energy.conftest import tiny_sift
from wdmoe_opt.energy import EnergyProblem
from wdmoe_opt.errors import InputError
from wdmoe_opt.generate import generate
from wdmoe_opt.io import read_instance, write_instance
from wdmoe_opt.io.instance_io import instance_from_dict, instance_to_dict
from wdmoe_opt.model import Selection
from wdmoe_opt.model import latency as lat
from wdmoe_opt.model.deviation import (
    actions_from_lists,
    check_actions,
    deviation,
    topk_experts,
)
from wdmoe_opt.model.similarity import Similarity


@pytest.fixture
def inst():
    return tiny_sift(0, tokens=3, experts=4)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_round_trip_keeps_every_p4_block_and_the_hash(inst, tmp_path, suffix):
    path = write_instance(inst, tmp_path / f"i{suffix}")
    back = read_instance(path)
    assert back.content_hash == inst.content_hash
    assert np.array_equal(back.similarity.replace, inst.similarity.replace)
    assert np.array_equal(back.similarity.skip, inst.similarity.skip)
    assert back.similarity.source == inst.similarity.source
    assert np.array_equal(back.deadlines_s, inst.deadlines_s)
    assert np.array_equal(back.system.local, inst.system.local)
    assert np.array_equal(back.system.compute_j_per_flop, inst.system.compute_j_per_flop)


def test_hash_covers_the_blocks_and_keeps_old_instances_hash(inst):
    # computed on main before P4 existed (and before the preset's recalibration, hence
    # its old gating statistics): an instance without the blocks keeps its hash
    old = generate("wdmoe-sim", seed=0, layers=2, tokens=3, experts=3, devices=3,
                   layer_correlation=0.97, sharpness=1.0)
    assert old.content_hash == ("sha256:280b21d15aa1a4f3054430fb5de4e6a3afeaef13adad670a3dd2"
                                "cad2a3998048")
    sim = inst.similarity
    d = sim.replace.copy()
    d[0, 0, 1] += 1e-9
    changed = [inst.replace(similarity=Similarity(d, sim.skip, sim.source)),
               inst.replace(similarity=Similarity(sim.replace, sim.skip * 2, sim.source)),
               inst.replace(similarity=Similarity(sim.replace, sim.skip, "other")),
               inst.replace(similarity=None), inst.replace(deadlines_s=1.0),
               inst.with_system(local=np.zeros(inst.n_devices, dtype=bool))]
    hashes = {x.content_hash for x in changed} | {inst.content_hash}
    assert len(hashes) == len(changed) + 1


def _doc(inst):
    return json.loads(json.dumps(instance_to_dict(inst)))


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["similarity"]["replace"][0][1].__setitem__(2, -1.0),
     "similarity.replace[0][1][2]"),
    (lambda d: d["similarity"]["replace"][1][2].__setitem__(2, 0.5),
     "similarity.replace[1][2][2]"),
    (lambda d: d["similarity"]["replace"].pop(), "similarity.replace"),
    (lambda d: d["similarity"]["skip"][0].__setitem__(0, "x"), "similarity.skip"),
    (lambda d: d["similarity"].__setitem__("sensitivity", [0.5, 1.0]), "similarity.sensitivity[0]"),
    (lambda d: d["similarity"].__setitem__("extra", 1), "similarity.extra"),
    (lambda d: d["similarity"].pop("skip"), "similarity.skip"),
    (lambda d: d.__setitem__("similarity", [1]), "similarity"),
    (lambda d: d.__setitem__("deadlines_s", -1.0), "deadlines_s[0]"),
    (lambda d: d.__setitem__("deadlines_s", [1.0, 2.0, 3.0]), "deadlines_s"),
    (lambda d: d.__setitem__("deadlines_s", "soon"), "deadlines_s"),
    (lambda d: d["system"]["devices"][1].__setitem__("local", 1), "system.devices[1].local"),
    (lambda d: d["system"]["devices"][2].pop("local"), "system.devices[2].local"),
    (lambda d: d["system"]["devices"][0].__setitem__("compute_j_per_flop", -1.0),
     "system.devices[0].compute_j_per_flop"),
])
def test_bad_blocks_name_the_field(inst, edit, field):
    doc = _doc(inst)
    edit(doc)
    with pytest.raises(InputError) as err:
        instance_from_dict(doc)
    assert err.value.field == field


def test_problem_inputs_are_validated(inst):
    with pytest.raises(InputError, match="similarity"):
        EnergyProblem(inst.replace(similarity=None), 1.0)
    with pytest.raises(InputError, match="deviation_budget"):
        EnergyProblem(inst, -1.0)
    with pytest.raises(InputError, match="deadlines_s"):
        EnergyProblem(inst, 1.0, deadlines_s=0.0)
    with pytest.raises(InputError, match="sensitivities"):
        EnergyProblem(inst, 1.0, sensitivities=[1.0])
    a = topk_experts(inst).copy()
    a[0, 0, 1] = a[0, 0, 0]
    with pytest.raises(InputError, match=r"actions\[0\]\[0\] invokes an expert twice"):
        check_actions(inst, a)
    a[0, 0, 1] = 9
    with pytest.raises(InputError, match=r"actions\[0\]\[0\]\[1\]"):
        check_actions(inst, a)
    with pytest.raises(InputError, match="router Top-K"):
        actions_from_lists(inst, np.stack([np.zeros_like(a), a], axis=-1).tolist())


def test_deviation_equals_the_per_token_sum(inst):
    rng = np.random.default_rng(0)
    I, J, E = inst.gating_weights.shape
    e = topk_experts(inst)
    for _ in range(20):
        a = np.where(rng.random(e.shape) < 0.3, -1, e)
        swap = rng.random(e.shape) < 0.3
        a = np.where(swap, rng.integers(0, E, e.shape), a)
        a[:, :, 1] = np.where(a[:, :, 1] == a[:, :, 0], -1, a[:, :, 1])
        expect = np.zeros((I, J))
        for i in range(I):
            for j in range(J):
                for s in range(2):
                    w = inst.gating_weights[i, j, e[i, j, s]]
                    r = a[i, j, s]
                    expect[i, j] += w * (inst.similarity.skip[i, e[i, j, s]] if r < 0
                                         else inst.similarity.replace[i, e[i, j, s], r])
        assert np.allclose(deviation(inst, check_actions(inst, a)), expect, rtol=1e-12)


def test_local_device_has_no_link_and_energy_is_the_one_definition(inst):
    b = lat.uniform_bandwidth_hz(inst)
    assert inst.system.local[0] and not inst.system.local[1:].any()
    c = lat.comm_time_per_token_s(inst, b)
    assert (c[:, 0] == 0).all() and (c[:, 1:] > 0).all()
    sel = Selection.topk(inst)
    u, p = lat.device_loads(inst, sel)
    s = inst.system
    down, up = lat.link_rates_bps(inst, b)
    L = inst.model.token_bits
    per_token = np.where(s.local, 0.0, L * (s.bs_power_w / down + s.tx_power_w / up))
    expect = (u * per_token + p * inst.model.token_flops * s.compute_j_per_flop).sum()
    assert np.isclose(lat.energy_j(inst, sel, b), expect, rtol=1e-12)
    # a local device needs no bandwidth
    b0 = b.copy()
    b0[1] += b0[0]
    b0[0] = 0.0
    assert np.isfinite(lat.layer_latency_s(inst, sel, b0)).all()


def test_p3_and_the_checker_know_local_devices():
    from wdmoe_opt.check import check_solution
    from wdmoe_opt.io import solution_to_dict
    from wdmoe_opt.problems import BandwidthProblem
    from wdmoe_opt.registry import get_method
    inst = tiny_sift(0, tokens=8, experts=3, layers=3)
    sel = Selection.topk(inst)
    problem = BandwidthProblem(inst, sel)
    B = inst.system.total_bandwidth_hz
    grid = min(float(lat.total_latency_s(inst, sel, np.array([0.0, y * B, (1 - y) * B])))
               for y in np.linspace(0.005, 0.995, 199))
    for name in ("p3/slsqp", "p3/uniform", "p3/exact"):
        sol = get_method(name)(problem)
        assert check_solution(inst, solution_to_dict(sol)) == []
        if sol.status == "optimal":
            # the local device needs no bandwidth; the grid step bounds the slack
            assert sol.objective_s <= grid * (1 + 1e-3)
            assert sol.bandwidth_hz[0] <= 1e-6 * B
