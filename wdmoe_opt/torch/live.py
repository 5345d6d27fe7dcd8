"""Live selection policies: expert selection applied inside a model's forward pass.

A policy maps a layer's live router probabilities to the experts each token
runs: ``policy(layer, weights[J, E]) -> mask[J, E]`` (``q^i`` of eqs. 16-17).
It is applied by a forward hook on every router, layer by layer, as a base
station must (layer ``i``'s weights exist only once layers ``< i`` ran with
their selection). :func:`evaluate_policies` then sets the two sides of the
trade-off next to each other: the latency the WDMoE model predicts for the
live selection (eqs. 10-13) and the measured effect on the model's output,
the KL divergence of the next-token distribution and the top-1 agreement
against the unmodified model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..model import Instance, Selection, topk_mask
from ..problems import BandwidthProblem, JointProblem, SelectionProblem, WeightFloorProblem
from ..registry import get_method, solve
from .adapters import MoEAdapter, Router, adapter_for
from .record import router_hooks, router_probabilities

#: ``(layer, weights[J, E]) -> mask[J, E]`` (bool, at least one expert per token).
Policy = Callable[[int, np.ndarray], np.ndarray]
#: ``(layer, weights[J, E]) -> actions[J, K]`` (P4 actions on the router Top-K, SPEC §6).
ActionPolicy = Callable[[int, np.ndarray], np.ndarray]


def topk_policy(k: int) -> Policy:
    """Each token runs its ``k`` highest-weight experts (the router's own choice at
    ``k`` = the model's Top-K; ties go to the lower expert id)."""
    return lambda _layer, weights: topk_mask(weights, k)


def fixed_policy(selection: Selection) -> Policy:
    """Layer ``i`` runs ``selection.mask[i]`` verbatim: a selection solved offline
    on recorded weights, replayed on the same tokens."""
    return lambda layer, _weights: selection.mask[layer]


def method_policy(instance: Instance, method: str, *, support: str = "topk",
                  bandwidth_hz: np.ndarray | None = None,
                  min_retained_weight: float | None = None, **options) -> Policy:
    """Run the P2 method ``method`` (``topk``, ``alg1``, ``milp``...) on each layer's
    live weights, with ``instance``'s devices and channel of that layer, at
    ``bandwidth_hz`` (the uniform split by default, as the paper scores WLR).

    A joint method named in full runs on the one-layer joint problem instead, with its
    own bandwidth, and only its selection is applied: ``p1/...`` (eqs. 13-15) or
    ``p1-floor/...`` (minimum latency with retained weight >= ``min_retained_weight``,
    e.g. ``p1-floor/greedy``). ``options`` are the method's options.
    """
    m = get_method(method if not isinstance(method, str) or "/" in method else f"p2/{method}",
                   field="method")
    problems = {
        "p2": lambda inst: SelectionProblem(inst, bandwidth_hz=bandwidth_hz, support=support),
        "p1": lambda inst: JointProblem(inst, support=support),
        "p1-floor": lambda inst: WeightFloorProblem(
            inst, support=support, **({} if min_retained_weight is None
                                      else {"min_retained_weight": min_retained_weight}))}
    if m.problem not in problems:
        raise InputError("method", "must be a P2 (selection), P1 or P1-floor (joint) method",
                         method)
    if m.problem != "p2" and bandwidth_hz is not None:
        raise InputError("bandwidth_hz", f"does not apply to the joint method {m.key}", "given")
    if m.problem != "p1-floor" and min_retained_weight is not None:
        raise InputError("min_retained_weight", f"applies to p1-floor methods, not {m.key}",
                         min_retained_weight)
    make = problems[m.problem]
    m.make_options(options)   # bad options fail here, not inside the forward pass

    def policy(layer: int, weights: np.ndarray) -> np.ndarray:
        return m(make(layer_instance(instance, layer, weights)), options).selection.mask[0]
    return policy


def layer_instance(instance: Instance, layer: int, weights: np.ndarray) -> Instance:
    """A one-layer instance: layer ``layer`` of ``instance`` with gating ``weights[J, E]``
    (and that layer's ``similarity`` tables and deadline, where given)."""
    s = instance.system
    system = replace(s, gain_down=instance.gain_down_per_layer[layer],
                     gain_up=instance.gain_up_per_layer[layer])
    sim, deadlines = instance.similarity, instance.deadlines_s
    if sim is not None:
        sim = replace(sim, replace=sim.replace[layer:layer + 1], skip=sim.skip[layer:layer + 1],
                      sensitivity=None)
    return replace(instance, model=replace(instance.model, layers=1), system=system,
                   gating_weights=weights[None], placement=instance.placement[layer:layer + 1],
                   similarity=sim,
                   deadlines_s=None if deadlines is None else deadlines[layer:layer + 1])


@dataclass(frozen=True)
class LiveReport:
    """One policy on one batch: predicted latency beside the measured output change.

    ``kl_mean_nats``/``kl_max_nats``: ``KL(p_ref || p_policy)`` of the next-token
    distribution, mean and max over positions; ``top1_agreement``: fraction of
    positions whose most likely next token is unchanged. ``retained_weight`` and
    ``expert_invocations`` (SPEC §1) are those of the live selection on the live
    weights; ``latency_s`` (eq. 13) and ``wlr_total`` (eq. 12) map each P3 method
    (``uniform``, ``exact``...) to the value at the bandwidth it allocates.
    """

    policy: str
    kl_mean_nats: float
    kl_max_nats: float
    top1_agreement: float
    retained_weight: float
    expert_invocations: int
    latency_s: Mapping[str, float]
    wlr_total: Mapping[str, float]

    def as_row(self) -> dict:
        """Flat form for tables: ``latency_<method>_s`` and ``wlr_<method>`` columns."""
        row = {k: v for k, v in asdict(self).items() if k not in ("latency_s", "wlr_total")}
        row.update({f"latency_{b}_s": t for b, t in self.latency_s.items()})
        row.update({f"wlr_{b}": w for b, w in self.wlr_total.items()})
        return row


def run_with_policy(model: nn.Module, input_ids: torch.Tensor, policy: Policy | None,
                    adapter: MoEAdapter | None = None
                    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Forward ``input_ids`` with ``policy`` steering every router (None: unmodified).

    Returns the output logits ``[batch, seq, V]``, the live router probabilities
    ``[I, J, E]`` and the selection that ran ``[I, J, E]`` (the model's Top-K when
    ``policy`` is None).
    """
    adapter = adapter_for(model, adapter)

    def steer(i: int, router: Router, output, w: np.ndarray):
        if policy is None:
            return topk_mask(w, router.top_k), None
        mask = _checked_mask(policy(i, w), w.shape, i)
        device = adapter.logits(router, output).device
        return mask, adapter.select(router, output, torch.tensor(mask, device=device))

    return _steered_forward(model, input_ids, adapter, steer)


def run_with_actions(model: nn.Module, input_ids: torch.Tensor, policy: ActionPolicy,
                     adapter: MoEAdapter | None = None
                     ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Forward ``input_ids`` with the P4 ``actions`` of ``policy`` applied in every layer
    (SPEC §6: a replacement ``r`` runs with the replaced expert's weight, a skip drops
    the expert's output; see :func:`~.similarity.acted_routing`).

    The router output must be the ``(logits, top_k_weights, top_k_index)`` triple of
    :class:`~.adapters.TransformersAdapter` models. Returns the logits, the live router
    probabilities ``[I, J, E]`` and the actions that ran ``[I, J, K]``.
    """
    from .similarity import acted_routing

    adapter = adapter_for(model, adapter)

    def steer(i: int, router: Router, output, w: np.ndarray):
        logits, w_top, idx = output
        a = np.asarray(policy(i, w))
        if a.shape != idx.shape:
            raise InputError(f"actions of layer {i}", f"must have shape {tuple(idx.shape)}",
                             a.shape)
        *_, index, weights = acted_routing(idx, w_top, a)
        return a, (logits, weights, index)

    return _steered_forward(model, input_ids, adapter, steer)


def p4_policy(instance: Instance, method: str, deviation_budget: float = np.inf,
              **options) -> ActionPolicy:
    """Run the P4 method ``method`` (``relax``, ``skip-threshold``...) on each layer's
    live weights, with ``instance``'s devices, channel and ``similarity`` tables of that
    layer at the uniform bandwidth split; the global budget ``deviation_budget`` is
    split over layers by the sensitivities (SiftMoE's Thm. 1), as P4 does."""
    from ..energy.problem import EnergyProblem, layer_budgets
    from ..model.deviation import require_similarity

    m = get_method(method if "/" in method else f"p4/{method}", field="method")
    if m.problem != "p4":
        raise InputError("method", "must be a P4 method", method)
    m.make_options(options)
    sim = require_similarity(instance)
    budgets = layer_budgets(deviation_budget, sim.sensitivities(instance.n_layers))

    def policy(layer: int, weights: np.ndarray) -> np.ndarray:
        problem = EnergyProblem(layer_instance(instance, layer, weights),
                                budgets[layer:layer + 1])
        sol = m(problem, options)
        return np.asarray(sol.extra["actions"])[0, :, :, 1]
    return policy


def _steered_forward(model: nn.Module, input_ids: torch.Tensor, adapter: MoEAdapter, steer
                     ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Forward with ``steer(layer, router, output, weights) -> (record, new output or
    None)`` on every router; returns the logits, the weights and the records, stacked."""
    routers = adapter.routers(model)
    weights: list[np.ndarray] = [None] * len(routers)  # type: ignore[list-item]
    records: list[np.ndarray] = [None] * len(routers)  # type: ignore[list-item]

    def hook(i: int, router: Router, output):
        weights[i] = router_probabilities(adapter, router, output)
        records[i], new = steer(i, router, output, weights[i])
        return new

    with router_hooks(routers, hook), torch.no_grad():
        logits = model(input_ids).logits
    return logits, np.stack(weights), np.stack(records)


def _checked_mask(mask, shape: tuple[int, int], layer: int) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != shape or m.dtype != np.bool_:
        raise InputError(f"policy mask of layer {layer}", f"must be a bool array of shape {shape}",
                         (m.shape, str(m.dtype)))
    empty = ~m.any(axis=1)
    if empty.any():
        raise InputError(f"policy mask of layer {layer}", "leaves a token with no expert",
                         f"token {int(np.argmax(empty))}")
    return m


def output_divergence(ref_logits: torch.Tensor, logits: torch.Tensor) -> tuple[float, float, float]:
    """``(mean KL, max KL, top-1 agreement)`` of next-token distributions, KL in nats."""
    ref = torch.log_softmax(ref_logits.double().flatten(0, -2), dim=-1)
    new = torch.log_softmax(logits.double().flatten(0, -2), dim=-1)
    kl = (ref.exp() * (ref - new)).sum(dim=-1).clamp_min(0.0)
    agree = (ref.argmax(dim=-1) == new.argmax(dim=-1)).double().mean()
    return float(kl.mean()), float(kl.max()), float(agree)


def evaluate_policies(model: nn.Module, input_ids: torch.Tensor, instance: Instance,
                      policies: Mapping[str, Policy], *,
                      bandwidth: tuple[str, ...] = ("uniform",),
                      adapter: MoEAdapter | None = None) -> list[LiveReport]:
    """Run each policy on ``input_ids`` and report it against the unmodified model.

    ``instance`` gives the wireless system, placement and model sizes (e.g. the
    instance recorded from this model); its layers must match the model's MoE
    layers. The latency of each policy's live selection is the objective of each
    P3 method in ``bandwidth`` (``uniform``, or an optimizing one) on the live weights.
    """
    ref_logits, _, _ = run_with_policy(model, input_ids, None, adapter)
    reports = []
    for name, policy in policies.items():
        logits, weights, masks = run_with_policy(model, input_ids, policy, adapter)
        if weights.shape[0] != instance.n_layers:
            raise InputError("instance", f"has {instance.n_layers} layers; the model has "
                             f"{weights.shape[0]} MoE layers", instance.name)
        problem = BandwidthProblem(replace(instance, gating_weights=weights), Selection(masks))
        sols = {b: solve(problem, b) for b in bandwidth}
        first = sols[bandwidth[0]]
        reports.append(LiveReport(
            name, *output_divergence(ref_logits, logits), first.retained_weight,
            first.expert_invocations, {b: s.objective_s for b, s in sols.items()},
            {b: s.wlr_total for b, s in sols.items()}))
    return reports
