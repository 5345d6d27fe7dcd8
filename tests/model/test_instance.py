from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import small_instance
from wdmoe_opt import InputError, Instance, ModelSizes, System
from wdmoe_opt.model.instance import token_bits_from_dims, token_flops_from_dims


def make(**changes):
    U, I, J, E = 3, 2, 4, 3
    w = np.full((I, J, E), 1 / 3)
    kw = dict(name="t", model=ModelSizes(I, E, 2, 100.0, 1e6),
              system=System(1e6, 1e-20, 1.0, np.full(U, 1e9), np.full(U, 0.2),
                            np.full(U, 1e-9), np.full(U, 1e-9)),
              gating_weights=w)
    kw.update(changes)
    return Instance(**kw)


def test_paper_sizes_eqs_4_5():
    assert token_bits_from_dims(4096, 16) == 65536
    m, mh, eta = 4096, 14336, 4
    assert token_flops_from_dims(m, mh, eta) == 4 * m * mh + 2 * mh * m + eta * mh + mh


def test_identity_placement_is_default_and_arrays_are_read_only():
    inst = make()
    assert inst.identity_placement
    assert (inst.placement == np.arange(3)).all()
    with pytest.raises(ValueError):
        inst.gating_weights[0, 0, 0] = 1.0


@pytest.mark.parametrize("changes, field", [
    (dict(gating_weights=np.full((2, 4, 2), 0.5)), "gating.weights"),
    (dict(gating_weights=np.where(np.arange(3) == 0, np.nan, 0.5) * np.ones((2, 4, 3))),
     "gating.weights[0][0][0]"),
    (dict(gating_weights=np.full((2, 4, 3), 0.5)), "gating.weights[0][0]"),
    (dict(placement=[[0, 1, 7], [0, 1, 2]]), "placement[0][2]"),
    (dict(placement=[[0, 1], [0, 1]]), "placement"),
    (dict(name=""), "name"),
])
def test_bad_instances_name_the_field(changes, field):
    with pytest.raises(InputError) as err:
        make(**changes)
    assert err.value.field == field
    assert str(err.value).startswith(field)


@pytest.mark.parametrize("kwargs, field", [
    (dict(tx_power_w=np.array([0.2, -1.0, 0.2])), "system.devices[1].tx_power_w"),
    (dict(compute_flops=np.array([1e9, 1e9, np.inf])), "system.devices[2].compute_flops"),
    (dict(gain_up=np.ones(2)), "system.devices[*].gain_up"),
    (dict(total_bandwidth_hz=-5.0), "system.total_bandwidth_hz"),
])
def test_bad_systems_name_the_field(kwargs, field):
    base = dict(total_bandwidth_hz=1e6, noise_psd_w_per_hz=1e-20, bs_power_w=1.0,
                compute_flops=np.full(3, 1e9), tx_power_w=np.full(3, 0.2),
                gain_down=np.full(3, 1e-9), gain_up=np.full(3, 1e-9))
    base.update(kwargs)
    with pytest.raises(InputError) as err:
        System(**base)
    assert err.value.field == field


def test_top_k_above_experts_is_rejected():
    with pytest.raises(InputError, match="model.top_k"):
        ModelSizes(2, 3, 4, 1.0, 1.0)


def test_per_layer_gains_need_one_row_per_layer():
    s = System(1e6, 1e-20, 1.0, np.full(3, 1e9), np.full(3, 0.2), np.full((5, 3), 1e-9),
               np.full(3, 1e-9))
    with pytest.raises(InputError, match="one row per layer"):
        make(system=s)


def test_content_hash_ignores_name_but_not_content():
    a, b = make(), make(name="other")
    assert a.content_hash == b.content_hash
    w = np.full((2, 4, 3), 1 / 3)
    w[0, 0] = [0.5, 0.25, 0.25]
    assert make(gating_weights=w).content_hash != a.content_hash


def test_a_link_budget_that_overflows_is_refused_naming_the_power():
    system = small_instance().system
    with pytest.raises(InputError, match="system.bs_power_w .*overflows the link budget"):
        replace(system, bs_power_w=1e308)
