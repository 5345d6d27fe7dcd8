"""``p2/exact`` (counts, flows and a Lagrangian bound) beside both MILPs; its brute-force
check is ``test_milp.py::test_exact_routes_equal_brute_force``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wdmoe_opt import SelectionProblem, Status, solve
from wdmoe_opt.generate import generate
from wdmoe_opt.model import Instance
from wdmoe_opt.selection import exact

from .test_milp import HEURISTICS, tiny

# WLR values are sums of ratios of O(1) weights over O(1e-3) s times: relative 1e-9
# is far above round-off (1e-15) and far below any difference between two selections
# that the tests compare (the brute force and the MILPs prove to 1e-7).
RTOL = 1e-9


def assert_exact(sol, truth_wlr):
    assert sol.status == Status.OPTIMAL
    assert sol.wlr_total == pytest.approx(truth_wlr, rel=1e-7)
    assert sol.wlr_upper_bound >= sol.wlr_total * (1 - RTOL)
    assert sol.gap <= 1e-7


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), support=st.sampled_from(["topk", "all"]))
def test_exact_equals_both_milp_routes_on_small_instances(seed, support):
    inst = generate("wdmoe-sim", seed=seed, layers=2, tokens=24 if support == "topk" else 10)
    problem = SelectionProblem(inst, support=support)
    sol = solve(problem, "exact")
    for route in ("milp-highspy", "milp-pyomo"):
        ref = solve(problem, route)
        assert ref.status == Status.OPTIMAL
        assert_exact(sol, ref.wlr_total)


@pytest.mark.parametrize("support", ["topk", "all"])
def test_exact_on_a_random_bandwidth_split(support):
    inst = tiny(3, "identity", tokens=5 if support == "topk" else 3)
    b = np.array([0.1, 0.2, 0.3, 0.4]) * inst.system.total_bandwidth_hz
    problem = SelectionProblem(inst, b, support=support)
    assert_exact(solve(problem, "exact"), solve(problem, "brute-force").wlr_total)


def _relabel(inst: Instance, perm: np.ndarray) -> Instance:
    """The same instance (identity placement) with device and expert ``k`` renamed ``perm[k]``."""
    inv = np.argsort(perm)
    sysm = inst.system
    moved = {name: np.asarray(getattr(sysm, name))[..., inv]
             for name in ("compute_flops", "tx_power_w", "gain_down", "gain_up",
                          "distance_m", "compute_j_per_flop") if getattr(sysm, name) is not None}
    return inst.with_system(**moved).replace(gating_weights=inst.gating_weights[:, :, inv])


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 1000))
def test_exact_is_invariant_to_relabelling_devices(seed, perm_seed):
    inst = generate("wdmoe-sim", seed=seed, layers=1, tokens=20, experts=4, devices=4)
    perm = np.random.default_rng(perm_seed).permutation(4)
    other = _relabel(inst, perm)
    a = solve(SelectionProblem(inst), "exact")
    b = solve(SelectionProblem(other), "exact")
    assert b.status == a.status == Status.OPTIMAL
    assert b.wlr_total == pytest.approx(a.wlr_total, rel=1e-7)
    assert b.wlr_upper_bound == pytest.approx(a.wlr_upper_bound, rel=1e-7)


def test_time_limit_returns_the_incumbent_with_a_bound():
    problem = SelectionProblem(generate("wdmoe-sim", seed=1, layers=1, tokens=400))
    sol = solve(problem, "exact", time_limit=0.05)
    assert sol.status == Status.TIME_LIMIT
    assert sol.wlr_upper_bound > sol.wlr_total > 0
    assert sol.wlr_total >= max(solve(problem, h).wlr_total for h in HEURISTICS) * (1 - RTOL)


def test_layers_in_worker_processes_give_the_same_optimum():
    problem = SelectionProblem(generate("wdmoe-sim", seed=4, layers=3, tokens=40))
    one = solve(problem, "exact")
    two = solve(problem, "exact", workers=2)
    assert one.status == two.status == Status.OPTIMAL
    assert two.wlr_total == pytest.approx(one.wlr_total, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("support", ["topk", "all"])
def test_exact_equals_the_milp_on_a_mid_size_layer(support):
    """A mid-size layer (Top-K: 64 tokens; all: 96) that the MILP also proves."""
    tokens = 64 if support == "topk" else 96
    problem = SelectionProblem(generate("wdmoe-sim", seed=0, layers=1, tokens=tokens),
                               support=support)
    ref = solve(problem, "milp-highspy", time_limit=120)
    assert ref.status == Status.OPTIMAL
    assert_exact(solve(problem, "exact"), ref.wlr_total)


def test_cli_selection_exact_goes_through_the_registry():
    from wdmoe_opt.registry import get_method

    method = get_method("exact", "p2")
    assert method.exact and method.name == "exact"


def test_shared_placement_refuses_the_options_it_does_not_use():
    from wdmoe_opt import InputError

    problem = SelectionProblem(tiny(1, "shared", tokens=4))
    with pytest.raises(InputError, match="'workers' option of p2/exact"):
        solve(problem, "exact", workers=2)
    assert solve(problem, "exact").status == Status.OPTIMAL


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), devices=st.integers(1, 4), pairs=st.integers(0, 30))
def test_compiled_tables_equal_the_numpy_tables(seed, devices, pairs):
    """``_p2kernel.tables`` (an order kept from row to row) against numpy (a sort per row)."""
    if exact._p2kernel is None:
        pytest.skip("the compiled p2 kernel is not built")
    rng = np.random.default_rng(seed)
    n_pairs = rng.integers(0, pairs + 1, size=devices)
    start = np.r_[0, np.cumsum(n_pairs)]
    w = rng.random(start[-1])
    w[rng.random(start[-1]) < 0.2] = 0.5                  # ties
    lam = rng.random(start[-1]) * rng.choice([0.0, 1e-3, 10.0])
    tau = rng.uniform(1e-3, 1.0, size=devices)
    first = rng.integers(1, n_pairs + 2)
    last = np.minimum(first + rng.integers(-1, n_pairs + 1), n_pairs)
    compiled = exact.tables(w, lam, tau, start, first, last)
    kernel, exact._p2kernel = exact._p2kernel, None
    try:
        reference = exact.tables(w, lam, tau, start, first, last)
    finally:
        exact._p2kernel = kernel
    # sums of <= 30 scores of size <= 1e3: the two summation orders differ by round-off
    np.testing.assert_allclose(compiled, reference, rtol=1e-12, atol=1e-12)
