"""Long batches stay lean: one copy of the gating array, a streamed hash, blockwise passes."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import small_instance
from wdmoe_opt import Selection
from wdmoe_opt.io import read_instance, write_instance
from wdmoe_opt.model import instance as instance_module
from wdmoe_opt.model import topk_mask, topk_order


def _reference_hash(inst):
    """The content hash as first specified: every array copied to bytes (docs/schemas.md)."""
    h = hashlib.sha256()
    h.update(json.dumps(inst._content_header(), sort_keys=True).encode())
    s = inst.system
    for arr in (s.gain_down, s.gain_up, s.compute_flops, s.tx_power_w,
                inst.placement.astype("<i8"), inst.gating_weights):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())
    for opt in (s.distance_m, s.compute_j_per_flop):
        h.update(b"-" if opt is None else np.ascontiguousarray(opt, "<f8").tobytes())
    return "sha256:" + h.hexdigest()


@pytest.mark.parametrize("params", [{}, {"fast_fading": True},
                                    {"experts": 6, "devices": 3, "placement": "round-robin"}])
def test_streamed_hash_equals_the_specified_bytes(params):
    inst = small_instance(4, **params)
    assert inst.content_hash == _reference_hash(inst)


def test_a_read_instance_keeps_the_file_array_without_a_copy(tmp_path, instance):
    write_instance(instance, tmp_path / "i.npz")
    back = read_instance(tmp_path / "i.npz")
    w = back.gating_weights
    assert not w.flags.writeable
    again = back.replace(name="renamed")
    assert again.gating_weights is w                      # shared, not copied
    assert again.content_hash == back.content_hash


def test_a_caller_array_is_copied_so_the_instance_stays_immutable(instance):
    w = np.array(instance.gating_weights)                 # writable, the caller's
    inst = instance.replace(gating_weights=w)
    assert not np.shares_memory(inst.gating_weights, w)
    w[0, 0, :] = 0.25
    assert inst.content_hash == instance.content_hash


def test_a_selection_of_a_frozen_mask_shares_it(instance):
    mine = np.array(instance.router_topk_mask)
    assert not np.shares_memory(Selection(mine).mask, mine)
    assert Selection.topk(instance).mask is instance.router_topk_mask


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 40), E=st.integers(1, 6),
       block=st.integers(1, 7))
def test_blockwise_topk_equals_a_stable_argsort(monkeypatch_module, seed, rows, E, block):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 3, size=(2, rows, E)).astype(np.float64)   # many ties
    monkeypatch_module.setattr(instance_module, "BLOCK_ROWS", block)
    for k in range(1, E + 1):
        order = np.argsort(-w, axis=-1, kind="stable")[..., :k]  # ties to the lower id
        expected = np.zeros(w.shape, dtype=bool)
        np.put_along_axis(expected, order, True, axis=-1)
        assert np.array_equal(topk_mask(w, k), expected)
        assert np.array_equal(topk_order(w, k), order)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
