"""SiftMoE's similarity tables and layer sensitivities, measured on a torch MoE model
(SPEC §6; ``wdmoe-opt record --similarity``).

* Every MoE layer's experts module is hooked to capture its input hidden states ``x``
  (the calibration tokens); each expert ``e`` is then run on all of them,
  ``F_e(x)`` ``[E, T, H]``, through the experts module's own interface
  (``experts(x, top_k_index = e, top_k_weights = 1)``, the transformers >= 5
  convention of Mixtral, Qwen2-MoE, OLMoE).
* ``replace[i, e, r] = mean_x ||F_e(x) - F_r(x)||_2``, ``skip[i, e] = mean_x ||F_e(x)||_2``.
* Sensitivities (SiftMoE's Thm. 1): a small random error ``delta`` added to the MoE
  output of layer ``i`` changes the last layer's hidden states by ``a_i ||delta||``
  at most (``a_i`` = the largest per-token ratio); ``a_{I-1} = 1`` and
  ``s_{i+1} = max(1, a_i / a_{i+1})``, so that ``prod_{i' > i} s_{i'} >= a_i``
  (clipped at 1, as the theorem's ``s >= 1``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..model.similarity import Similarity
from .adapters import MoEAdapter, adapter_for

#: Relative size of the random error injected to measure the sensitivities.
PERTURBATION = 1e-3


def experts_modules(model: nn.Module, adapter: MoEAdapter | None = None) -> list[nn.Module]:
    """The experts module next to every router (``<block>.experts``), in layer order."""
    adapter = adapter_for(model, adapter)
    out = []
    for r in adapter.routers(model):
        block = model.get_submodule(r.name.rpartition(".")[0])
        experts = getattr(block, "experts", None)
        if experts is None:
            raise InputError("model", "has a router without an 'experts' sibling", r.name)
        out.append(experts)
    return out


def expert_outputs(experts: nn.Module, x: torch.Tensor, n_experts: int) -> torch.Tensor:
    """``[E, T, H]``: every expert's output on the hidden states ``x`` ``[T, H]``."""
    T = x.shape[0]
    ones = torch.ones(T, 1, dtype=x.dtype)
    return torch.stack([experts(x, torch.full((T, 1), e, dtype=torch.long), ones)
                        for e in range(n_experts)])


def capture_expert_inputs(model: nn.Module, input_ids: torch.Tensor,
                          adapter: MoEAdapter | None = None) -> list[torch.Tensor]:
    """The hidden states ``[T, H]`` entering every layer's experts module."""
    mods = experts_modules(model, adapter)
    seen: list[torch.Tensor | None] = [None] * len(mods)

    def grab(i):
        def hook(_m, args):
            seen[i] = args[0].detach().reshape(-1, args[0].shape[-1])
        return hook

    handles = [m.register_forward_pre_hook(grab(i)) for i, m in enumerate(mods)]
    try:
        with torch.no_grad():
            model(input_ids)
    finally:
        for h in handles:
            h.remove()
    return seen  # type: ignore[return-value]


