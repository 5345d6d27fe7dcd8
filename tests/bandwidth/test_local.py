"""P3 with ``local`` devices (SPEC §6: no wireless link): 0 Hz, their compute time a
per-layer floor (:mod:`wdmoe_opt.bandwidth.structure`).

Every P3 method must give the same optimum; ``p3/exact`` is checked against a brute
force on two and three linked devices that uses only the model's evaluator.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from wdmoe_opt import BandwidthProblem, Selection, solve
from wdmoe_opt.bandwidth.certificate import dual_bound
from wdmoe_opt.bandwidth.exact import interior_point
from wdmoe_opt.bandwidth.structure import P3Data
from wdmoe_opt.generate import generate
from wdmoe_opt.model import latency as lat

TOL = 1e-9
#: Round-off allowance of a sum of doubles: 64 units in the last place, relative.
ULPS = 64 * np.finfo(np.float64).eps


def _problem(seed, devices, local, layers=3, tokens=6, fast=False, top_k=2, **kw):
    inst = generate("wdmoe-sim", seed=seed, layers=layers, tokens=tokens, devices=devices,
                    experts=devices, top_k=min(top_k, devices), local_devices=local,
                    fast_fading=fast, **kw)
    return BandwidthProblem(inst, Selection.topk(inst))


@st.composite
def local_problems(draw):
    devices = draw(st.integers(2, 6))
    return _problem(draw(st.integers(0, 10_000)), devices, draw(st.integers(1, devices - 1)),
                    layers=draw(st.integers(1, 4)), tokens=draw(st.integers(1, 10)),
                    fast=draw(st.booleans()), top_k=draw(st.integers(1, 3)))


def _zoom_min(f, shape, levels=14, points=33):
    """``min f`` over ``(0, 1)`` for a convex ``f`` (``[..., P]`` -> ``[..., P]``,
    vectorized over the leading ``shape``): a grid, then the two cells around its
    minimum, ``levels`` times (exact for convex functions)."""
    lo, hi = np.zeros(shape), np.ones(shape)
    grid = np.linspace(0.0, 1.0, points)
    for _ in range(levels):
        x = lo[..., None] + (hi - lo)[..., None] * grid
        with np.errstate(divide="ignore", invalid="ignore"):
            v = f(x)
        j = v.argmin(axis=-1)[..., None]
        step = (hi - lo) / (points - 1)
        mid = np.take_along_axis(x, j, axis=-1)[..., 0]
        lo, hi = np.maximum(mid - step, 0.0), np.minimum(mid + step, 1.0)
    return v.min(axis=-1)


def _brute_force(prob, linked) -> float:
    """The P3 optimum over the loaded linked devices ``linked`` (2 or 3 of them), by
    the evaluator (eqs. 10-11, 19) alone; every other device gets 0 Hz. With three
    devices the inner minimum over the split of the rest is convex in the outer share."""
    inst, sel = prob.instance, prob.selection
    B = inst.system.total_bandwidth_hz

    def latency(shares):          # shares [..., len(linked)] -> T [...]
        bw = np.zeros(shares.shape[:-1] + (inst.n_devices,))
        bw[..., linked] = shares * B
        return lat.total_latency_s(inst, sel, bw)

    if len(linked) == 2:
        return float(_zoom_min(lambda x: latency(np.stack([x, 1 - x], axis=-1)), ()))

    def outer(x):                 # x [P]: the first device's share
        def inner(t):             # t [P, Q]: the second's fraction of the rest
            xx = np.broadcast_to(x[..., None], t.shape)
            return latency(np.stack([xx, (1 - xx) * t, (1 - xx) * (1 - t)], axis=-1))
        return _zoom_min(inner, x.shape)
    return float(_zoom_min(outer, ()))


@settings(max_examples=examples(15), deadline=None)
@given(local_problems())
def test_every_method_gives_the_same_optimum_with_local_devices(prob):
    best = solve(prob, "exact", tol=TOL)
    assert str(best.status) == "optimal", best.extra
    assert best.lower_bound_s <= best.objective_s
    local = prob.instance.system.local_mask
    assert (best.bandwidth_hz[local] == 0).all() or not P3Data.from_problem(prob).n_loaded
    for name in ("slsqp", "cvxpy"):
        sol = solve(prob, name)
        assert sol.objective_s >= best.lower_bound_s
        assert sol.lower_bound_s <= best.objective_s
        assert best.objective_s <= sol.objective_s * (1 + TOL)
        # SLSQP's stopping rule (ftol) may leave its certified gap just above tol:
        # then it is honestly `feasible`; cvxpy's tol (1e-6) is always met here
        assert str(sol.status) == "optimal" or name == "slsqp", (name, sol.extra)
        if str(sol.status) == "optimal":
            # certified by its own bound: T - lb <= tol T and lb <= the optimum <= best
            assert sol.objective_s * (1 - sol.tolerance) <= best.objective_s * (1 + ULPS)


@pytest.mark.parametrize("devices, local, seed", [(3, 1, 0), (4, 2, 1), (4, 1, 2), (5, 2, 3),
                                                  (3, 1, 4)])
@pytest.mark.parametrize("fast", [False, True])
def test_exact_equals_brute_force_on_two_or_three_linked_devices(devices, local, seed, fast):
    prob = _problem(seed, devices, local, fast=fast, top_k=devices)   # every device loaded
    data = P3Data.from_problem(prob)
    assert data.n_loaded == devices - local and data.has_floor
    sol = solve(prob, "exact", tol=TOL)
    assert str(sol.status) == "optimal", sol.extra
    brute = _brute_force(prob, data.loaded)
    # brute >= the optimum >= the certified bound; exact within tol of the optimum
    assert sol.lower_bound_s <= brute * (1 + ULPS)
    assert sol.objective_s <= brute * (1 + TOL)
    assert brute <= sol.objective_s * (1 + TOL)


def test_a_floor_that_binds_enters_the_bound():
    """A local device much slower than the links: it is every layer's bottleneck, so
    the optimum is the sum of its times whatever the split, and the certificate must
    carry the floor's multipliers to reach it."""
    prob = _problem(5, 4, 1, compute_flops=(1e9, 1e14, 1e14, 1e14))
    inst = prob.instance
    u, p = lat.device_loads(inst, prob.selection)
    floor = (p[:, 0] * lat.compute_time_per_token_s(inst)[0]).sum()
    sol = solve(prob, "exact", tol=TOL)
    assert str(sol.status) == "optimal"
    assert sol.objective_s == pytest.approx(floor, rel=ULPS)
    data = P3Data.from_problem(prob)
    res = interior_point(data, tol=TOL)
    with_floor, _ = dual_bound(data, res.lam, res.nu, res.b, lam_floor=res.lam_floor)
    assert with_floor == pytest.approx(res.bound, rel=ULPS)
    assert with_floor <= data.objective(res.b)


