"""Discovery of solver files, their interface, and the repository's solver folder."""

from __future__ import annotations

import pytest

from wdmoe_opt import InputError
from wdmoe_opt.generate import generate
from wdmoe_opt.harness import Config, Custom
from wdmoe_opt.harness.bench import DEFAULT_SOLVERS_DIR
from wdmoe_opt.harness.solvers import discover, problem_key, select

from .conftest import EXPECTED, FIXTURES


def test_discovery_finds_every_fixture_and_reports_the_broken_one():
    found = discover([FIXTURES])
    assert set(found) == set(EXPECTED) | {"fix-escape"}     # fix-escape: test_faults
    assert found["fix-broken"].spec is None
    assert "must define SOLVER" in found["fix-broken"].error
    assert isinstance(found["fix-p3-uniform"].spec, Config)
    assert isinstance(found["fix-slow"].spec, Custom)


def test_unknown_solver_name_is_an_input_error_listing_the_known():
    with pytest.raises(InputError, match="fix-p3-uniform"):
        select(discover([FIXTURES]), ["no-such-solver"])


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        discover([tmp_path / "nope"])


def test_problem_keys():
    assert problem_key("p1", "topk", "coupled") == "p1/topk/coupled"
    assert problem_key("p2", "all") == "p2/all"
    assert problem_key("p3") == "p3"
    with pytest.raises(InputError, match="problem"):
        Config(name="x", problem="p4", method="p3/uniform")


def test_config_solves_through_the_registry():
    inst = generate("wdmoe-sim", 0, layers=2, tokens=4, experts=3)
    spec = discover([FIXTURES])["fix-topk-uniform"].spec
    assert spec.available() == (True, "")
    sol = spec.solve(inst)
    assert sol.problem == "p1" and sol.method == "p1/sequential"


def test_unregistered_method_is_unavailable_with_a_reason():
    ok, why = discover([FIXTURES])["fix-missing"].spec.available()
    assert not ok and "p2/not-registered" in why


def test_repository_solver_files_all_load():
    found = discover([DEFAULT_SOLVERS_DIR])
    assert {"topk-uniform", "topk-exact", "alg1-exact", "milp-exact"} <= set(found)
    broken = {n: f.error for n, f in found.items() if f.spec is None}
    assert not broken
    assert all(f.spec.description for f in found.values())