def layer_sensitivities(model: nn.Module, input_ids: torch.Tensor,
                        adapter: MoEAdapter | None = None, seed: int = 0) -> np.ndarray:
    """``[I]`` sensitivities ``s_i >= 1`` (see the module docstring)."""
    adapter = adapter_for(model, adapter)
    blocks = [model.get_submodule(r.name.rpartition(".")[0]) for r in adapter.routers(model)]
    I = len(blocks)
    gen = torch.Generator().manual_seed(seed)

    def last_hidden(perturb_layer: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        injected: list[torch.Tensor] = []

        def add(_m, _args, out):
            y = out[0] if isinstance(out, tuple) else out
            d = torch.randn(y.shape, generator=gen, dtype=y.dtype)
            d = d * (PERTURBATION * y.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                     / d.norm(dim=-1, keepdim=True))
            injected.append(d)
            return (y + d, *out[1:]) if isinstance(out, tuple) else y + d

        h = None if perturb_layer is None else blocks[perturb_layer].register_forward_hook(add)
        try:
            with torch.no_grad():
                states = model(input_ids, output_hidden_states=True).hidden_states[-1]
        finally:
            if h is not None:
                h.remove()
        flat = states.reshape(-1, states.shape[-1])
        return flat, injected[0].reshape(flat.shape) if injected else None

    base, _ = last_hidden(None)
    amp = np.ones(I)
    for i in range(I):
        moved, delta = last_hidden(i)
        ratio = (moved - base).norm(dim=-1) / delta.norm(dim=-1)
        amp[i] = float(ratio.max())
    amp[-1] = 1.0
    s = np.ones(I)
    s[1:] = np.maximum(1.0, amp[:-1] / amp[1:])
    return s


def measure_similarity(model: nn.Module, input_ids: torch.Tensor,
                       adapter: MoEAdapter | None = None, seed: int = 0) -> Similarity:
    """``similarity`` block measured on ``input_ids`` (the calibration tokens)."""
    adapter = adapter_for(model, adapter)
    routers = adapter.routers(model)
    xs = capture_expert_inputs(model, input_ids, adapter)
    replace, skip = [], []
    with torch.no_grad():
        for r, mod, x in zip(routers, experts_modules(model, adapter), xs, strict=True):
            f = expert_outputs(mod, x, r.experts).to(torch.float64)       # [E, T, H]
            skip.append(f.norm(dim=-1).mean(dim=1).numpy())
            replace.append((f[:, None] - f[None, :]).norm(dim=-1).mean(dim=-1).numpy())
    d = np.stack(replace)
    d[:, np.arange(d.shape[1]), np.arange(d.shape[1])] = 0.0
    return Similarity(replace=d, skip=np.stack(skip),
                      source=f"measured: {xs[0].shape[0]} calibration tokens",
                      sensitivity=layer_sensitivities(model, input_ids, adapter, seed))


def acted_routing(index: torch.Tensor, weights: torch.Tensor, actions
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The router's Top-K ``(index, weights)`` ``[T, K]`` before and after P4
    ``actions`` ``[T, K]`` (SPEC §6; slot ``s`` = the ``s``-th Top-K expert in
    ascending id order): ``(index, weights, acted_index, acted_weights)``, the first
    pair sorted by expert id. A replacement ``r`` runs with the replaced expert's
    weight; a skip keeps the expert id at weight 0 (its output is dropped, the
    other weights are not renormalized)."""
    order = torch.argsort(index, dim=-1)                                 # ascending ids
    index, weights = torch.gather(index, 1, order), torch.gather(weights, 1, order)
    a = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=index.device)
    return (index, weights, torch.where(a >= 0, a, index),
            torch.where(a >= 0, weights, torch.zeros((), dtype=weights.dtype)))


def measured_deviation(model: nn.Module, input_ids: torch.Tensor, actions: np.ndarray,
                       adapter: MoEAdapter | None = None) -> dict[str, np.ndarray]:
    """Each token's measured change of every MoE layer's output under ``actions``
    (``[I, J, K]``: slot ``s`` acts on the token's ``s``-th router Top-K expert in
    ascending id order; ``-1`` skip) against the bounds, all ``[I, J]``:

    * ``measured``: ``||y - y'||`` with ``y``, ``y'`` the experts module's outputs
      on the layer's own input for the router's choice and for the actions (the
      replacement weighted by the replaced expert's mixing weight, a skip by 0);
    * ``bound``: the triangle inequality with this token's expert outputs,
      ``sum_s g_s ||F_{e_s}(x) - F_{a_s}(x)||`` (``g`` the router's mixing weights);
    * ``gate``: the mixing weights ``g`` ``[I, J, K]`` (to score the table estimate).

    Each layer is evaluated on the inputs of the unmodified model (one layer at a
    time, as SiftMoE's Prop. 1 bounds one layer).
    """
    adapter = adapter_for(model, adapter)
    routers = adapter.routers(model)
    outs: list = [None] * len(routers)

    def keep(i, _router, output):
        outs[i] = output

    from .record import router_hooks
    with router_hooks(routers, keep):
        xs = capture_expert_inputs(model, input_ids, adapter)
    mods = experts_modules(model, adapter)
    measured, bound, gate = [], [], []
    with torch.no_grad():
        for i, (r, mod, x) in enumerate(zip(routers, mods, xs, strict=True)):
            _, w_top, idx = outs[i]
            idx, g, acted_idx, acted_g = acted_routing(idx, w_top.to(x.dtype), actions[i])
            a = torch.as_tensor(np.asarray(actions[i]), dtype=torch.long)
            y = mod(x, idx, g)
            y2 = mod(x, acted_idx, acted_g)
            measured.append((y - y2).to(torch.float64).norm(dim=-1).numpy())
            f = expert_outputs(mod, x, r.experts).to(torch.float64)       # [E, T, H]
            t = torch.arange(x.shape[0])[:, None]
            fe = f[idx, t]                                               # [T, K, H]
            fa = torch.where((a >= 0)[..., None], f[a.clamp_min(0), t], 0.0)
            bound.append((g.to(torch.float64) * (fe - fa).norm(dim=-1)).sum(dim=-1).numpy())
            gate.append(g.to(torch.float64).numpy())
    return {"measured": np.stack(measured), "bound": np.stack(bound), "gate": np.stack(gate)}
