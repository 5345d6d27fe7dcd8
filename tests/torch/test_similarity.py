"""SiftMoE's deviation bound on tiny random torch models (SPEC §6): measured tables,
the per-token triangle-inequality bound never exceeded by the measured change of a
layer's output, and the table estimate compared with the measured change."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from wdmoe_opt.energy import EnergyProblem  # noqa: E402
from wdmoe_opt.model.deviation import deviation, topk_experts  # noqa: E402
from wdmoe_opt.registry import get_method  # noqa: E402
from wdmoe_opt.torch import record_gating, recorded_instance, token_ids  # noqa: E402
from wdmoe_opt.torch.similarity import measure_similarity, measured_deviation  # noqa: E402


@pytest.fixture(scope="module")
def recorded(tiny):
    ids, _ = token_ids(tiny, 24, seed=1)
    w = record_gating(tiny.model, ids)
    inst = recorded_instance(w, top_k=2, source="recorded:test", preset="wdmoe-sift",
                             seed=0, tokens=24)
    return tiny, ids, inst.replace(similarity=measure_similarity(tiny.model, ids))


def test_measured_tables_are_distances(recorded):
    _, _, inst = recorded
    d, s = inst.similarity.replace, inst.similarity.skip
    assert np.allclose(d, d.transpose(0, 2, 1), rtol=1e-9)
    assert (s > 0).all() and (inst.similarity.sensitivity >= 1).all()
    # mean of norms of differences obeys the triangle inequality too
    assert (d[:, :, None, :] <= d[:, :, :, None] + d[:, None, :, :] + 1e-9).all()


def _random_actions(inst, rng):
    e = topk_experts(inst)
    E = inst.n_experts
    a = np.where(rng.random(e.shape) < 0.4, -1, rng.integers(0, E, e.shape))
    a = np.where(rng.random(e.shape) < 0.3, e, a)
    a[..., 1] = np.where(a[..., 1] == a[..., 0], -1, a[..., 1])
    return a


def test_per_token_bound_is_never_exceeded(recorded):
    model, ids, inst = recorded
    rng = np.random.default_rng(0)
    plans = [_random_actions(inst, rng) for _ in range(4)]
    plans.append(np.asarray(get_method("p4/relax")(EnergyProblem(inst, 5.0)).extra["actions"])
                 [..., 1])
    for a in plans:
        m = measured_deviation(model.model, ids, a)
        # float32 model arithmetic: the slack is float32 round-off of the outputs
        assert (m["measured"] <= m["bound"] * (1 + 1e-5) + 1e-5).all()
        kept_all = (a == topk_experts(inst)).all(axis=-1)
        assert (m["measured"][kept_all] <= 1e-5).all()
        assert (m["bound"][~kept_all] > 0).all()


def test_table_estimate_is_reported_against_the_measurement(recorded):
    model, ids, inst = recorded
    a = _random_actions(inst, np.random.default_rng(3))
    m = measured_deviation(model.model, ids, a)
    table = deviation(inst, a)                      # calibration averages, weights w
    changed = m["measured"] > 0
    assert changed.any()
    # an estimate, not a bound (benchmarks/p4_bound.py reports how often and by how
    # much the measurement exceeds it); it is positive wherever something changed
    assert (table[changed] > 0).all()
    assert np.isfinite(m["measured"] / np.maximum(table, 1e-12)).all()


def test_live_actions_keep_all_is_the_unmodified_model(recorded):
    from wdmoe_opt.torch import run_with_actions, run_with_policy

    model, ids, inst = recorded
    ref, w_ref, _ = run_with_policy(model.model, ids, None)
    e = topk_experts(inst)
    logits, w, ran = run_with_actions(model.model, ids, lambda i, _w: e[i])
    assert np.array_equal(ran, e)
    assert np.allclose(w, w_ref, rtol=0, atol=1e-12)
    assert torch_allclose(logits, ref)


def torch_allclose(a, b) -> bool:
    # the same float32 arithmetic on the same routing: equal up to float32 round-off
    return bool(((a - b).abs() <= 1e-5 * (1 + b.abs())).all())


@pytest.mark.parametrize("method", ["relax", "skip-threshold", "substitute"])
def test_live_p4_policy_holds_each_layer_to_its_budget(recorded, method):
    from wdmoe_opt.energy.problem import layer_budgets
    from wdmoe_opt.torch import p4_policy, run_with_actions, run_with_policy

    model, ids, inst = recorded
    ref, _, _ = run_with_policy(model.model, ids, None)
    eps = float(np.median(inst.similarity.skip))
    logits, w, a = run_with_actions(model.model, ids, p4_policy(inst, method, eps))
    live = inst.replace(gating_weights=w)
    budget = layer_budgets(eps, inst.similarity.sensitivity)
    assert (deviation(live, a) <= budget[:, None] * (1 + 1e-9)).all()
    changed = (a != topk_experts(live)).any()
    assert changed == (not torch_allclose(logits, ref))
    # budget 0: every token keeps its Top-K, the model is unmodified
    logits0, _, a0 = run_with_actions(model.model, ids, p4_policy(inst, method, 0.0))
    assert np.array_equal(a0, topk_experts(inst)) and torch_allclose(logits0, ref)
