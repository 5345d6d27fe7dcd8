"""How to find and steer the routers of a torch MoE model: the adapter protocol.

A router is the module that turns a layer's hidden states into router logits
(``[tokens, E]``); the gating weights of SPEC §1 are their softmax over all E
experts. An adapter lists a model's routers in layer order, reads the logits
from a router's output, and rewrites that output so the layer runs only the
experts of a selection mask (``q^i_{j,e}`` of eqs. 16-17). Any torch MoE module
can be recorded and steered by writing the three methods of :class:`MoEAdapter`.

:class:`TransformersAdapter` covers Hugging Face ``transformers`` (>= 5) models
whose router returns ``(logits, top_k_weights, top_k_index)`` (Mixtral,
Qwen2-MoE, OLMoE, Qwen3-MoE and other ``*TopKRouter`` families).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class Router:
    """One MoE layer's router: its module path, module, ``E`` experts and Top-K."""

    name: str
    module: nn.Module
    experts: int
    top_k: int


@runtime_checkable
class MoEAdapter(Protocol):
    """What the recorder and the live policy need from a torch MoE model."""

    def routers(self, model: nn.Module) -> list[Router]:
        """The routers of every MoE layer, in layer order."""

    def logits(self, router: Router, output: Any) -> torch.Tensor:
        """The router logits ``[tokens, E]`` in the router module's ``output``."""

    def select(self, router: Router, output: Any, mask: torch.Tensor) -> Any:
        """``output`` rewritten so each token runs only the experts of ``mask``
        (``[tokens, E]`` bool, at least one expert per token)."""


#: Families whose Top-K weights are renormalized to sum to one regardless of config.
_ALWAYS_RENORMALIZE = frozenset({"mixtral"})
#: Families whose config says (``norm_topk_prob``) whether the Top-K is renormalized.
_CONFIG_RENORMALIZE = frozenset({"qwen2_moe", "qwen3_moe", "olmoe"})


class TransformersAdapter:
    """Routers of a Hugging Face ``transformers`` MoE model.

    The routers are the modules the model itself records as ``router_logits``
    (``model._can_record_outputs``); the logits are element 0 of their output.
    Steering rewrites the ``(logits, top_k_weights, top_k_index)`` triple: each
    token keeps the experts of the mask, weighted by their softmax probability,
    renormalized over the kept experts where the family renormalizes its Top-K
    (Mixtral always, Qwen2-MoE/Qwen3-MoE/OLMoE when ``norm_topk_prob``). Tokens
    keeping fewer experts than the widest token are padded with a kept expert of
    weight 0, so every experts implementation accepts the index.
    """

    def __init__(self, model: nn.Module):
        config = getattr(model, "config", None)
        recorders = getattr(model, "_can_record_outputs", None) or {}
        recorder = recorders.get("router_logits")
        if config is None or recorder is None:
            raise InputError("model", "is not a transformers MoE model with router logits "
                             "(write a wdmoe_opt.torch.MoEAdapter for it)", type(model).__name__)
        self.model_type = str(config.model_type)
        self._router_class = recorder.target_class
        self._index = recorder.index if recorder.index is not None else 0
        if self.model_type in _ALWAYS_RENORMALIZE:
            self.renormalize: bool | None = True
        elif self.model_type in _CONFIG_RENORMALIZE:
            self.renormalize = bool(config.norm_topk_prob)
        else:
            self.renormalize = None  # recordable, not steerable

    def routers(self, model: nn.Module) -> list[Router]:
        found = [Router(name, m, int(m.num_experts), int(m.top_k))
                 for name, m in model.named_modules() if isinstance(m, self._router_class)]
        if not found:
            raise InputError("model", "has no router modules", self._router_class.__name__)
        return found

    def logits(self, router: Router, output: Any) -> torch.Tensor:
        return output[self._index] if isinstance(output, tuple) else output

    def select(self, router: Router, output: Any, mask: torch.Tensor) -> Any:
        if self.renormalize is None:
            raise InputError("model", "has a router whose Top-K convention wdmoe-opt does not "
                             "know; steer it with your own MoEAdapter", self.model_type)
        logits, weights, _ = output
        probs = torch.softmax(logits.float(), dim=-1) * mask
        if self.renormalize:
            probs = probs / probs.sum(dim=-1, keepdim=True)
        width = int(mask.sum(dim=-1).max())
        # kept experts first (by weight; +1 ranks a kept expert of underflowed weight too),
        # then padding: the token's first kept expert at weight 0
        index = torch.topk(probs + mask, width, dim=-1).indices
        kept = torch.gather(mask, 1, index)
        index = torch.where(kept, index, index[:, :1])
        kept_w = torch.where(kept, torch.gather(probs, 1, index), 0.0)
        return logits, kept_w.to(weights.dtype), index


def adapter_for(model: nn.Module, adapter: MoEAdapter | None = None) -> MoEAdapter:
    """``adapter`` if given, else the :class:`TransformersAdapter` of ``model``."""
    return adapter if adapter is not None else TransformersAdapter(model)
