"""Models to record from: tiny random ones by name, or a local checkpoint by path.

No weights can be downloaded here, so the named models are tiny ``transformers``
configs (2 layers, hidden size 32, 8 experts, Top-2) initialized at random from
the seed. A path loads a local checkpoint with ``from_pretrained`` and
``local_files_only=True``: the code path a user runs on a real Mixtral,
Qwen-MoE or OLMoE checkpoint they have on disk.

Token ids (SPEC leaves the text open): random ids drawn from the seed; or, with
a text file, the checkpoint's own tokenizer when the directory has one, and
otherwise the file's bytes mapped into the vocabulary (``id = byte mod V``,
one-to-one for the tiny models, whose vocabulary is the 256 byte values).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..rng import check_random_state

#: Shared by every tiny config: byte-level vocabulary, 2 layers, hidden size 32.
#: ``initializer_range = 0.2`` gives router logits of standard deviation ~1 (a
#: trained router's spread); the transformers default 0.02 makes them near-uniform.
_TINY_COMMON = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                    initializer_range=0.2, pad_token_id=0, bos_token_id=1, eos_token_id=2)

#: Files whose presence says a checkpoint directory ships its tokenizer.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")

#: name -> (transformers config class name, family-specific fields)
TINY_MODELS: dict[str, tuple[str, dict]] = {
    "tiny-mixtral": ("MixtralConfig", dict(num_local_experts=8, num_experts_per_tok=2)),
    "tiny-qwen2-moe": ("Qwen2MoeConfig", dict(
        num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
        shared_expert_intermediate_size=64, norm_topk_prob=False)),
    "tiny-olmoe": ("OlmoeConfig", dict(num_experts=8, num_experts_per_tok=2,
                                       norm_topk_prob=False)),
}


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM in eval mode, its name, and its tokenizer (None if it has none)."""

    name: str
    model: nn.Module
    tokenizer: object | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    def dims(self) -> dict[str, int]:
        """The model's hidden and expert FFN sizes (``m``, ``m_h`` of eqs. 4-5)."""
        cfg = self.model.config
        ffn = getattr(cfg, "moe_intermediate_size", None) or cfg.intermediate_size
        return {"hidden_dim": int(cfg.hidden_size), "ffn_hidden_dim": int(ffn)}


def tiny_model(name: str, seed: int = 0) -> LoadedModel:
    """A tiny random model of a known family (``tiny-mixtral``, ``tiny-qwen2-moe``,
    ``tiny-olmoe``), initialized from ``seed`` without touching torch's global RNG."""
    import transformers

    if name not in TINY_MODELS:
        raise InputError("model", "is not a tiny model name; known: " + ", ".join(TINY_MODELS),
                         name)
    config_name, fields = TINY_MODELS[name]
    config = getattr(transformers, config_name)(**_TINY_COMMON, **fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config)
    return LoadedModel(name, model.eval())


def load_model(spec: str | os.PathLike, seed: int = 0) -> LoadedModel:
    """A tiny random model by name, a shipped trained model by name (``wdmoe-tiny-moe``,
    see :mod:`wdmoe_opt.torch.zoo`), or a local ``transformers`` checkpoint directory."""
    if str(spec) in TINY_MODELS:
        return tiny_model(str(spec), seed)
    import transformers

    from .zoo import ZOO_MODELS, zoo_path

    path = zoo_path(str(spec)) if str(spec) in ZOO_MODELS else Path(spec)
    if not (path / "config.json").is_file():
        raise InputError("model", "must be a model name (" + ", ".join((*TINY_MODELS, *ZOO_MODELS))
                         + ") or a local checkpoint directory with a config.json", str(spec))
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()   # one line of output per command
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    tokenizer = None
    # only a directory with tokenizer files has a tokenizer (without them, transformers
    # may build an empty one of the family's class that maps any text to no ids)
    if any((path / f).is_file() for f in _TOKENIZER_FILES):
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return LoadedModel(path.name, model.eval(), tokenizer)


def token_ids(loaded: LoadedModel, tokens: int, seed: int = 0,
              text: str | os.PathLike | None = None) -> tuple[torch.Tensor, str]:
    """``[1, tokens]`` input ids and how they were made (``random-ids``,
    ``tokenizer`` or ``bytes-mod-vocab``; see the module docstring)."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or tokens < 1:
        raise InputError("tokens", "must be a positive integer", tokens)
    V = loaded.vocab_size
    if text is None:
        ids, how = check_random_state(seed).integers(0, V, tokens), "random-ids"
    else:
        ids, how = text_ids(loaded, text)
        if ids.size < tokens:
            raise InputError("text", f"gives {ids.size} tokens ({how}); --tokens asks for {tokens}",
                             str(text))
    return torch.as_tensor(np.asarray(ids[:tokens], dtype=np.int64))[None, :], how


def text_ids(loaded: LoadedModel, text: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Every token id of the file ``text`` and how they were made (``tokenizer`` or
    ``bytes-mod-vocab``; see the module docstring)."""
    try:
        raw = Path(text).read_bytes()
    except OSError as exc:
        raise InputError("text", f"cannot be read ({exc.strerror})", str(text)) from None
    if loaded.tokenizer is not None:
        ids = np.asarray(loaded.tokenizer(raw.decode("utf-8", errors="replace"))["input_ids"])
        return ids.astype(np.int64), "tokenizer"
    return np.frombuffer(raw, dtype=np.uint8).astype(np.int64) % loaded.vocab_size, \
        "bytes-mod-vocab"


def windows(ids, context: int, whole: bool = True) -> torch.Tensor:
    """Token ids (``[N]`` or ``[1, N]``) cut into ``[N // context, context]`` independent
    sequences: a prefill batch of ``N // context`` sequences. ``whole``: ``N`` must be a
    multiple of ``context``; otherwise the tail shorter than a sequence is dropped."""
    flat = torch.as_tensor(np.asarray(ids, dtype=np.int64)).reshape(-1)
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
        raise InputError("context", "must be a positive integer", context)
    n = flat.numel() // context
    if n < 1 or (whole and n * context != flat.numel()):
        raise InputError("context", f"must divide the {flat.numel()} tokens"
                         if whole else f"must be at most the {flat.numel()} tokens", context)
    return flat[:n * context].reshape(n, context)


def default_context(loaded: LoadedModel, tokens: int) -> int:
    """``tokens``, capped at the model's ``max_position_embeddings`` (the trained
    ``wdmoe-tiny-moe`` saw sequences of 128 bytes; longer inputs become a batch)."""
    return min(int(tokens), int(getattr(loaded.model.config, "max_position_embeddings", tokens)))
