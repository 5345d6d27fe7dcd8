"""The latency model against the paper's equations, and its structural properties."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples, small_instance
from wdmoe_opt import Selection
from wdmoe_opt.model import latency as lat


def test_rate_and_times_match_hand_computation(instance):
    b = lat.uniform_bandwidth_hz(instance)
    s, m = instance.system, instance.model
    k = 2
    down = b[k] * math.log2(1 + s.bs_power_w * s.gain_down[k] / (s.noise_psd_w_per_hz * b[k]))
    up = b[k] * math.log2(1 + s.tx_power_w[k] * s.gain_up[k] / (s.noise_psd_w_per_hz * b[k]))
    c = lat.comm_time_per_token_s(instance, b)
    assert math.isclose(c[0, k], m.token_bits / down + m.token_bits / up, rel_tol=1e-12)
    a = lat.compute_time_per_token_s(instance)
    assert math.isclose(a[k], m.token_flops / s.compute_flops[k], rel_tol=1e-12)


def test_identity_placement_reduces_to_the_paper(instance):
    sel = Selection.topk(instance)
    b = lat.uniform_bandwidth_hz(instance)
    u, p = lat.device_loads(instance, sel)
    assert (u == p).all()
    q = sel.mask.sum(axis=1)                                  # eq. 9: q^i_k
    per_token = lat.comm_time_per_token_s(instance, b) + lat.compute_time_per_token_s(instance)
    t = q * per_token                                          # eq. 10
    assert np.allclose(lat.device_time_s(instance, sel, b), t)
    assert np.allclose(lat.layer_latency_s(instance, sel, b), t.max(axis=1))  # eq. 11
    num = (sel.mask * instance.gating_weights).sum(axis=1)
    expected = np.divide(num, t, out=np.zeros_like(t), where=t > 0)
    assert np.allclose(lat.wlr(instance, sel, b), expected)  # eq. 12


def test_shared_placement_sends_a_token_once_per_device():
    inst = small_instance(experts=4, devices=2, placement="round-robin")  # experts 0,2 on dev 0
    mask = np.zeros(inst.gating_weights.shape, dtype=bool)
    mask[:, :, 0] = mask[:, :, 2] = True
    u, p = lat.device_loads(inst, Selection(mask))
    J = inst.n_tokens
    assert (u[:, 0] == J).all() and (p[:, 0] == 2 * J).all()
    assert (u[:, 1] == 0).all() and (p[:, 1] == 0).all()
    t = lat.device_time_s(inst, Selection(mask), lat.uniform_bandwidth_hz(inst))
    c = lat.comm_time_per_token_s(inst, lat.uniform_bandwidth_hz(inst))
    a = lat.compute_time_per_token_s(inst)
    assert np.allclose(t[:, 0], J * c[:, 0] + 2 * J * a[0])
    assert (t[:, 1] == 0).all()


def test_zero_bandwidth_to_a_loaded_device_is_infinite_and_idle_is_free(instance):
    sel = Selection.topk(instance)
    b = np.zeros(instance.n_devices)
    b[0] = instance.system.total_bandwidth_hz
    t = lat.device_time_s(instance, sel, b)
    u, _ = lat.device_loads(instance, sel)
    assert np.isinf(t[:, 1:][u[:, 1:] > 0]).all()
    assert (t[u == 0] == 0).all()


def test_topk_retained_weight_is_one_and_dropping_lowers_it(instance):
    sel = Selection.topk(instance)
    assert math.isclose(lat.retained_weight(instance, sel), 1.0)
    mask = Selection.topk(instance, 1).mask
    assert lat.retained_weight(instance, Selection(mask)) < 1.0
    assert lat.expert_invocations(sel) == instance.n_layers * instance.n_tokens * 2


@settings(max_examples=examples(25), deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(0, 3), factor=st.floats(1.01, 10.0),
       fast=st.booleans())
def test_latency_is_non_increasing_in_every_device_bandwidth(seed, k, factor, fast):
    inst = small_instance(seed, fast_fading=fast)
    sel = Selection.topk(inst)
    b = np.random.default_rng(seed).dirichlet(np.ones(4)) * inst.system.total_bandwidth_hz
    more = b.copy()
    more[k] *= factor
    t0 = lat.device_time_s(inst, sel, b)
    t1 = lat.device_time_s(inst, sel, more)
    assert (t1 <= t0 * (1 + 1e-12)).all()
    assert lat.total_latency_s(inst, sel, more) <= lat.total_latency_s(inst, sel, b) * (1 + 1e-12)


@settings(max_examples=examples(20), deadline=None)
@given(seed=st.integers(0, 10_000), fast=st.booleans())
def test_relabelling_devices_changes_nothing(seed, fast):
    inst = small_instance(seed, fast_fading=fast)
    perm = np.random.default_rng(seed).permutation(inst.n_devices)
    s = inst.system

    def g(x):
        return x[..., perm]

    relabelled = inst.replace(
        system=s.__class__(s.total_bandwidth_hz, s.noise_psd_w_per_hz, s.bs_power_w,
                           s.compute_flops[perm], s.tx_power_w[perm], g(s.gain_down),
                           g(s.gain_up)),
        gating_weights=inst.gating_weights[..., perm], placement=None)
    b = np.random.default_rng(seed + 1).dirichlet(np.ones(4)) * s.total_bandwidth_hz
    sel = Selection.topk(inst)
    sel_r = Selection(sel.mask[..., perm])
    assert np.allclose(lat.layer_latency_s(inst, sel, b),
                       lat.layer_latency_s(relabelled, sel_r, b[perm]))
    assert math.isclose(lat.wlr(inst, sel, b).sum(), lat.wlr(relabelled, sel_r, b[perm]).sum())


def test_bandwidth_broadcasts_over_many_allocations(instance):
    sel = Selection.topk(instance)
    bs = np.random.default_rng(0).dirichlet(np.ones(4), size=5) * 1e8
    many = lat.total_latency_s(instance, sel, bs)
    assert many.shape == (5,)
    assert np.allclose(many, [lat.total_latency_s(instance, sel, b) for b in bs])


def test_memoized_loads_and_weights_follow_the_instance():
    a = small_instance(1)
    b = small_instance(2)                                   # same shape, other weights
    c = small_instance(1, experts=4, devices=2, placement="round-robin")
    sel = Selection.topk(a)
    for inst in (a, b, c, a):
        fresh = Selection(sel.mask)                          # no memo
        assert np.array_equal(lat.device_loads(inst, sel)[0], lat.device_loads(inst, fresh)[0])
        assert np.allclose(lat.selected_weight(inst, sel), lat.selected_weight(inst, fresh))
    assert lat.device_loads(c, sel)[0].shape == (4, 2)


def test_energy_is_transmit_plus_optional_compute(instance):
    sel = Selection.topk(instance)
    b = lat.uniform_bandwidth_hz(instance)
    u, p = lat.device_loads(instance, sel)
    down, up = lat.link_rates_bps(instance, b)
    s, L = instance.system, instance.model.token_bits
    expected_tx = u * L * (s.bs_power_w / down + s.tx_power_w / up)
    assert np.allclose(lat.transmit_energy_j(instance, sel, b), expected_tx)
    assert math.isclose(lat.energy_j(instance, sel, b), expected_tx.sum())
    e = np.full(instance.n_devices, 1e-12)
    with_compute = instance.replace(system=s.__class__(
        s.total_bandwidth_hz, s.noise_psd_w_per_hz, s.bs_power_w, s.compute_flops,
        s.tx_power_w, s.gain_down, s.gain_up, compute_j_per_flop=e))
    extra = (p * instance.model.token_flops * e).sum()
    assert math.isclose(lat.energy_j(with_compute, sel, b), expected_tx.sum() + extra)
    fewer = Selection(Selection.topk(instance, 1).mask)
    assert lat.energy_j(instance, fewer, b) < lat.energy_j(instance, sel, b)


@settings(max_examples=examples(40), deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 6), st.integers(2, 7),
       st.integers(1, 4))
def test_loads_and_weights_match_a_loop_over_tokens(seed, layers, tokens, experts, devices):
    """Eq. (9) and the WLR numerator under any placement, against the definition."""
    rng = np.random.default_rng(seed)
    placement = rng.integers(0, devices, size=(layers, experts))
    inst = small_instance(seed, layers=layers, tokens=tokens, experts=experts,
                          devices=devices, placement="round-robin").replace(placement=placement)
    sel = Selection(rng.random(inst.gating_weights.shape) < 0.5)
    u, p = lat.device_loads(inst, sel)
    weight = lat.selected_weight(inst, sel)
    for i in range(layers):
        for k in range(devices):
            on_k = placement[i] == k
            kept = sel.mask[i][:, on_k]
            assert p[i, k] == kept.sum()
            assert u[i, k] == kept.any(axis=1).sum()
            assert np.isclose(weight[i, k], (inst.gating_weights[i][:, on_k] * kept).sum())


@settings(max_examples=examples(60), deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 9), st.integers(1, 9), st.booleans())
def test_topk_mask_keeps_the_k_largest_and_breaks_ties_to_the_lower_index(seed, experts, k,
                                                                          ties):
    from wdmoe_opt.model import topk_mask

    k = min(k, experts)
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 3, size=(5, experts)) / 3.0 if ties else rng.random((5, experts))
    expected = np.zeros(w.shape, dtype=bool)
    order = np.argsort(-w, axis=-1, kind="stable")[:, :k]
    np.put_along_axis(expected, order, True, axis=-1)
    np.testing.assert_array_equal(topk_mask(w, k), expected)
