"""The batch API equals N per-call solves (P3 and the P2 selections)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples, small_instance
from wdmoe_opt import BandwidthProblem, InputError, Selection, SelectionProblem, batch, solve
from wdmoe_opt.bandwidth.certificate import compiled_kernel
from wdmoe_opt.model import latency as lat
from wdmoe_opt.solution import relative_gap

TOL = 1e-9
#: Round-off allowance of a sum of doubles: 64 units in the last place, relative.
ULPS = 64 * np.finfo(np.float64).eps


def _selections(inst):
    """Top-K, one with an idle device (expert 3 never chosen), one with a single device."""
    w = np.array(inst.gating_weights)
    w[..., 3] = -1.0
    one = np.zeros(w.shape, dtype=bool)
    one[..., 0] = True
    return [Selection.topk(inst), Selection(batch.topk_masks(w, 1)), Selection(one)]


def _channels(inst, n, rng):
    shape = (n,) + inst.system.gain_down.shape
    return (inst.system.gain_down * rng.exponential(size=shape),
            inst.system.gain_up * rng.exponential(size=shape))


def _random_batch(seed, devices, layers, fast, idle, n, spread=3):
    """``(inst, sel, gain_down, gain_up, batch)``: ``n`` channels over ``2 spread`` orders
    of magnitude, up to ``idle`` idle devices."""
    inst = small_instance(seed=seed, devices=devices, experts=devices, layers=layers,
                          top_k=1, fast_fading=fast)
    w = np.array(inst.gating_weights)
    w[..., devices - min(idle, devices - 1):] = -1.0
    sel = Selection(batch.topk_masks(w, 1))
    rng = np.random.default_rng(seed)
    shape = (n,) + inst.system.gain_down.shape
    gd = inst.system.gain_down * 10 ** rng.uniform(-spread, spread, shape)
    gu = inst.system.gain_up * 10 ** rng.uniform(-spread, spread, shape)
    return inst, sel, gd, gu, batch.P3Batch.from_channels(inst, sel, gd, gu)


def _assert_same(res, n, sol):
    """Same status, and objective and bound equal as values, as the per-call ``p3/exact``.

    The two paths normalize by ``T0`` summed in another order, so on a flat optimum
    their allocations may differ far above round-off while their values cannot: each
    objective lies above the other's certified bound, and the two objectives agree
    within the larger certified gap (plus the sums' round-off).
    """
    assert res.status[n] == sol.status.value
    roundoff = 1e-12
    assert res.objective_s[n] >= sol.lower_bound_s * (1 - roundoff)
    assert sol.objective_s >= res.lower_bound_s[n] * (1 - roundoff)
    gap = max(res.gap[n], sol.gap) + roundoff
    np.testing.assert_allclose(res.objective_s[n], sol.objective_s, rtol=gap)
    np.testing.assert_allclose(res.lower_bound_s[n], sol.lower_bound_s, rtol=gap)
    np.testing.assert_array_equal(res.bandwidth_hz[n] > 0, sol.bandwidth_hz > 0)
    np.testing.assert_allclose(res.bandwidth_hz[n].sum(), sol.bandwidth_hz.sum(), rtol=1e-12)


@pytest.mark.parametrize("fast_fading", [False, True])
def test_batch_equals_per_call_solves_over_channels(fast_fading, rng):
    inst = small_instance(fast_fading=fast_fading)
    for sel in _selections(inst):
        gd, gu = _channels(inst, 6, rng)
        res = batch.solve_p3(batch.P3Batch.from_channels(inst, sel, gd, gu), tol=TOL)
        assert res.bandwidth_hz.shape == (6, inst.n_devices)
        for n in range(6):
            one = inst.with_system(gain_down=gd[n], gain_up=gu[n])
            _assert_same(res, n, solve(BandwidthProblem(one, sel), "exact", tol=TOL))


def test_batch_of_instances_mixes_idle_devices_and_threads():
    insts = [small_instance(seed=s) for s in range(4)]
    sels = [_selections(i)[s % 3] for s, i in enumerate(insts)]
    p3 = batch.P3Batch.from_instances(insts, sels)
    for workers in (1, 3):
        res = batch.solve_p3(p3, workers=workers)
        for n, (inst, sel) in enumerate(zip(insts, sels, strict=True)):
            _assert_same(res, n, solve(BandwidthProblem(inst, sel), "exact"))
    # idle devices get nothing; the single-device case takes everything, its own bound
    assert res.bandwidth_hz[1, 3] == 0.0
    assert res.bandwidth_hz[2, 0] == pytest.approx(insts[2].system.total_bandwidth_hz)
    assert res.gap[2] == 0.0 and (res.gap <= TOL).all()


def test_batch_objective_is_the_model_latency(rng):
    inst = small_instance(fast_fading=True)
    sel = Selection.topk(inst)
    gd, gu = _channels(inst, 3, rng)
    p3 = batch.P3Batch.from_channels(inst, sel, gd, gu)
    bw = rng.dirichlet(np.ones(inst.n_devices), size=3) * inst.system.total_bandwidth_hz
    for n in range(3):
        one = inst.with_system(gain_down=gd[n], gain_up=gu[n])
        np.testing.assert_allclose(p3.objective_s(bw)[n], lat.total_latency_s(one, sel, bw[n]),
                                   rtol=1e-14)


def test_batch_rejects_mismatched_shapes(instance):
    sel = Selection.topk(instance)
    with pytest.raises(InputError, match="gain_down"):
        batch.P3Batch.from_channels(instance, sel, np.ones((2, 3)), np.ones((2, 3)))
    other = small_instance(devices=5, experts=5)
    with pytest.raises(InputError, match=r"instances\[1\]"):
        batch.P3Batch.from_instances([instance, other], [sel, Selection.topk(other)])
    one = batch.P3Batch.from_instances([instance], [sel])
    with pytest.raises(InputError, match="compute_s"):
        batch.P3Batch(one.tokens, one.pairs, one.signal_w, 0 * one.compute_s, one.token_bits,
                      one.total_bandwidth_hz, one.noise_psd_w_per_hz)
    with pytest.raises(InputError, match="workers"):
        batch.solve_p3(one, workers=0)
    with pytest.raises(InputError, match="tol"):
        batch.solve_p3(one, tol=-1.0)


def test_batch_selections_equal_per_call_methods():
    insts = [small_instance(seed=s, top_k=2) for s in range(3)]
    masks = batch.topk_masks(np.stack([i.gating_weights for i in insts]), 2)
    alg1 = batch.alg1_masks(insts)
    u, p = batch.loads(insts[0], alg1)
    for n, inst in enumerate(insts):
        np.testing.assert_array_equal(masks[n], Selection.topk(inst).mask)
        ref = solve(SelectionProblem(inst), "alg1")
        np.testing.assert_array_equal(alg1[n], ref.selection.mask)
        ru, rp = lat.device_loads(inst, ref.selection)
        np.testing.assert_array_equal(u[n], ru)
        np.testing.assert_array_equal(p[n], rp)


def test_batch_loads_under_shared_placement():
    inst = small_instance(experts=6, devices=3, placement="round-robin")
    masks = batch.topk_masks(inst.gating_weights[None], 2)
    u, p = batch.loads(inst, masks)
    ru, rp = lat.device_loads(inst, Selection(masks[0]))
    np.testing.assert_array_equal(u[0], ru)
    np.testing.assert_array_equal(p[0], rp)


@pytest.mark.parametrize("fast_fading", [False, True])
def test_batch_robust_equals_p3_robust(fast_fading, rng):
    inst = small_instance(fast_fading=fast_fading)
    sel = _selections(inst)[1]                                   # with an idle device
    gd, gu = _channels(inst, 3, rng)
    p3 = batch.P3Batch.from_channels(inst, sel, gd, gu)
    res = batch.solve_p3_robust(p3, sigma_db=3.0, scenarios=5, seed=7)
    one = inst.with_system(gain_down=gd[0], gain_up=gu[0])
    ref = solve(BandwidthProblem(one, sel), "robust", sigma_db=3.0, scenarios=5, seed=7)
    assert (res.status == "optimal").all()
    # both certified: within p3/robust's tol (1e-7) + the batch's 1e-9 of the SAA optimum
    np.testing.assert_allclose(res.objective_s[0], ref.extra["robust_objective_s"],
                               rtol=1.1e-7)
    assert res.lower_bound_s[0] <= ref.extra["robust_objective_s"] * (1 + 1e-12)
    assert ref.extra["robust_lower_bound_s"] <= res.objective_s[0] * (1 + 1e-12)


@settings(max_examples=examples(15), deadline=None)
@given(seed=st.integers(0, 10_000), devices=st.integers(2, 6), layers=st.integers(1, 5),
       fast=st.booleans(), idle=st.integers(0, 2), n=st.integers(1, 4))
def test_batch_equals_per_call_on_random_shapes(seed, devices, layers, fast, idle, n):
    """Random shapes, channels spread over 6 orders of magnitude, up to two idle devices."""
    inst, sel, gd, gu, p3 = _random_batch(seed, devices, layers, fast, idle, n)
    res = batch.solve_p3(p3)
    for j in range(n):
        one = inst.with_system(gain_down=gd[j], gain_up=gu[j])
        _assert_same(res, j, solve(BandwidthProblem(one, sel), "exact"))


@settings(max_examples=examples(15), deadline=None)
@given(seed=st.integers(0, 10_000), devices=st.integers(2, 6), data=st.data(),
       layers=st.integers(1, 4), fast=st.booleans(), top_k=st.integers(1, 2),
       n=st.integers(1, 4))
def test_batch_equals_per_call_with_local_devices(seed, devices, data, layers, fast, top_k, n):
    """``local`` devices (SPEC §6; all of them possibly): 0 Hz, their compute time a
    floor, in the batch as per call; the batch's objective is the model's."""
    local = data.draw(st.integers(1, devices), label="local")
    inst = small_instance(seed=seed, devices=devices, experts=devices, layers=layers,
                          top_k=top_k, fast_fading=fast, local_devices=local)
    sel = Selection.topk(inst)
    rng = np.random.default_rng(seed)
    shape = (n,) + inst.system.gain_down.shape
    gd = inst.system.gain_down * 10 ** rng.uniform(-3, 3, shape)
    gu = inst.system.gain_up * 10 ** rng.uniform(-3, 3, shape)
    p3 = batch.P3Batch.from_channels(inst, sel, gd, gu)
    res = batch.solve_p3(p3)
    assert (res.status == "optimal").all()
    np.testing.assert_allclose(res.objective_s, p3.objective_s(res.bandwidth_hz), rtol=1e-13)
    linked_load = (p3.tokens[0] > 0).any(axis=0) & ~inst.system.local_mask
    if linked_load.any():
        assert (res.bandwidth_hz[:, ~linked_load] == 0).all()
    for j in range(n):
        one = inst.with_system(gain_down=gd[j], gain_up=gu[j])
        sol = solve(BandwidthProblem(one, sel), "exact", tol=TOL)
        # values, not arg-mins: on a flat optimum the two points may differ (T0 is summed
        # in another order), but both are certified within TOL of the one optimum
        assert sol.status.value == "optimal"
        # (each side's objective recomputed in seconds by its own sums: a few ulps)
        assert res.lower_bound_s[j] <= sol.objective_s * (1 + ULPS)
        assert sol.lower_bound_s <= res.objective_s[j] * (1 + ULPS)
        np.testing.assert_allclose(res.objective_s[j], sol.objective_s, rtol=TOL)


def test_batch_of_instances_needs_the_same_local_devices():
    a, b = small_instance(local_devices=1), small_instance(local_devices=2)
    with pytest.raises(InputError, match=r"instances\[1\]"):
        batch.P3Batch.from_instances([a, b], [Selection.topk(a), Selection.topk(b)])
    one = batch.P3Batch.from_instances([a], [Selection.topk(a)])
    with pytest.raises(InputError, match="local"):
        batch.P3Batch(one.tokens, one.pairs, one.signal_w, one.compute_s, one.token_bits,
                      one.total_bandwidth_hz, one.noise_psd_w_per_hz, local=np.ones(3, bool))


@settings(max_examples=examples(25), deadline=None)
@given(seed=st.integers(0, 10_000), devices=st.integers(2, 9), layers=st.integers(1, 6),
       fast=st.booleans(), idle=st.integers(0, 3), n=st.integers(1, 5),
       tol=st.sampled_from([1e-9, 1e-6, 1e-3]))
def test_compiled_certificate_agrees_with_the_model_and_finish_rule(seed, devices, layers,
                                                                    fast, idle, n, tol):
    """``solve_batch`` answers in C; re-derive it in numpy: the objective is the model's
    eq. (19) at the returned allocation, the allocation is on the budget, the bound is
    at most the objective, and the status is ``common.finish``'s rule on them."""
    p3 = _random_batch(seed, devices, layers, fast, idle, n)[-1]
    res = batch.solve_p3(p3, tol=tol)
    np.testing.assert_allclose(res.bandwidth_hz.sum(axis=1), p3.total_bandwidth_hz, rtol=1e-13)
    assert (res.bandwidth_hz >= 0).all()
    assert ((res.bandwidth_hz > 0) == (p3.tokens > 0).any(axis=1)).all()
    np.testing.assert_allclose(res.objective_s, p3.objective_s(res.bandwidth_hz), rtol=1e-13)
    assert (res.lower_bound_s <= res.objective_s).all()
    for j in range(n):
        gap = relative_gap(res.objective_s[j], res.lower_bound_s[j])
        assert res.status[j] == ("optimal" if gap <= tol else "feasible")


def test_time_and_iteration_limits_are_reported_like_per_call(rng):
    """A deadline already past stops every solve after one iteration (``time_limit``, a
    certified point); one iteration ends ``feasible``: both as ``p3/exact``."""
    inst = small_instance(fast_fading=True)
    sel = Selection.topk(inst)
    gd, gu = _channels(inst, 4, rng)
    p3 = batch.P3Batch.from_channels(inst, sel, gd, gu)
    for limits, status in (({"time_limit": 1e-12}, "time_limit"), ({"max_iter": 1}, "feasible")):
        res = batch.solve_p3(p3, **limits)
        assert (res.status == status).all() and (res.iterations == 1).all()
        for n in range(4):
            one = inst.with_system(gain_down=gd[n], gain_up=gu[n])
            _assert_same(res, n, solve(BandwidthProblem(one, sel), "exact", **limits))


def test_shared_and_per_instance_loads_give_the_same_answer(rng):
    """Loads and compute times broadcast over the batch (passed once to the kernel) or
    stored per instance: the same arrays out."""
    inst = small_instance()
    sel = _selections(inst)[1]
    gd, gu = _channels(inst, 5, rng)
    shared = batch.P3Batch.from_channels(inst, sel, gd, gu)
    assert shared.tokens.strides[0] == 0
    copied = batch.P3Batch(*(np.array(a) for a in (shared.tokens, shared.pairs,
                                                    shared.signal_w, shared.compute_s)),
                           shared.token_bits, shared.total_bandwidth_hz,
                           shared.noise_psd_w_per_hz)
    a, b = batch.solve_p3(shared), batch.solve_p3(copied, workers=2)
    for field in ("bandwidth_hz", "objective_s", "lower_bound_s", "status", "iterations"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_compiled_batch_entry_rejects_bad_shapes():
    kernel = compiled_kernel()
    tokens, compute = np.ones((1, 3, 4)), np.ones((1, 4))
    good = [tokens, tokens, compute, np.ones((2, 2, 1, 4)), np.empty((2, 4)), np.empty((4, 2))]
    scalars = (8.0, 1e6, 1e-20, 1e-9, 50, 1.0, 1e-12, 0, 2)
    kernel.solve_batch(*good, *scalars)
    for index, bad in ((3, np.ones((2, 2, 2, 4))), (2, np.ones((3, 4))),
                       (0, np.ones((3, 3, 4))), (4, np.empty((2, 3)))):
        args = list(good)
        args[index] = bad
        with pytest.raises(ValueError):
            kernel.solve_batch(*args, *scalars)
    with pytest.raises(ValueError, match="start <= stop"):
        kernel.solve_batch(*good, *scalars[:-1], 3)


def test_a_kernel_failure_is_an_error_at_the_uniform_split(rng):
    """A received power near the float range (per call refused as an overflowing link
    budget) breaks the interior point before a certified point: that instance is
    ``error`` at the uniform split over its loaded devices, without a bound, as
    ``common.finish`` reports it; the other instances are solved as usual."""
    inst = small_instance(layers=3)
    sel = _selections(inst)[1]                                   # device 3 idle
    gd, gu = _channels(inst, 3, rng)
    gd[1, 0] = 1e300 / inst.system.bs_power_w
    p3 = batch.P3Batch.from_channels(inst, sel, gd, gu)
    res = batch.solve_p3(p3)
    assert res.status[1] == "error" and np.isnan(res.lower_bound_s[1])
    loaded = (p3.tokens[1] > 0).any(axis=0)
    np.testing.assert_allclose(res.bandwidth_hz[1], loaded / loaded.sum()
                               * p3.total_bandwidth_hz, rtol=1e-15)
    with np.errstate(over="ignore"):                             # S / (N0 B) overflows
        model = p3.objective_s(res.bandwidth_hz)
    np.testing.assert_allclose(res.objective_s, model, rtol=1e-13)
    for n in (0, 2):
        one = inst.with_system(gain_down=gd[n], gain_up=gu[n])
        _assert_same(res, n, solve(BandwidthProblem(one, sel), "exact"))
