"""Composition as a value: a step is a validated (method, options) value."""

from __future__ import annotations

import pytest

from tests.conftest import small_instance
from wdmoe_opt import InputError, JointProblem, SelectionProblem, solve
from wdmoe_opt.joint.sequential import CompositionOptions
from wdmoe_opt.registry import Step, get_method, make_step


def test_a_step_is_built_and_validated_once():
    step = make_step("p3", "exact", {"tol": 1e-6})
    assert isinstance(step, Step) and step.key == "p3/exact" and step.options.tol == 1e-6
    assert make_step("p3", step) is step
    assert make_step("p3", {"method": "p3/exact", "options": {"tol": 1e-6}}) == step
    with pytest.raises(InputError, match="'tol' option of p3/exact must be a positive"):
        make_step("p3", "exact", {"tol": -1})
    with pytest.raises(InputError, match="must be a p3 method"):
        make_step("p3", make_step("p2", "topk"))
    with pytest.raises(InputError, match="is not a p2 method"):
        make_step("p2", "slsqp")


def test_p1_options_hold_steps_not_names():
    opts = get_method("p1/sequential").make_options({"selection": "alg1",
                                                     "bandwidth": {"method": "slsqp"}})
    assert isinstance(opts, CompositionOptions)
    assert opts.selection.key == "p2/alg1" and opts.bandwidth.key == "p3/slsqp"
    assert opts.as_dict()["bandwidth"] == {"method": "p3/slsqp",
                                           "options": opts.bandwidth.options.as_dict()}
    with pytest.raises(InputError, match="'bandwidth' option of p1/exact must name an exact"):
        get_method("p1/exact").make_options({"bandwidth": "slsqp"})


def test_a_time_limit_reaches_every_step_that_takes_one():
    step = get_method("p1/sequential").step({"selection": "milp", "bandwidth": "uniform"})
    limited, used = step.with_time_limit(7.0)
    assert used and limited.options.selection.time_limit == 7.0
    assert step.options.selection.time_limit != 7.0            # values: the old one is kept
    plain = get_method("p1/sequential").step({"selection": "topk", "bandwidth": "uniform"})
    assert plain.with_time_limit(7.0) == (plain, False)


def test_the_same_step_gives_the_same_solution_as_the_names():
    inst = small_instance(5)
    by_names = solve(JointProblem(inst), "sequential", selection="alg1", bandwidth="exact")
    step = get_method("p1/sequential").step({"selection": make_step("p2", "alg1"),
                                             "bandwidth": make_step("p3", "exact")})
    by_step = solve(JointProblem(inst), step)
    assert by_step.objective_s == by_names.objective_s
    assert (by_step.selection.mask == by_names.selection.mask).all()


def test_a_p1_point_restates_the_p3_point_without_reevaluating_it():
    inst = small_instance(6)
    sol = solve(JointProblem(inst), "sequential", selection="topk", bandwidth="exact")
    assert sol.problem == "p1" and sol.lower_bound_s is None
    assert sol.extra["p3_lower_bound_s"] <= sol.objective_s
    p3 = solve(SelectionProblem(inst), "topk")
    assert sol.selection.mask.tolist() == p3.selection.mask.tolist()
