"""Property tests of P3 (eqs. 19-21) on random instances (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from wdmoe_opt import BandwidthProblem, Instance, Selection, solve
from wdmoe_opt.bandwidth.certificate import dual_bound
from wdmoe_opt.bandwidth.exact import interior_point
from wdmoe_opt.bandwidth.structure import P3Data
from wdmoe_opt.generate import generate
from wdmoe_opt.model import latency as lat

TOL = 1e-9
#: Round-off allowance of a sum of doubles: 64 units in the last place, relative.
ULPS = 64 * np.finfo(np.float64).eps


@st.composite
def problems(draw):
    devices = draw(st.integers(2, 5))
    shared = draw(st.booleans())
    experts = draw(st.integers(2, 7)) if shared else devices
    inst = generate("wdmoe-sim", seed=draw(st.integers(0, 10_000)),
                    layers=draw(st.integers(1, 4)), tokens=draw(st.integers(1, 12)),
                    devices=devices, experts=experts, fast_fading=draw(st.booleans()),
                    placement="round-robin")
    return BandwidthProblem(inst, Selection.topk(inst))


def _optimum(prob) -> float:
    sol = solve(prob, "exact")
    assert str(sol.status) == "optimal", sol.extra
    return sol.objective_s


@settings(max_examples=examples(25), deadline=None)
@given(problems(), st.integers(0, 2**32 - 1))
def test_objective_is_convex_on_segments_of_the_simplex(prob, seed):
    rng = np.random.default_rng(seed)
    inst = prob.instance
    x, y = rng.dirichlet(np.ones(inst.n_devices), size=2) * inst.system.total_bandwidth_hz
    T = [float(lat.total_latency_s(inst, prob.selection, b)) for b in (x, (x + y) / 2, y)]
    assert T[1] <= (T[0] + T[2]) / 2 * (1 + 1e-12)


@settings(max_examples=examples(10), deadline=None)
@given(problems())
def test_exact_bounds_and_beats_every_method(prob):
    best = solve(prob, "exact")
    assert best.gap <= TOL
    for name in ("uniform", "slsqp", "cvxpy"):
        sol = solve(prob, name)
        assert sol.objective_s >= best.lower_bound_s
        assert sol.lower_bound_s is None or sol.lower_bound_s <= best.objective_s
        assert best.objective_s <= sol.objective_s * (1 + TOL)


@settings(max_examples=examples(15), deadline=None)
@given(problems(), st.floats(1.01, 3.0))
def test_optimum_does_not_increase_with_total_bandwidth(prob, factor):
    inst = prob.instance
    wider = inst.with_system(total_bandwidth_hz=inst.system.total_bandwidth_hz * factor)
    assert _optimum(BandwidthProblem(wider, prob.selection)) <= _optimum(prob) * (1 + TOL)


@settings(max_examples=examples(15), deadline=None)
@given(problems(), st.integers(0, 2**32 - 1))
def test_optimum_does_not_increase_when_a_pair_is_removed(prob, seed):
    mask = prob.selection.mask.copy()
    pairs = np.argwhere(mask)
    mask[tuple(pairs[np.random.default_rng(seed).integers(len(pairs))])] = False
    fewer = BandwidthProblem(prob.instance, Selection(mask))
    assert _optimum(fewer) <= _optimum(prob) * (1 + TOL)


def _relabel(inst: Instance, perm: np.ndarray) -> Instance:
    """Device ``perm[k]`` of the copy is device ``k`` of ``inst``."""
    s = inst.system
    inverse = np.argsort(perm)

    def moved(a):
        return None if a is None else a[..., inverse]

    system = s.__class__(s.total_bandwidth_hz, s.noise_psd_w_per_hz, s.bs_power_w,
                         moved(s.compute_flops), moved(s.tx_power_w), moved(s.gain_down),
                         moved(s.gain_up), moved(s.distance_m), moved(s.compute_j_per_flop))
    return inst.replace(system=system, placement=perm[inst.placement])


@settings(max_examples=examples(15), deadline=None)
@given(problems(), st.integers(0, 2**32 - 1))
def test_results_are_invariant_to_relabelling_devices(prob, seed):
    inst = prob.instance
    perm = np.random.default_rng(seed).permutation(inst.n_devices)
    other = _relabel(inst, perm)
    a = solve(prob, "exact")
    b = solve(BandwidthProblem(other, prob.selection), "exact")
    assert abs(a.objective_s - b.objective_s) <= TOL * a.objective_s
    # the optimal split of the copy, read back in the original labels, is as good there
    # (values, not the split itself: the optimum may be flat along the simplex)
    back = float(lat.total_latency_s(inst, prob.selection, b.bandwidth_hz[perm]))
    assert abs(back - b.objective_s) <= ULPS * b.objective_s


@settings(max_examples=examples(15), deadline=None)
@given(problems())
def test_kkt_conditions_hold_at_the_exact_optimum(prob):
    """KKT in values, with residuals bounded by the certified gap: the Lagrangian
    ``L(b, lam, nu) = sum_ik lam t_ik(b_k) + nu (sum b - 1)`` is sandwiched between the
    dual bound and the objective, so both the stationarity residual ``L - g`` (each
    ``b_k`` minimizes its inner function up to it) and the complementary slackness
    ``sum_i (max_k t_ik - sum_k lam_ik t_ik)`` (multipliers on the bottleneck devices)
    are at most the gap ``<= TOL * objective``. Values, not the derivatives: the inner
    functions are flat at their minimum, so derivatives there carry no useful accuracy."""
    data = P3Data.from_problem(prob)
    assume(data.n_loaded >= 2)
    res = interior_point(data, tol=TOL)
    assert res.bound <= res.objective <= res.bound * (1 + TOL)
    t = data.times(res.b)
    lam = res.lam / res.lam.sum(axis=1, keepdims=True)
    assert (lam >= 0).all()
    weighted = float((lam * t).sum())
    lagrangian = weighted + res.nu * (res.b.sum() - 1.0)
    bound, _ = dual_bound(data, res.lam, res.nu, res.b)
    gap = res.objective - res.bound
    slack = ULPS * res.objective
    assert bound - slack <= lagrangian <= res.objective + slack
    assert lagrangian - bound <= gap + slack                          # stationarity
    assert float(t.max(axis=1).sum()) - weighted <= gap + slack       # complementary slackness


@st.composite
def wide_problems(draw):
    """Instances from 1 MHz to 1 GHz of total bandwidth, with fast fading, shared
    placement and idle devices (more devices than the selection loads)."""
    prob = draw(problems())
    inst = prob.instance
    hz = 10.0 ** draw(st.floats(6.0, 9.0))
    inst = inst.with_system(total_bandwidth_hz=hz)
    if draw(st.booleans()):  # leave devices idle: keep one expert per token
        mask = np.zeros_like(prob.selection.mask)
        top = np.argmax(np.where(prob.selection.mask, inst.gating_weights, -np.inf), axis=-1)
        np.put_along_axis(mask, top[..., None], True, axis=-1)
        return BandwidthProblem(inst, Selection(mask))
    return BandwidthProblem(inst, prob.selection)


@settings(max_examples=examples(30), deadline=None)
@given(wide_problems())
def test_the_first_iterate_is_interior_and_the_certificate_holds(prob):
    data = P3Data.from_problem(prob)
    assume(data.n_loaded >= 2)
    first = interior_point(data, tol=TOL, max_iter=1).b   # one step from the start
    assert (first > 0).all() and abs(first.sum() - 1.0) <= 1e-12
    assert np.isfinite(data.objective(first))
    res = interior_point(data, tol=TOL)
    assert str(res.status) == "optimal"
    assert res.bound <= res.objective <= res.bound * (1 + TOL)
    assert (res.b > 0).all() and abs(res.b.sum() - 1.0) <= 1e-9
    # the bound is a bound: no feasible point (uniform, first iterate) beats it
    for point in (data.uniform_point(), first):
        assert res.bound <= data.objective(point)
    sol = solve(prob, "exact")
    assert str(sol.status) == "optimal" and sol.gap <= TOL
