"""Live selection policies: applied in the forward pass, measured against the model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from wdmoe_opt import SelectionProblem, solve  # noqa: E402
from wdmoe_opt.errors import InputError  # noqa: E402
from wdmoe_opt.generate import generate  # noqa: E402
from wdmoe_opt.model import topk_mask  # noqa: E402
from wdmoe_opt.torch import (  # noqa: E402
    TransformersAdapter,
    evaluate_policies,
    fixed_policy,
    layer_instance,
    method_policy,
    record_gating,
    recorded_instance,
    run_with_policy,
    token_ids,
    topk_policy,
)

J = 32


def _recorded(loaded, seed=0):
    ids, _ = token_ids(loaded, J, seed=seed)
    w = record_gating(loaded.model, ids)
    return ids, recorded_instance(w, top_k=2, source=f"recorded:{loaded.name}", seed=seed)


def test_topk_policy_reproduces_the_unmodified_model(tiny):
    ids, inst = _recorded(tiny)
    ref, w_ref, q_ref = run_with_policy(tiny.model, ids, None)
    out, w, q = run_with_policy(tiny.model, ids, topk_policy(2))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(q, q_ref)
    (report,) = evaluate_policies(tiny.model, ids, inst, {"topk": topk_policy(2)})
    assert report.top1_agreement == 1.0 and report.kl_mean_nats < 1e-9
    assert report.retained_weight == pytest.approx(1.0)
    assert report.expert_invocations == 2 * J * 2


def test_dropping_experts_cuts_latency_and_changes_the_output(tiny):
    ids, inst = _recorded(tiny)
    top2, top1 = evaluate_policies(tiny.model, ids, inst,
                                   {"top2": topk_policy(2), "top1": topk_policy(1)},
                                   bandwidth=("uniform", "exact"))
    assert top1.expert_invocations == top2.expert_invocations // 2
    assert top1.latency_s["uniform"] < top2.latency_s["uniform"]
    assert top1.latency_s["exact"] <= top1.latency_s["uniform"] * (1 + 1e-9)
    row = top1.as_row()
    assert row["latency_exact_s"] == top1.latency_s["exact"] and "wlr_uniform" in row
    assert top1.kl_mean_nats > 1e-4 and top1.kl_max_nats >= top1.kl_mean_nats
    assert top1.retained_weight < 1.0


def test_a_selection_wider_than_the_router_top_k_runs(mixtral):
    ids, _ = _recorded(mixtral)
    out3, _, q3 = run_with_policy(mixtral.model, ids, topk_policy(3))
    ref, _, _ = run_with_policy(mixtral.model, ids, None)
    assert (q3.sum(axis=-1) == 3).all()
    assert not torch.allclose(out3, ref)


@pytest.mark.parametrize("family_renormalizes", [True, False])
def test_kept_experts_carry_their_softmax_weight_in_the_familys_convention(
        mixtral, family_renormalizes):
    adapter = TransformersAdapter(mixtral.model)
    adapter.renormalize = family_renormalizes
    router = adapter.routers(mixtral.model)[0]
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 1.0]])
    mask = torch.tensor([[True, False, True, False], [False, False, True, False]])
    _, weights, index = adapter.select(router, (logits, torch.zeros(2, 2), None), mask)
    p = torch.softmax(logits, dim=-1)
    assert index.tolist() == [[0, 2], [2, 2]]
    expected = torch.tensor([[p[0, 0], p[0, 2]], [p[1, 2], 0.0]])
    if family_renormalizes:
        expected[0] /= p[0, 0] + p[0, 2]
        expected[1, 0] = 1.0
    torch.testing.assert_close(weights, expected)


def test_a_solved_selection_replayed_live_has_the_solutions_latency(mixtral):
    ids, inst = _recorded(mixtral)
    sol = solve(SelectionProblem(inst), "alg1")
    (report,) = evaluate_policies(mixtral.model, ids, inst, {"alg1": fixed_policy(sol.selection)})
    assert report.latency_s["uniform"] == pytest.approx(sol.objective_s, rel=1e-12)
    assert report.expert_invocations == sol.expert_invocations


@pytest.mark.parametrize("method", ["topk", "alg1"])
def test_a_method_run_live_keeps_a_nonempty_subset_of_the_live_top_k(mixtral, method):
    ids, inst = _recorded(mixtral)
    _, w, q = run_with_policy(mixtral.model, ids, method_policy(inst, method))
    assert (q.sum(axis=-1) >= 1).all()
    assert not (q & ~topk_mask(w, 2)).any()
    if method == "topk":
        np.testing.assert_array_equal(q, topk_mask(w, 2))


def test_layer_instance_takes_that_layers_channel():
    inst = generate("wdmoe-sim", seed=0, layers=3, tokens=4, experts=4, fast_fading=True)
    one = layer_instance(inst, 2, inst.gating_weights[2])
    assert one.n_layers == 1
    np.testing.assert_array_equal(one.gain_down_per_layer[0], inst.gain_down_per_layer[2])
    np.testing.assert_array_equal(one.gain_up_per_layer[0], inst.gain_up_per_layer[2])


def test_bad_policy_masks_are_input_errors(mixtral):
    ids, _ = _recorded(mixtral)

    def no_expert(_layer, w):
        mask = topk_mask(w, 1)
        mask[3] = False
        return mask

    with pytest.raises(InputError, match="token 3"):
        run_with_policy(mixtral.model, ids, no_expert)
    with pytest.raises(InputError, match="shape"):
        run_with_policy(mixtral.model, ids, lambda _i, w: topk_mask(w, 1)[:, :4])


def test_an_instance_with_other_layers_is_refused(mixtral):
    ids, _ = _recorded(mixtral)
    three = generate("wdmoe-sim", seed=0, layers=3, tokens=J, experts=8)
    with pytest.raises(InputError, match="MoE layers"):
        evaluate_policies(mixtral.model, ids, three, {"topk": topk_policy(2)})
