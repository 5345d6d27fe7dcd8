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


def _reference_separable(cand: Candidates) -> np.ndarray:
    """The separable choice straight from the ``[I, J, P]`` tables: least energy among
    the allowed profiles, ties the least deviation, then the first; nothing allowed:
    the least deviation."""
    energy, dev = cand.energy, cand.deviation
    best = energy.min(axis=2, keepdims=True)
    return np.argmin(np.where(energy == best, dev, np.inf), axis=2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 3), st.sampled_from([None, 2]),
       st.sampled_from([0.0, 0.3, 1.0, 3.0]), st.booleans())
def test_separable_choice_is_the_table_one(seed, top_k, devices, eps, starve):
    """``separable_choice`` (classes of equal energy per row, scores per chunk of
    layers) picks what the full tables pick, with the same energy; ``starve`` gives a
    linked device no bandwidth, so that some tokens have nothing allowed."""
    from wdmoe_opt.energy.relax import separable_choice
    inst = tiny_sift(seed, tokens=5, experts=4, devices=devices, top_k=top_k)
    b = None
    if starve:                                  # the first linked device gets nothing
        b = np.full(inst.n_devices, inst.system.total_bandwidth_hz / (inst.n_devices - 1))
        b[np.flatnonzero(~inst.system.local_mask)[0]] = 0.0
    cand = Candidates.build(EnergyProblem(inst, eps, bandwidth_hz=b))
    choice, energy = separable_choice(cand)
    assert np.array_equal(choice, _reference_separable(cand))
    assert np.array_equal(energy, np.take_along_axis(cand.energy, choice[..., None],
                                                     axis=2)[..., 0])


@pytest.mark.parametrize("devices", [None, 2])
def test_lazy_tables_agree(devices):
    """The per-layer tables, the gathered deviations and the full ``[I, J, P]`` tables
    are the same numbers; ``allowed`` is exactly the valid profiles within budget."""
    inst = tiny_sift(7, tokens=6, experts=4, devices=devices, top_k=2)
    problem = EnergyProblem(inst, 0.8)
    cand = Candidates.build(problem)
    I, J, P = cand.energy.shape
    for i in range(I):
        assert np.array_equal(cand.layer_deviation(i), cand.deviation[i])
        assert np.array_equal(cand.layer_energy(i), cand.energy[i])
    i, j, p = np.meshgrid(np.arange(I), np.arange(J), np.arange(P), indexing="ij")
    assert np.array_equal(cand.deviation_at(i, j, p), cand.deviation)
    within = cand.deviation <= problem.layer_budget[:, None, None] * (1 + 1e-9)
    valid = np.isfinite(cand.row_energy[cand.row])
    assert np.array_equal(cand.allowed, within & valid)
    assert np.array_equal(np.isfinite(cand.energy), cand.allowed)


def test_deviation_at_paper_size():
    """The gathered deviations at the paper's size (32 layers, 8 experts: flat indices
    far beyond the int8 codes) are the table's."""
    from wdmoe_opt.generate import generate
    cand = Candidates.build(EnergyProblem(generate("wdmoe-sift", seed=0, tokens=3), 1.0))
    I, J, P = cand.deviation.shape
    i, j, p = np.meshgrid(np.arange(I), np.arange(J), np.arange(P), indexing="ij")
    assert np.array_equal(cand.deviation_at(i, j, p), cand.deviation)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_dominance_by_supports_is_the_pairwise_one(S, U, seed):
    """:func:`dominance` (candidates from the device supports only) finds exactly the
    pairs of the all-pairs definition, ties and repeated sets included."""
    from wdmoe_opt.energy.relax import dominance
    rng = np.random.default_rng(seed)
    levels = np.array([0.0, 0.5, 1.0, 2.0])               # few values: many ties
    time = levels[rng.integers(0, 4, (S, U))] * (rng.random((S, U)) < 0.5)
    energy = levels[rng.integers(0, 4, S)]
    if S > 2:
        time[1], energy[1] = time[0], energy[0]            # a repeated set
    no_worse = (energy[:, None] <= energy[None, :]) & (
        time[:, None, :] <= time[None, :, :]).all(axis=2)
    better = (energy[:, None] < energy[None, :]) | (time[:, None, :] < time[None, :, :]).any(axis=2)
    ids = np.arange(S)
    dst, src = np.nonzero((no_worse & (better | (ids[:, None] < ids[None, :]))).T)
    got_src, got_dst = dominance(energy, time)
    assert (np.diff(got_dst) >= 0).all()                   # grouped by dst
    order = np.lexsort((got_src, got_dst))
    assert np.array_equal(got_dst[order], dst) and np.array_equal(got_src[order], src)
