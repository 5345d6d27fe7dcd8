"""Record the gating weights ``w[i, j, e]`` (SPEC §1) of a torch MoE model with forward hooks.

Each router's logits are turned into the softmax over **all** E experts in
float64 (before any Top-K renormalization the family applies), one row per
token, and the layers are stacked into ``[I, J, E]``. The recorded weights then
become a ``wdmoe-instance/1`` instance with a preset's wireless system
(:func:`recorded_instance`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..generate import generate
from ..model import Instance
from .adapters import MoEAdapter, Router, adapter_for


@contextmanager
def router_hooks(routers: list[Router],
                 hook: Callable[[int, Router, Any], Any]) -> Iterator[None]:
    """Call ``hook(layer, router, output)`` after every router's forward; a non-None
    return value replaces the output. The hooks are removed on exit."""
    handles = [r.module.register_forward_hook(
        lambda _m, _in, out, i=i, r=r: hook(i, r, out)) for i, r in enumerate(routers)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def router_probabilities(adapter: MoEAdapter, router: Router, output: Any) -> np.ndarray:
    """``[tokens, E]`` float64 softmax over all experts of the router's logits."""
    logits = adapter.logits(router, output).detach().to(torch.float64)
    return torch.softmax(logits.reshape(-1, router.experts), dim=-1).cpu().numpy()


def record_gating(model: nn.Module, input_ids: torch.Tensor,
                  adapter: MoEAdapter | None = None) -> np.ndarray:
    """Run ``model`` on ``input_ids`` (``[batch, seq]``) and return the router
    probabilities of every MoE layer, ``[I, J, E]`` with ``J = batch * seq``.

    The forward pass is the model's own (no selection applied); ``adapter``
    defaults to :class:`~wdmoe_opt.torch.adapters.TransformersAdapter`.
    """
    adapter = adapter_for(model, adapter)
    routers = adapter.routers(model)
    rows: list[list[np.ndarray]] = [[] for _ in routers]

    def keep(i: int, router: Router, output: Any) -> None:
        rows[i].append(router_probabilities(adapter, router, output))

    with router_hooks(routers, keep), torch.no_grad():
        model(input_ids)
    return np.stack([np.concatenate(r) for r in rows])


def recorded_instance(weights: np.ndarray, *, top_k: int, source: str,
                      preset: str = "wdmoe-sim", seed: int = 0,
                      gains: tuple[np.ndarray, np.ndarray] | None = None,
                      recording: dict | None = None, **overrides) -> Instance:
    """An instance of ``preset`` whose gating weights are the recorded ``[I, J, E]``.

    Layers, tokens and experts come from ``weights``; ``top_k`` is the recorded
    model's router Top-K; ``gains`` (``(down, up)``, each ``[U]`` or ``[I, U]``)
    replace the preset's Rayleigh draws; ``overrides`` are generator parameters
    (``devices``, ``placement``, ``hidden_dim``...). ``recording`` (how the
    tokens were made, the model's dims...) is kept in the provenance.
    """
    inst = generate(preset, seed, gating_weights=weights, gains=gains, source=source,
                    top_k=top_k, name=f"{source.removeprefix('recorded:')}-J{weights.shape[1]}"
                    f"-s{seed}", **overrides)
    if recording:
        inst = replace(inst, provenance={**inst.provenance, "recording": recording})
    return inst


def record_text(model_spec, tokens: int, *, text=None, context: int | None = None,
                decode: bool = False, seed: int = 0, preset: str = "wdmoe-sim",
                gains: tuple[np.ndarray, np.ndarray] | None = None, sizes: str = "preset",
                recording: dict | None = None, similarity: bool = False,
                **overrides) -> Instance:
    """What ``wdmoe-opt record`` writes: the instance of a model run on ``tokens`` tokens.

    ``model_spec`` is a name or checkpoint path (:func:`~.models.load_model`); the
    tokens are the first ``tokens`` of ``text`` (random ids from ``seed`` without
    one), run as a prefill batch of ``tokens / context`` sequences (``context``
    default: :func:`~.models.default_context`). ``decode`` keeps only the last token of
    each sequence (a decode step of that batch). ``sizes``: ``preset`` prices a
    token with the preset's model (Mixtral 8x7B, eqs. 4-5), ``model`` with this
    model's dims. ``recording`` entries are added to the provenance.
    """
    from .models import default_context, load_model, token_ids, windows

    if sizes not in ("preset", "model"):
        raise InputError("sizes", "must be 'preset' or 'model'", sizes)
    loaded = load_model(model_spec, seed)
    input_ids, how = token_ids(loaded, tokens, seed, text)
    context = default_context(loaded, tokens) if context is None else context
    weights = record_gating(loaded.model, windows(input_ids, context))
    if decode:
        weights = weights[:, context - 1::context]
    if sizes == "model":
        overrides = {**overrides, **loaded.dims()}
    instance = recorded_instance(
        weights, top_k=int(loaded.model.config.num_experts_per_tok),
        source=f"recorded:{loaded.name}", preset=preset, seed=seed, gains=gains,
        recording={"model": str(model_spec), "tokens": how, "text": None if text is None
                   else str(text), "context": context, "decode": decode, "sizes": sizes,
                   **loaded.dims(), **(recording or {})}, **overrides)
    if similarity:
        from .similarity import measure_similarity
        instance = instance.replace(similarity=measure_similarity(
            loaded.model, windows(input_ids, context), seed=seed))
    return instance
