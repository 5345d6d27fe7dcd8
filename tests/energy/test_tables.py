"""The vectorized candidate tables against their per-profile definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.energy.conftest import tiny_sift
from wdmoe_opt.energy import EnergyProblem
from wdmoe_opt.energy.candidates import Candidates, lex_rank


@pytest.mark.parametrize("top_k", [1, 2, 3])
@pytest.mark.parametrize("devices", [None, 2])
def test_profile_latency_is_the_gathered_one(top_k, devices):
    """The code-axis latency equals the largest device time of each profile computed
    from :meth:`Candidates.gather` (shared devices: a transfer once per device)."""
    inst = tiny_sift(3, tokens=4, experts=4, devices=devices, top_k=top_k)
    cand = Candidates.build(EnergyProblem(inst, 1.0))
    I, J, P = cand.energy.shape
    i, j, p = (x.ravel() for x in np.meshgrid(np.arange(I), np.arange(J), np.arange(P),
                                              indexing="ij"))
    _, device, _, slot_s = cand.gather(i, j, p)
    per_device = np.zeros((len(i), inst.n_devices))
    for s in range(device.shape[1]):
        on = device[:, s] >= 0
        per_device[np.flatnonzero(on), device[on, s]] += slot_s[on, s]
    expected = per_device.max(axis=1).reshape(I, J, P)
    assert np.array_equal(cand.profile_latency(), expected)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_lex_rank_orders_rows_as_unique(n, m, radix, seed):
    """Equal rows get equal ranks, in the order ``np.unique(axis=0)`` sorts them."""
    rows = np.random.default_rng(seed).integers(0, radix, (n, m))
    _, expected = np.unique(rows, axis=0, return_inverse=True)
    _, got = np.unique(lex_rank(rows, radix), return_inverse=True)
    assert np.array_equal(got.ravel(), expected.ravel())


def test_lex_rank_reranks_before_overflow():
    """Many wide columns: the key is re-ranked, never wraps."""
    rows = np.random.default_rng(0).integers(0, 2**40, (200, 4))
    _, expected = np.unique(rows, axis=0, return_inverse=True)
    _, got = np.unique(lex_rank(rows, 2**40), return_inverse=True)
    assert np.array_equal(got.ravel(), expected.ravel())
