from dataclasses import dataclass

import pytest

from tests.conftest import small_instance
from wdmoe_opt import BackendUnavailable, InputError, JointProblem, Selection
from wdmoe_opt.options import Options, option
from wdmoe_opt.problems import BandwidthProblem, SelectionProblem
from wdmoe_opt.registry import PROBLEMS, Method, get_method, methods, solve


def test_lookup_by_short_and_full_names():
    assert get_method("uniform", "p3") is get_method("p3/uniform")
    assert {m.problem for m in methods()} == set(PROBLEMS)
    assert get_method("milp", "p2") is get_method("p2/milp-highspy")   # an alias


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(InputError, match="known: .*uniform"):
        get_method("warp", "p3")


def test_unknown_and_bad_options_are_named():
    inst = small_instance()
    with pytest.raises(InputError, match="'speed' option of p3/uniform is unknown"):
        solve(BandwidthProblem(inst, Selection.topk(inst)), "uniform", speed=2)
    with pytest.raises(InputError, match="is not a p2 method; known: .*topk"):
        solve(JointProblem(inst), "sequential", selection="nope")


def test_the_wrong_problem_kind_is_refused():
    inst = small_instance()
    with pytest.raises(InputError, match="must be a p3 problem for p3/uniform"):
        get_method("p3/uniform")(SelectionProblem(inst))


@dataclass(frozen=True)
class _Opts(Options):
    time_limit: float = option(1.0, "positive")
    mode: str = option("a", ("a", "b"))


def test_option_rules_give_one_message_shape():
    with pytest.raises(InputError) as err:
        _Opts(time_limit=-1).validate("p2/milp")
    assert str(err.value) == ("the 'time_limit' option of p2/milp must be a positive number; "
                              "got -1")
    with pytest.raises(InputError, match="must be one of a, b"):
        _Opts(mode="c").validate("x")


def test_a_missing_backend_is_an_error_with_an_install_hint():
    m = Method("p3", "fake", lambda p, o: None, _Opts, ("no_such_backend_xyz",), False, "")
    ok, why = m.available()
    assert not ok and "pip install no_such_backend_xyz" in why
    inst = small_instance()
    with pytest.raises(BackendUnavailable, match="no_such_backend_xyz"):
        m(BandwidthProblem(inst, Selection.topk(inst)))


def test_solutions_record_time_versions_and_options():
    inst = small_instance()
    sol = solve(JointProblem(inst, support="all"), "sequential", selection="topk",
                bandwidth="uniform")
    assert sol.solve_time_s > 0
    assert sol.solver["name"] == "p1/sequential"
    assert "numpy" in sol.solver["backends"]
    assert sol.solver["options"]["selection"] == {"method": "p2/topk", "options": {}}
    assert sol.extra["support"] == "all"
