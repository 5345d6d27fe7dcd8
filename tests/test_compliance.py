"""The shared compliance suite (STYLE habit 9): every registered method, on tiny
instances whose optima are known by brute force computed here, independently (the
reference evaluator :mod:`tests.reference` imports nothing from ``wdmoe_opt``).

Rules, by problem:
* every method: the checker accepts its solution, the status is not ``error``,
  a lower bound never exceeds the objective;
* P3: objective >= the reference optimum; exact methods reach it;
* P2: total WLR <= the brute-force optimum; exact methods reach it and their
  upper bound covers it;
* P1 (lower level ``uniform``): objective >= the P3 optimum of its own selection;
  exact bilevel methods equal "exact P2 at the uniform split, ties for the leader,
  then P3"; methods of the single-level variant with a retained-weight floor
  keep the floor, and exact ones beat Top-K (always feasible) and the heuristic;
* P1 (lower level ``coupled``): objective >= the P3 optimum of its own selection; the
  bilevel verdict agrees with the brute-force follower at the leader's bandwidth; exact
  methods prove their point bilevel-feasible and beat (within their stated 1e-4) every
  bilevel-feasible point of a grid over the bandwidth simplex.

Tolerances: the reference optima come from nested golden sections (interval 0.618^60 of
the budget) and plain enumeration, accurate far below ``REF_RTOL``; an exact method is
held to its own stated tolerance on top of that.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

import wdmoe_opt
from tests import reference as ref
from tests.conftest import small_instance
from wdmoe_opt import BandwidthProblem, JointProblem, Selection, SelectionProblem
from wdmoe_opt.check import check_solution
from wdmoe_opt.check_placement import check_p5
from wdmoe_opt.io import solution_to_dict
from wdmoe_opt.placement import PlacementProblem
from wdmoe_opt.problems import WeightFloorProblem
from wdmoe_opt.registry import get_method, methods

CASES = {
    "identity": dict(layers=2, tokens=4, experts=3, devices=3),
    "fast-fading": dict(layers=2, tokens=3, experts=3, devices=3, fast_fading=True),
    "shared": dict(layers=2, tokens=3, experts=4, devices=2, placement="round-robin"),
}
INSTANCES = {name: small_instance(7, **params) for name, params in CASES.items()}
#: Accuracy allowed to the references (golden sections, sums in another order).
REF_RTOL = 1e-7
#: p1/exact's stated gap under the coupled reading (its ``gap`` option's default).
COUPLED_GAP = 1e-4


# -- the suite ------------------------------------------------------------------------
#: Problems whose methods have a compliance suite of their own (their own brute force).
OWN_SUITES = {"p4": "tests/energy/test_methods.py"}
ALL = [m for m in methods() if m.problem not in OWN_SUITES]


def _run(method, instance, support="topk", lower_level="uniform"):
    if method.problem == "p5":
        return method(PlacementProblem(instance))
    if method.problem == "p3":
        return method(BandwidthProblem(instance, Selection.topk(instance)))
    if method.problem == "p2":
        return method(SelectionProblem(instance, support=support))
    if method.problem == "p1-floor":
        return method(WeightFloorProblem(instance, support=support))
    return method(JointProblem(instance, support=support, lower_level=lower_level))


def _common_rules(instance, sol):
    assert str(sol.status) != "error", sol.extra
    assert check_solution(instance, solution_to_dict(sol)) == []
    assert sol.lower_bound_s is None or sol.lower_bound_s <= sol.objective_s * (1 + 1e-9)


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
    if method.problem == "p5":   # placement: its own check; bounds in tests/placement
        assert str(sol.status) != "error", sol.extra
        assert check_p5(instance, solution_to_dict(sol)) == []
        assert sol.lower_bound_s is None or sol.lower_bound_s <= sol.objective_s * (1 + 1e-9)
        return
    _common_rules(instance, sol)
    mask = sol.selection.mask
    if method.problem == "p3":
        optimum = ref.p3_optimum_s(instance, ref.topk_mask(instance))
        assert sol.objective_s >= optimum * (1 - REF_RTOL)
        if method.exact:
            assert sol.objective_s <= optimum * (1 + REF_RTOL)
            assert sol.lower_bound_s is not None
            assert sol.lower_bound_s <= optimum * (1 + REF_RTOL)
    elif method.problem == "p2":
        best, _ = ref.p2_enumerate(instance, sol.bandwidth_hz, "topk")
        assert math.isclose(sol.wlr_total, ref.wlr(instance, mask, sol.bandwidth_hz).sum(),
                            rel_tol=REF_RTOL)
        assert sol.wlr_total <= best * (1 + REF_RTOL)
        if method.exact:
            assert sol.wlr_total >= best * (1 - REF_RTOL)
            assert sol.wlr_upper_bound is not None
            assert sol.wlr_upper_bound >= best * (1 - REF_RTOL)
    elif method.problem == "p1-floor":
        assert sol.objective_s >= ref.p3_optimum_s(instance, mask) * (1 - REF_RTOL)
        assert sol.retained_weight >= sol.extra["min_retained_weight"] - 1e-12
        if method.exact:
            topk = ref.p3_optimum_s(instance, ref.topk_mask(instance))
            heuristic = get_method("p1-floor/greedy")(WeightFloorProblem(instance))
            assert sol.objective_s <= min(topk, heuristic.objective_s) * (1 + REF_RTOL)
    else:
        assert sol.objective_s >= ref.p3_optimum_s(instance, mask) * (1 - REF_RTOL)
        if method.exact:
            assert math.isclose(sol.objective_s, ref.p1_uniform_optimum_s(instance, "topk"),
                                rel_tol=REF_RTOL)


COUPLED = [pytest.param(m, case, id=f"{m.key}-{case}",
                        marks=[pytest.mark.slow] if (m.exact, case) == (True, "identity") else [])
           for m in ALL if m.problem == "p1"
           for case in sorted(INSTANCES)]


@pytest.mark.parametrize("method, case", COUPLED)
def test_p1_methods_under_the_coupled_reading(method, case):
    """(p1/exact on the identity case takes about a minute: marked slow.)"""
    instance = INSTANCES[case]
    sol = _run(method, instance, lower_level="coupled")
    _common_rules(instance, sol)
    assert sol.extra["lower_level"] == "coupled"
    assert sol.objective_s >= ref.p3_optimum_s(instance, sol.selection.mask) * (1 - REF_RTOL)
    ref.assert_bilevel_verdict(instance, sol, REF_RTOL)
    if method.exact:
        assert str(sol.status) == "optimal" and sol.extra["bilevel_feasible"] is True
        for b in ref.simplex_grid_hz(instance, 8 if instance.n_devices == 3 else 20):
            assert sol.objective_s <= ref.coupled_point_latency_s(instance, b) * (1 + COUPLED_GAP)


@pytest.mark.parametrize("method", [m for m in ALL if m.problem == "p2" and m.exact],
                         ids=lambda m: m.key)
def test_exact_p2_methods_on_the_literal_support(method):
    instance = INSTANCES["identity"]
    sol = _run(method, instance, support="all")
    best, _ = ref.p2_enumerate(instance, sol.bandwidth_hz, "all")
    assert math.isclose(sol.wlr_total, best, rel_tol=REF_RTOL)


def registered_in_source() -> set[str]:
    """Every ``@register("problem", "name", ...)`` site in the package's source, found by
    parsing the files (not by asking the registry what it loaded)."""
    keys = set()
    for path in Path(wdmoe_opt.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for deco in node.decorator_list:
                func = deco.func if isinstance(deco, ast.Call) else None
                name = getattr(func, "id", getattr(func, "attr", None))
                if name == "register":
                    problem, method = (ast.literal_eval(a) for a in deco.args[:2])
                    keys.add(f"{problem}/{method}")
    return keys


def test_no_registered_method_escapes_the_suite():
    """Meta-test: every ``@register`` site of the source is in the registry (a module
    left out of the built-in list would escape it), and every registered method is run
    here or by its problem's own suite (``OWN_SUITES``)."""
    in_source = registered_in_source()
    assert {"p3/uniform", "p2/topk", "p1/sequential", "p1/exact"} <= in_source
    assert in_source == {m.key for m in methods()}
    assert {m.key for m in ALL} == {k for k in in_source if k.split("/")[0] not in OWN_SUITES}
    assert all(m.problem in ("p1", "p2", "p3", "p1-floor", "p5") for m in ALL)
    assert all(m.summary for m in ALL), "every method needs a one-line docstring summary"
