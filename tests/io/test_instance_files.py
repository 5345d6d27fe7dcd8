import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples, small_instance
from wdmoe_opt import InputError
from wdmoe_opt.io import instance_to_dict, read_instance, write_instance


@settings(max_examples=examples(15), deadline=None)
@given(seed=st.integers(0, 1000), fast=st.booleans(), shared=st.booleans(),
       suffix=st.sampled_from([".json", ".npz"]))
def test_round_trip_is_lossless(tmp_path_factory, seed, fast, shared, suffix):
    params = dict(experts=6, devices=3, placement="round-robin") if shared else {}
    inst = small_instance(seed, fast_fading=fast, **params)
    path = tmp_path_factory.mktemp("rt") / f"inst{suffix}"
    write_instance(inst, path)
    back = read_instance(path)
    assert back.content_hash == inst.content_hash
    assert back.name == inst.name
    assert np.array_equal(back.gating_weights, inst.gating_weights)
    assert np.array_equal(back.placement, inst.placement)
    assert np.array_equal(back.system.gain_down, inst.system.gain_down)
    assert dict(back.provenance) == json.loads(json.dumps(dict(inst.provenance)))


def test_model_dims_instead_of_sizes(tmp_path, instance):
    doc = instance_to_dict(instance)
    m = doc["model"]
    del m["token_bits"], m["token_flops"]
    path = tmp_path / "dims.json"
    path.write_text(json.dumps(doc))
    back = read_instance(path)
    assert back.model.token_bits == instance.model.token_bits
    assert back.model.token_flops == instance.model.token_flops


def _write_doc(tmp_path, doc, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(schema="wdmoe-instance/9"), "schema"),
    (lambda d: d["system"]["devices"][1].pop("tx_power_w"), "system.devices[1].tx_power_w"),
    (lambda d: d["system"]["devices"][2].update(gain_up=-1.0), "system.devices[2].gain_up"),
    (lambda d: d["system"]["devices"][0].update(compute_flops="fast"),
     "system.devices[0].compute_flops"),
    (lambda d: d["system"].update(total_bandwidth_hz=-1e6), "system.total_bandwidth_hz"),
    (lambda d: d.update(placement=[[0, 1, 2, 9]] * 4), "placement[0][3]"),
    (lambda d: d["gating"]["weights"][1][2].__setitem__(0, float("nan")),
     "gating.weights[1][2][0]"),
    (lambda d: d["gating"]["weights"][0][0].__setitem__(0, 3.0), "gating.weights[0][0][0]"),
    (lambda d: d["gating"].update(weights=[[[0.5, 0.5]]]), "gating.weights"),
    (lambda d: d.pop("model"), "model"),
])
def test_bad_files_get_one_error_naming_the_field(tmp_path, instance, mutate, field):
    doc = instance_to_dict(instance)
    mutate(doc)
    with pytest.raises(InputError) as err:
        read_instance(_write_doc(tmp_path, doc))
    assert err.value.field == field


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_instance(tmp_path / "nope.json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_instance(_write_doc(tmp_path, "{ not json"))
    with pytest.raises(InputError, match="not a wdmoe-instance .npz"):
        read_instance(_write_doc(tmp_path, "PK\x03\x04garbage", "x.npz"))


def test_a_failed_write_leaves_no_file(tmp_path, instance, monkeypatch):
    import wdmoe_opt.io.instance_io as mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mod.json, "dumps", boom)
    with pytest.raises(RuntimeError):
        write_instance(instance, tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []
