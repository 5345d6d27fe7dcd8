"""Exact P4 equals an independent brute force on many tiny random instances
(decode: enumeration and both MILP routes; prefill: both MILP routes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.energy.conftest import brute_force, deadline_between, tiny_sift
from wdmoe_opt.energy import EnergyProblem
from wdmoe_opt.registry import get_method


def _case(seed: int, tokens: int, **params) -> EnergyProblem:
    rng = np.random.default_rng(seed)
    inst = tiny_sift(seed, tokens=tokens, **params)
    eps = float(rng.choice([0.0, 0.5, 1.0, 2.0, 4.0]))
    frac = float(rng.choice([0.5, 0.8, 1.0, 1.5]))
    return EnergyProblem(inst, eps, deadlines_s=deadline_between(inst, frac))


def _assert_matches(sol, problem):
    ref, _ = brute_force(problem)
    if math.isinf(ref):
        assert sol.status == "infeasible"
        return
    assert sol.status == "optimal", sol.extra
    # energies are sums of a few products of positive numbers: round-off only
    assert math.isclose(sol.extra["energy_j"], ref, rel_tol=1e-9, abs_tol=1e-15)
    assert sol.extra["energy_lower_bound_j"] <= ref * (1 + 1e-7) + 1e-12


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("method", ["p4/exact", "p4/milp-highspy"])
def test_decode_exact_equals_brute_force(seed, method):
    problem = _case(seed, tokens=1, experts=4 if seed % 2 else 3)
    _assert_matches(get_method(method)(problem), problem)


@pytest.mark.parametrize("seed", range(12))
def test_prefill_highspy_equals_brute_force(seed):
    problem = _case(100 + seed, tokens=3 if seed % 3 else 2)
    _assert_matches(get_method("p4/exact")(problem), problem)


@pytest.mark.parametrize("seed", range(3))
def test_prefill_shared_placement_equals_brute_force(seed):
    problem = _case(200 + seed, tokens=2, experts=4, devices=2)
    _assert_matches(get_method("p4/exact")(problem), problem)


@pytest.mark.parametrize("seed", [1, 5, 101, 104])
def test_pyomo_route_agrees(seed):
    tokens = 1 if seed < 100 else 3
    problem = _case(seed, tokens=tokens)
    _assert_matches(get_method("p4/milp-pyomo")(problem), problem)
