"""Optional torch bridge: record gating weights from MoE models, steer them live.

Install the extra with the CPU wheel: ``pip install torch==2.13.0 'transformers>=5'``.
This is the only package of wdmoe-opt that imports torch; see ``docs/torch.md``.

* :func:`record_gating` — forward hooks capture the router probabilities
  ``[I, J, E]`` of every MoE layer; :func:`recorded_instance` turns them into a
  ``wdmoe-instance/1`` instance with a preset's wireless system.
* :func:`evaluate_policies` — apply a selection policy (:func:`topk_policy`,
  :func:`method_policy`, :func:`fixed_policy`) inside the forward pass and report
  the predicted latency beside the KL divergence and top-1 agreement of the output.
* :func:`load_model` — ``tiny-*`` random models, the shipped trained ``wdmoe-tiny-moe``
  (:mod:`.zoo`), or a local checkpoint; :func:`next_token_scores` measures next-token
  loss and top-1 accuracy under a policy.
* :class:`MoEAdapter` — the three methods any other torch MoE module implements.
"""

from .adapters import MoEAdapter, Router, TransformersAdapter
from .live import (
    ActionPolicy,
    LiveReport,
    Policy,
    evaluate_policies,
    fixed_policy,
    layer_instance,
    method_policy,
    output_divergence,
    p4_policy,
    run_with_actions,
    run_with_policy,
    topk_policy,
)
from .models import (
    TINY_MODELS,
    LoadedModel,
    default_context,
    load_model,
    tiny_model,
    token_ids,
    windows,
)
from .record import (
    record_gating,
    record_text,
    recorded_instance,
    router_hooks,
    router_probabilities,
)
from .zoo import ZOO_MODELS, evaluate_text, next_token_scores

__all__ = [
    "MoEAdapter", "Router", "TransformersAdapter", "LiveReport", "Policy", "evaluate_policies",
    "fixed_policy", "layer_instance", "method_policy", "output_divergence", "run_with_policy",
    "topk_policy", "ActionPolicy", "p4_policy", "run_with_actions",
    "TINY_MODELS", "LoadedModel", "load_model", "tiny_model", "token_ids",
    "default_context", "windows", "ZOO_MODELS", "next_token_scores", "evaluate_text",
    "record_gating", "record_text", "recorded_instance", "router_hooks", "router_probabilities",
]
