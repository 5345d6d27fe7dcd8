"""Algorithms 1 and 2 against plain per-token reference loops written from SPEC §3."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wdmoe_opt import InputError, Selection, SelectionProblem, solve
from wdmoe_opt.generate import generate
from wdmoe_opt.model import latency as lat
from wdmoe_opt.selection.alg1 import cosine_similarity


def tau_of(inst, b):
    tau = lat.comm_time_per_token_s(inst, b) + lat.compute_time_per_token_s(inst)
    return np.take_along_axis(tau, inst.placement, axis=1)


def total_wlr(inst, mask, b):
    return lat.wlr(inst, Selection(mask), b).sum()


def drop_lowest_kept(mask, w, i, j):
    kept = np.flatnonzero(mask[i, j])
    mask[i, j, kept[np.argmin(w[i, j, kept])]] = False


def reference_alg1(inst, b, theta0=0.5, step=0.1, gain=1.01, k=2, direction="below"):
    w = inst.gating_weights
    tau = tau_of(inst, b)
    mask = Selection.topk(inst, k).mask.copy()
    zeroed = w.copy()
    target = gain * total_wlr(inst, mask, b)

    def one_pass(theta):
        s = cosine_similarity(zeroed, tau)
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                hit = s[i, j] < theta if direction == "below" else s[i, j] > 1 - theta
                if hit and mask[i, j].sum() >= 2:
                    before = mask[i, j].copy()
                    drop_lowest_kept(mask, w, i, j)
                    zeroed[i, j, before & ~mask[i, j]] = 0.0

    theta = theta0
    while (total_wlr(inst, mask, b) < target and theta <= 1 + step
           and (mask.sum(axis=2) >= 2).any()):
        one_pass(theta)
        theta += step
    one_pass(theta)
    return mask


def reference_alg2(inst, b, ratio=1.5):
    w = inst.gating_weights
    mask = Selection.topk(inst).mask.copy()
    t_bar = lat.comm_time_per_token_s(inst, b) + lat.compute_time_per_token_s(inst)
    _, p = lat.device_loads(inst, Selection(mask))
    for i in range(w.shape[0]):
        t_hat = p[i] * t_bar[i]
        k = int(np.argmax(t_hat))
        q3 = np.quantile(t_hat, 0.75)
        if not t_hat[k] > ratio * q3:
            continue
        n_drop = int(np.floor((t_hat[k] - q3) / t_bar[i, k]))
        on_k = mask[i] & (inst.placement[i] == k)[None, :]
        mean_w = w[i][on_k].mean()
        cands = []
        for j in range(w.shape[1]):
            kept = np.flatnonzero(mask[i, j])
            low = kept[np.argmin(w[i, j, kept])]
            if len(kept) >= 2 and inst.placement[i, low] == k and w[i, j, low] < mean_w:
                cands.append((w[i, j, low], j))
        for _, j in sorted(cands)[:n_drop]:
            drop_lowest_kept(mask, w, i, j)
    return mask


LAYOUTS = [dict(experts=8, devices=8),
           dict(experts=8, devices=3, placement="round-robin")]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), layout=st.sampled_from([0, 1]),
       direction=st.sampled_from(["below", "above"]), gain=st.sampled_from([1.01, 1.3, 5.0]))
def test_alg1_matches_reference(seed, layout, direction, gain):
    inst = generate("wdmoe-sim", seed=seed, layers=3, tokens=20, **LAYOUTS[layout])
    problem = SelectionProblem(inst)
    sol = solve(problem, "alg1", direction=direction, gain=gain)
    ref = reference_alg1(inst, problem.bandwidth_hz, gain=gain, direction=direction)
    np.testing.assert_array_equal(sol.selection.mask, ref)


def test_alg1_beyond_top2_under_all_support():
    inst = generate("wdmoe-sim", seed=4, layers=2, tokens=30)
    problem = SelectionProblem(inst, support="all")
    sol = solve(problem, "alg1", top_k=4)
    ref = reference_alg1(inst, problem.bandwidth_hz, k=4)
    np.testing.assert_array_equal(sol.selection.mask, ref)
    assert sol.selection.mask.sum(axis=2).max() >= 3
    with pytest.raises(InputError, match="'top_k' option of p2/alg1 must be at most 2"):
        solve(SelectionProblem(inst), "alg1", top_k=3)


def test_alg1_drops_more_as_theta0_grows():
    inst = generate("wdmoe-sim", seed=2, layers=4, tokens=64, layer_correlation=0.5, sharpness=1.5)
    problem = SelectionProblem(inst)
    kept = [solve(problem, "alg1", theta0=t).expert_invocations for t in (0.1, 0.5, 0.9)]
    assert kept[0] > kept[1] > kept[2] >= inst.n_layers * inst.n_tokens


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), layout=st.sampled_from([0, 1]))
def test_alg2_cold_start_matches_reference(seed, layout):
    inst = generate("wdmoe-sim", seed=seed, layers=3, tokens=40, **LAYOUTS[layout])
    problem = SelectionProblem(inst)
    sol = solve(problem, "alg2")
    np.testing.assert_array_equal(sol.selection.mask,
                                  reference_alg2(inst, problem.bandwidth_hz))
