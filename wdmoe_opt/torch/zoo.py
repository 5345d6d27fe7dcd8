"""Trained models shipped with wdmoe-opt, and the next-token scores of a model on text.

``wdmoe-tiny-moe`` is a 4-layer Mixtral-architecture byte-level causal LM (8
experts, Top-2) trained by ``benchmarks/train_tiny_moe.py`` on the English
documentation that ships with CPython (``pydoc_data.topics``), split by
document into train and held-out parts. Its directory holds the checkpoint
(``model.safetensors``, ``config.json``), the training log
(``training.json``: corpus hash, split, command, loss curve, final held-out
loss) and the held-out text itself (``heldout.txt``), so its held-out loss can
be re-measured on any machine whatever the local Python's docs say.
See ``docs/model-zoo.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..io import read_solution_dict
from ..io.solution_io import selection_from_document
from ..model import topk_mask
from .live import Policy, fixed_policy, method_policy, run_with_policy
from .models import LoadedModel, default_context, load_model, text_ids, token_ids, windows
from .record import record_gating, recorded_instance

#: Directory of the shipped checkpoints, one sub-directory per model name.
ZOO = Path(__file__).resolve().parent / "checkpoints"
#: The shipped trained models.
ZOO_MODELS = ("wdmoe-tiny-moe",)


def zoo_path(name: str) -> Path:
    """The checkpoint directory of a shipped model (``wdmoe-tiny-moe``)."""
    if name not in ZOO_MODELS:
        raise InputError("model", "is not a shipped model; known: " + ", ".join(ZOO_MODELS), name)
    path = ZOO / name
    if not (path / "model.safetensors").is_file():
        raise InputError("model", f"checkpoint is missing from {path} (a broken install?)", name)
    return path


def training_record(name: str) -> dict:
    """The training log of a shipped model (``training.json``)."""
    return json.loads((zoo_path(name) / "training.json").read_text())


def heldout_text(name: str) -> Path:
    """The held-out text file shipped with a model (never seen in training)."""
    return zoo_path(name) / "heldout.txt"


def heldout_sequences(loaded: LoadedModel, name: str) -> torch.Tensor:
    """The shipped held-out text of model ``name`` as ``[n, context]`` sequences of its
    training context (the tail shorter than one is dropped), ids for ``loaded``."""
    ids, _ = text_ids(loaded, heldout_text(name))
    return windows(ids, training_record(name)["heldout"]["context"], whole=False)


def heldout_batches(name: str, batches: int, seqs: int) -> tuple[LoadedModel, list[torch.Tensor]]:
    """A shipped model and ``batches`` prefill batches of ``seqs`` held-out sequences
    (its training context each), spread over the whole held-out text and interleaved
    (batch ``b`` takes every ``batches``-th of the evenly spaced sequences from ``b``)."""
    loaded = load_model(name)
    held = heldout_sequences(loaded, name)
    if batches * seqs > held.shape[0]:
        raise InputError("batches x seqs", f"must be at most the {held.shape[0]} held-out "
                         "sequences", batches * seqs)
    picked = held[np.linspace(0, held.shape[0] - 1, batches * seqs).astype(int)]
    return loaded, [picked[b::batches] for b in range(batches)]


def pydoc_corpus() -> tuple[dict[str, str], str]:
    """CPython's English documentation topics (``pydoc_data.topics``), offline on
    every machine, and the sha256 of their UTF-8 text in sorted-key order."""
    from pydoc_data.topics import topics

    h = hashlib.sha256()
    for key in sorted(topics):
        h.update(key.encode() + b"\0" + topics[key].encode() + b"\0")
    return dict(topics), h.hexdigest()


def split_documents(keys, every: int = 8, offset: int = 3) -> tuple[list[str], list[str]]:
    """Train and held-out document keys: of the sorted keys, every ``every``-th
    (starting at ``offset``) is held out."""
    ordered = sorted(keys)
    return ([k for i, k in enumerate(ordered) if i % every != offset],
            [k for i, k in enumerate(ordered) if i % every == offset])


def calibration_ids(tokens: int) -> torch.Tensor:
    """``[1, tokens]`` byte ids: the first ``tokens`` bytes of the shipped models'
    training documents (calibration text for the similarity tables, SPEC §6)."""
    topics, _ = pydoc_corpus()
    train, _ = split_documents(topics)
    text = "".join(topics[k] for k in train).encode("utf-8")[:tokens]
    return torch.as_tensor(np.frombuffer(text, np.uint8).astype(np.int64))[None]


def next_token_scores(model: nn.Module, input_ids: torch.Tensor, policy: Policy | None = None,
                      batch: int = 64) -> dict:
    """Next-token cross-entropy and top-1 accuracy of ``model`` on ``input_ids``
    (``[n, seq]``; each row an independent sequence, predicting its tokens 2..seq).

    ``policy`` steers every router (:func:`~wdmoe_opt.torch.live.run_with_policy`);
    None runs the router's own Top-K. Rows are scored ``batch`` at a time (a
    policy sees one batch's tokens per layer, ``J = batch * seq``).
    Returns ``loss_nats_per_token``, ``top1_accuracy``, ``tokens`` (predicted
    tokens), ``retained_weight`` (SPEC §1's proxy: kept router probability over the
    router Top-K's, summed over layers and tokens; 1 under Top-K) and
    ``experts_per_token`` (mean over layers and tokens of the experts run).
    """
    top_k = int(model.config.num_experts_per_tok)
    nll, hits, count, kept, top, runs = 0.0, 0, 0, 0.0, 0.0, 0
    for start in range(0, input_ids.shape[0], batch):
        ids = input_ids[start:start + batch]
        logits, weights, masks = run_with_policy(model, ids, policy)
        logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
        target = ids[:, 1:]
        nll -= float(logp.gather(-1, target[..., None]).sum())
        hits += int((logp.argmax(dim=-1) == target).sum())
        count += target.numel()
        kept += float((weights * masks).sum())
        top += float((weights * topk_mask(weights, top_k)).sum())
        runs += int(masks.sum())
    return {"loss_nats_per_token": nll / count, "top1_accuracy": hits / count, "tokens": count,
            "retained_weight": kept / top,
            "experts_per_token": runs / (input_ids.numel() * masks.shape[0])}


def evaluate_text(model_spec: str, text: str | os.PathLike, *, tokens: int | None = None,
                  context: int | None = None, solution: str | os.PathLike | None = None,
                  policy: str | None = None, options: dict | None = None,
                  preset: str = "wdmoe-sim", seed: int = 0, batch: int = 64) -> dict:
    """What ``wdmoe-opt evaluate`` prints: :func:`next_token_scores` of a model on a text.

    The first ``tokens`` tokens of ``text`` (default: all) are cut into independent
    sequences of ``context`` tokens (default :func:`~.models.default_context`; without
    ``tokens``, the tail shorter than a sequence is dropped). The selection is the
    router's Top-K, or ``policy`` (a P2 method, or a P1 method in full, run live by
    :func:`~.live.method_policy` with ``options`` on ``preset``'s system at ``seed``), or
    the selection of the ``solution`` file replayed verbatim (it must have been solved
    on an instance recorded from the same tokens: all of them run as one batch).
    """
    loaded = load_model(model_spec, seed)
    ids, _ = token_ids(loaded, text_ids(loaded, text)[0].size if tokens is None else tokens,
                       seed, text)
    n = ids.shape[1]
    ctx = default_context(loaded, n) if context is None else context
    seqs = windows(ids, ctx, whole=tokens is not None)
    selection, live = "router top-k", None
    if solution is not None:
        live, selection = _solution_policy(solution, loaded.model, seqs), f"solution {solution}"
        batch = seqs.shape[0]
    elif policy is not None:
        instance = recorded_instance(record_gating(loaded.model, seqs[:1]),
                                     top_k=int(loaded.model.config.num_experts_per_tok),
                                     source=f"recorded:{loaded.name}", preset=preset, seed=seed)
        live = method_policy(instance, policy, **(options or {}))
        selection = f"policy {policy}" + "".join(f" {k}={v}" for k, v in (options or {}).items())
    scores = next_token_scores(loaded.model, seqs, live, batch)
    return {"model": str(model_spec), "text": str(text), "sequences": int(seqs.shape[0]),
            "context": int(ctx), "selection": selection, **scores}


def _solution_policy(path, model: nn.Module, seqs: torch.Tensor) -> Policy:
    """:func:`~.live.fixed_policy` of a solution file's selection, whose shape must be
    the model's MoE layers x the ``seqs`` tokens x its experts (solve an instance
    recorded from the same tokens)."""
    doc = read_solution_dict(path)
    shaped = recorded_instance(record_gating(model, seqs), top_k=int(
        model.config.num_experts_per_tok), source="recorded:evaluate")
    return fixed_policy(selection_from_document(doc, shaped, field=f"--solution {path}"))
