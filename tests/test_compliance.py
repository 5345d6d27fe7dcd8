"""The shared compliance suite (STYLE habit 9): every registered method, on tiny
instances whose optima are known by brute force computed here, independently.

Rules, by problem:
* every method: the checker accepts its solution, the status is not ``error``,
  a lower bound never exceeds the objective;
* P3: objective >= the reference optimum; exact methods reach it;
* P2: total WLR <= the brute-force optimum; exact methods reach it and their
  upper bound covers it;
* P1 (lower level ``uniform``): objective >= the P3 optimum of its own selection;
  exact bilevel methods equal "exact P2 at the uniform split, ties for the leader,
  then P3"; methods of the single-level variant with a retained-weight floor
  keep the floor, and exact ones beat Top-K (always feasible) and the heuristic.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tests.conftest import small_instance
from wdmoe_opt import BandwidthProblem, JointProblem, Selection, SelectionProblem
from wdmoe_opt.check import check_solution
from wdmoe_opt.check_placement import check_p5
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.model import latency as lat
from wdmoe_opt.placement import PlacementProblem
from wdmoe_opt.problems import WeightFloorProblem
from wdmoe_opt.registry import get_method, methods

CASES = {
    "identity": dict(layers=2, tokens=4, experts=3, devices=3),
    "fast-fading": dict(layers=2, tokens=3, experts=3, devices=3, fast_fading=True),
    "shared": dict(layers=2, tokens=3, experts=4, devices=2, placement="round-robin"),
}
INSTANCES = {name: small_instance(7, **params) for name, params in CASES.items()}


# -- independent references -------------------------------------------------------------
def _golden(f, lo, hi, iters=90):
    """Minimize a convex function of one variable on [lo, hi]."""
    r = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = f(d)
    return min(fc, fd, f(lo), f(hi))


def p3_reference(instance, selection) -> float:
    """Optimal P3 latency for U <= 3 by nested golden-section search (P3 is convex)."""
    B = instance.system.total_bandwidth_hz
    T = lambda b: float(lat.total_latency_s(instance, selection, np.asarray(b)))  # noqa: E731
    if instance.n_devices == 2:
        return _golden(lambda x: T([x, B - x]), 0.0, B)
    assert instance.n_devices == 3
    return _golden(lambda x: _golden(lambda y: T([x, y, B - x - y]), 0.0, B - x, 60), 0.0, B, 60)


def _token_options(allowed_row):
    ids = np.flatnonzero(allowed_row)
    subsets = [s for r in range(1, len(ids) + 1) for s in itertools.combinations(ids, r)]
    masks = np.zeros((len(subsets), allowed_row.size), dtype=bool)
    for n, s in enumerate(subsets):
        masks[n, list(s)] = True
    return masks


def p2_reference(instance, bandwidth_hz, support):
    """Brute force P2: (best total WLR, every optimal selection per layer)."""
    allowed = SelectionProblem(instance, bandwidth_hz, support).allowed_mask()
    I, J, E = allowed.shape
    best_total, optimal_layers = 0.0, []
    for i in range(I):
        opts = [_token_options(allowed[i, j]) for j in range(J)]
        combos = np.array(list(itertools.product(*[range(len(o)) for o in opts])))
        masks = np.stack([opts[j][combos[:, j]] for j in range(J)], axis=1)  # [C, J, E]
        values = []
        for m in masks:
            full = np.zeros((I, J, E), dtype=bool)
            full[i] = m
            values.append(lat.wlr(instance, Selection(full), bandwidth_hz)[i].sum())
        values = np.array(values)
        best = values.max()
        best_total += best
        optimal_layers.append(masks[values >= best * (1 - 1e-12)])
    return best_total, optimal_layers


def p1_uniform_reference(instance, support) -> float:
    """Exact P2 at the uniform split, ties broken for the leader, then exact P3."""
    _, optimal_layers = p2_reference(instance, lat.uniform_bandwidth_hz(instance), support)
    best = math.inf
    for combo in itertools.product(*optimal_layers):
        best = min(best, p3_reference(instance, Selection(np.stack(combo))))
    return best


# -- the suite ------------------------------------------------------------------------
ALL = [m for m in methods() if m.problem != "p4"]   # P4: tests/energy/test_p4_methods.py


def _run(method, instance, support="topk"):
    if method.problem == "p5":
        return method(PlacementProblem(instance))
    if method.problem == "p3":
        return method(BandwidthProblem(instance, Selection.topk(instance)))
    if method.problem == "p2":
        return method(SelectionProblem(instance, support=support))
    if method.problem == "p1-floor":
        return method(WeightFloorProblem(instance, support=support))
    return method(JointProblem(instance, support=support, lower_level="uniform"))


#: P5's exact MILP takes seconds per case (tests/placement holds its brute-force check).
_SLOW = {"p5/milp"}


@pytest.mark.parametrize("case", sorted(INSTANCES))
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m.key in _SLOW
                                    else m for m in ALL], ids=[m.key for m in ALL])
def test_every_method_meets_the_known_optimum_rules(method, case):
    instance = INSTANCES[case]
    ok, why = method.available()
    if not ok:
        pytest.skip(why)
    sol = _run(method, instance)
    assert str(sol.status) != "error", sol.extra
    if method.problem == "p5":   # placement: its own check; bounds in tests/placement
        assert check_p5(instance, solution_to_dict(sol)) == []
        assert sol.lower_bound_s is None or sol.lower_bound_s <= sol.objective_s * (1 + 1e-9)
        return
    assert check_solution(instance, solution_to_dict(sol)) == []
    if sol.lower_bound_s is not None:
        assert sol.lower_bound_s <= sol.objective_s * (1 + 1e-9)
    if method.problem == "p3":
        ref = p3_reference(instance, Selection.topk(instance))
        assert sol.objective_s >= ref * (1 - 1e-7)
        if method.exact:
            assert sol.objective_s <= ref * (1 + 1e-6)
            assert sol.lower_bound_s is not None and sol.lower_bound_s <= ref * (1 + 1e-7)
    elif method.problem == "p2":
        ref, _ = p2_reference(instance, sol.bandwidth_hz, "topk")
        assert sol.wlr_total <= ref * (1 + 1e-9)
        if method.exact:
            assert sol.wlr_total >= ref * (1 - 1e-7)
            assert sol.wlr_upper_bound is not None and sol.wlr_upper_bound >= ref * (1 - 1e-9)
    elif method.problem == "p1-floor":
        assert sol.objective_s >= p3_reference(instance, sol.selection) * (1 - 1e-7)
        assert sol.retained_weight >= sol.extra["min_retained_weight"] - 1e-12
        if method.exact:
            topk = p3_reference(instance, Selection.topk(instance))
            heuristic = get_method("p1-floor/greedy")(WeightFloorProblem(instance))
            assert sol.objective_s <= min(topk, heuristic.objective_s) * (1 + 1e-7)
    else:
        assert sol.objective_s >= p3_reference(instance, sol.selection) * (1 - 1e-7)
        if method.exact:
            assert math.isclose(sol.objective_s, p1_uniform_reference(instance, "topk"),
                                rel_tol=1e-6)


@pytest.mark.parametrize("method", [m for m in ALL if m.problem == "p2" and m.exact],
                         ids=lambda m: m.key)
def test_exact_p2_methods_on_the_literal_support(method):
    instance = INSTANCES["identity"]
    sol = _run(method, instance, support="all")
    ref, _ = p2_reference(instance, sol.bandwidth_hz, "all")
    assert math.isclose(sol.wlr_total, ref, rel_tol=1e-7)


def test_no_registered_method_escapes_the_suite():
    """Meta-test: the suite covers the registry as it is at collection time."""
    assert {m.key for m in methods() if m.problem != "p4"} == {m.key for m in ALL}
    assert all(m.problem in ("p1", "p2", "p3", "p1-floor", "p5") for m in ALL)
    assert all(m.summary for m in ALL), "every method needs a one-line docstring summary"
    assert {"p3/uniform", "p2/topk", "p1/sequential"} <= {m.key for m in ALL}
