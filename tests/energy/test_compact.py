"""``p4/milp-compact`` (the slot-based MILP) equals the brute force and the profile
methods on tiny instances, and answers the 32-expert top-4 model they refuse."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.energy.test_exact import _assert_matches, _case
from wdmoe_opt.check_energy import check_p4
from wdmoe_opt.cli import main
from wdmoe_opt.energy import EnergyProblem
from wdmoe_opt.energy.compact import layer_lp_bound
from wdmoe_opt.generate import generate
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.model import Selection
from wdmoe_opt.model import latency as lat
from wdmoe_opt.registry import get_method

COMPACT = "p4/milp-compact"


def _doc(sol) -> dict:
    return json.loads(json.dumps(solution_to_dict(sol)))


@pytest.mark.parametrize("seed", range(24))
def test_equals_brute_force(seed):
    """Decode and prefill, one local device, deadlines from loose to infeasible."""
    tokens = (1, 2, 3)[seed % 3]
    problem = _case(300 + seed, tokens=tokens, experts=4 if seed % 2 else 3)
    _assert_matches(get_method(COMPACT)(problem), problem)


@pytest.mark.parametrize("seed", range(8))
def test_shared_placement_equals_brute_force(seed):
    """Two experts per device: a token sent to both crosses the link once."""
    problem = _case(400 + seed, tokens=1 + seed % 2, experts=4, devices=2)
    _assert_matches(get_method(COMPACT)(problem), problem)


@pytest.mark.parametrize("seed", [0, 1, 3, 5, 7, 10])
def test_pyomo_route_equals_brute_force(seed):
    """The algebraic Pyomo model (rows written again from the instance)."""
    problem = _case(300 + seed, tokens=(1, 2, 3)[seed % 3], experts=4,
                    devices=2 if seed % 2 else None)
    _assert_matches(get_method(COMPACT + "-pyomo")(problem), problem)


def test_pyomo_route_agrees_on_sift32():
    problem = _sift32(4, 1, 0.6)
    a = get_method(COMPACT)(problem)
    b = get_method(COMPACT + "-pyomo")(problem)
    assert a.status == b.status == "optimal"
    assert math.isclose(a.extra["energy_j"], b.extra["energy_j"], rel_tol=1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_equals_profile_milp_beyond_brute_force(seed):
    """Larger than the brute force reaches: the profile MILP (exact) is the reference."""
    problem = _case(500 + seed, tokens=6, experts=5, devices=3 if seed % 2 else None)
    ref = get_method("p4/milp-highspy")(problem)
    sol = get_method(COMPACT)(problem)
    assert sol.status == ref.status
    if ref.status == "optimal":
        # both optimal within mip_gap 1e-9 of one MILP value: the gap, not round-off
        assert math.isclose(sol.extra["energy_j"], ref.extra["energy_j"], rel_tol=1e-8)


@pytest.mark.parametrize("seed", range(8))
def test_lp_bound_is_below_the_optimum(seed):
    problem = _case(600 + seed, tokens=3, experts=4)
    sol = get_method(COMPACT)(problem)
    lp = sum(layer_lp_bound(problem, i) for i in range(problem.instance.n_layers))
    if sol.status == "infeasible":
        return
    assert lp <= sol.extra["energy_j"] * (1 + 1e-7) + 1e-12


def _sift32(tokens: int, layers: int | None = None, deadline_frac: float | None = None):
    inst = generate("wdmoe-sift-32", seed=3, tokens=tokens,
                    **({} if layers is None else {"layers": layers}))
    if deadline_frac is not None:
        top = lat.layer_latency_s(inst, Selection.topk(inst), lat.uniform_bandwidth_hz(inst))
        inst = inst.replace(deadlines_s=float(top.min() * deadline_frac))
    return EnergyProblem(inst, 1.5)


@pytest.mark.parametrize("tokens, layers, frac", [(1, None, None), (4, 2, 0.6)])
def test_sift32_is_checked_bounded_and_beats_restricted_relax(tokens, layers, frac):
    """The 32-expert top-4 model (33^4 profiles per token, refused by the profile
    methods): a checked optimum, its bound below it, never worse than the
    restricted relaxation (replacements = 4, a subset of the actions)."""
    problem = _sift32(tokens, layers, frac)
    with pytest.raises(Exception, match="profiles"):
        get_method("p4/exact")(problem)
    sol = get_method(COMPACT)(problem)
    assert check_p4(problem.instance, _doc(sol)) == []
    assert sol.status == "optimal", sol.extra
    energy = sol.extra["energy_j"]
    assert sol.extra["energy_lower_bound_j"] <= energy * (1 + 1e-7)
    relax = get_method("p4/relax")(problem, {"replacements": 4})
    if relax.status in ("optimal", "feasible"):
        assert energy <= relax.extra["energy_j"] * (1 + 1e-9)
    # the deadline binds in the prefill case: the restricted keep-all point is late
    if frac is not None:
        assert get_method("p4/topk")(problem).status == "infeasible"


def test_time_limit_keeps_a_valid_bound():
    """A tiny time limit: whatever the status, the reported bound is below the energy."""
    problem = _sift32(16, 1, 0.6)
    sol = get_method(COMPACT)(problem, {"time_limit": 0.05})
    assert sol.status in ("optimal", "time_limit", "infeasible")
    assert check_p4(problem.instance, _doc(sol)) == []
    lb = sol.extra["energy_lower_bound_j"]
    if sol.status != "infeasible" and lb is not None and np.isfinite(lb):
        full = get_method(COMPACT)(problem)
        assert lb <= full.extra["energy_j"] * (1 + 1e-7)


def test_cli_solves_and_checks(tmp_path):
    inst = tmp_path / "sift32.json"
    sol = tmp_path / "sol.json"
    assert main(["generate", "wdmoe-sift-32", "--tokens", "1", "--layers", "3",
                 "-o", str(inst)]) == 0
    assert main(["solve", str(inst), "--problem", "p4", "--selection", "milp-compact",
                 "--deviation-budget", "1.5", "-o", str(sol)]) == 0
    doc = json.loads(sol.read_text())
    assert doc["method"] == COMPACT and doc["status"] == "optimal"
    assert main(["check", str(inst), str(sol)]) == 0


def test_warm_start_is_never_worse_than_its_relaxation():
    """With ``warm_start`` the MILP starts from ``p4/relax`` (4 replacements): at a time
    limit too short to improve it, the answer is that point (columns round trip)."""
    problem = _sift32(16, 1, 0.6)
    relax = get_method("p4/relax")(problem, {"replacements": 4})
    assert relax.status in ("optimal", "feasible")
    sol = get_method(COMPACT)(problem, {"warm_start": True, "time_limit": 0.02})
    assert sol.status in ("optimal", "time_limit")
    assert check_p4(problem.instance, _doc(sol)) == []
    assert sol.extra["energy_j"] <= relax.extra["energy_j"] * (1 + 1e-9)
    full = get_method(COMPACT)(problem, {"warm_start": True})
    assert full.status == "optimal"
    assert math.isclose(full.extra["energy_j"], get_method(COMPACT)(problem).extra["energy_j"],
                        rel_tol=1e-8)