def test_only_local_devices_loaded_is_their_compute_time():
    prob = _problem(0, 3, 3)
    inst = prob.instance
    _, p = lat.device_loads(inst, prob.selection)
    expected = (p * lat.compute_time_per_token_s(inst)).max(axis=1).sum()
    for name in ("exact", "slsqp", "cvxpy"):
        sol = solve(prob, name)
        assert str(sol.status) == "optimal"
        assert sol.objective_s == pytest.approx(expected, rel=ULPS)
        assert sol.lower_bound_s == sol.objective_s


def test_one_linked_device_takes_the_whole_band():
    prob = _problem(2, 3, 2, top_k=3)
    sol = solve(prob, "exact")
    assert str(sol.status) == "optimal" and sol.lower_bound_s == sol.objective_s
    B = prob.instance.system.total_bandwidth_hz
    np.testing.assert_array_equal(sol.bandwidth_hz, [0.0, 0.0, B])


def test_normalized_objective_matches_the_model():
    prob = _problem(7, 5, 2, top_k=3)
    data = P3Data.from_problem(prob)
    b = np.array([0.5, 0.3, 0.2])
    T = lat.total_latency_s(prob.instance, prob.selection, data.bandwidth_hz(b))
    assert data.objective(b) * data.time_scale_s == pytest.approx(T, rel=1e-12)
