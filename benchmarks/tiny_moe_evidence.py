"""Evidence that ``wdmoe-tiny-moe`` learned: held-out loss against baselines, router statistics.

On the shipped held-out text (documents never trained on), against the uniform
byte model (ln 256), unigram and bigram byte models fitted on the train
documents, and the same architecture untrained (initialized from ``--seed``):

* next-byte cross-entropy (nats) and top-1 accuracy;
* per MoE layer, on the held-out tokens: router entropy (nats; ln 8 = uniform),
  the Top-2 weight mass, the load of each expert (share of Top-2 slots; balanced
  = 1/8), and specialisation: the mutual information between a token's top-1
  expert and its input byte, as a fraction of the top-1 expert's entropy;
* expert similarity (SPEC §6's ``D[i,e,r] = E_x||F_e(x) - F_r(x)||`` and
  ``S[i,e] = E_x||F_e(x)||`` over the layer's held-out hidden states): the
  nearest other expert's distance relative to the expert's own output norm.

    .venv/bin/python benchmarks/tiny_moe_evidence.py        # ~1 min on 2 cores

Writes ``docs/figures/tiny_moe_evidence.{json,md,png}`` and the similarity tables,
trained against untrained, ``docs/figures/tiny_moe_similarity.{md,png}``. Needs the
torch extra.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from wdmoe_opt.model import topk_mask  # noqa: E402
from wdmoe_opt.torch import LoadedModel, load_model, next_token_scores, record_gating  # noqa: E402
from wdmoe_opt.torch.similarity import measure_similarity  # noqa: E402
from wdmoe_opt.torch.zoo import (  # noqa: E402
    heldout_sequences,
    pydoc_corpus,
    split_documents,
    training_record,
    zoo_path,
)

NAME = "wdmoe-tiny-moe"
FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"


def untrained(seed: int) -> LoadedModel:
    """The same architecture at its initialization (from ``seed``)."""
    config = transformers.AutoConfig.from_pretrained(zoo_path(NAME), local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config)
    return LoadedModel(f"{NAME} (untrained)", model.eval())


def ngram_losses(held: torch.Tensor) -> dict:
    """Cross-entropy of add-1/2 unigram and bigram byte models fitted on the train
    documents, on the held-out targets (tokens 2..context of each sequence); None
    where this Python's docs are not the training corpus."""
    docs, digest = pydoc_corpus()
    if digest != training_record(NAME)["corpus"]["sha256"]:
        return {"unigram": None, "bigram": None}
    train, _ = split_documents(docs)
    ids = np.frombuffer("\n\n".join(docs[k] for k in train).encode(), dtype=np.uint8)
    uni = np.bincount(ids, minlength=256) + 0.5
    bi = np.zeros((256, 256)) + 0.5
    np.add.at(bi, (ids[:-1], ids[1:]), 1.0)
    prev, target = held[:, :-1].numpy().ravel(), held[:, 1:].numpy().ravel()
    return {"unigram": float(-np.log(uni[target] / uni.sum()).mean()),
            "bigram": float(-np.log(bi[prev, target] / bi[prev].sum(axis=1)).mean())}


def router_stats(loaded: LoadedModel, held: torch.Tensor) -> dict:
    """Per-layer router entropy, Top-2 mass, expert loads and byte specialisation."""
    w = record_gating(loaded.model, held)                       # [I, J, E]
    k = int(loaded.model.config.num_experts_per_tok)
    top = topk_mask(w, k)
    byte = held.numpy().ravel()
    entropy = -(w * np.log(np.maximum(w, 1e-300))).sum(axis=-1).mean(axis=1)
    load = top.mean(axis=1) / k                                 # [I, E], rows sum to 1
    spec = []
    for layer in w:
        first = layer.argmax(axis=1)
        joint = np.zeros((256, layer.shape[1]))
        np.add.at(joint, (byte, first), 1.0)
        joint /= joint.sum()
        pb, pe = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
        nz = joint > 0
        mi = float((joint[nz] * np.log(joint[nz] / (pb @ pe)[nz])).sum())
        h = float(-(pe[pe > 0] * np.log(pe[pe > 0])).sum())
        spec.append(mi / h if h > 0 else 0.0)
    return {"entropy_nats": entropy.tolist(), "top2_mass": (w * top).sum(-1).mean(1).tolist(),
            "load": load.tolist(), "load_max_over_mean": (load.max(1) * load.shape[1]).tolist(),
            "specialisation": spec}


def similarity(loaded: LoadedModel, held: torch.Tensor) -> dict:
    """``D [I,E,E]``, ``S [I,E]`` and the sensitivities of SPEC §6, measured by the
    recorder (:func:`~wdmoe_opt.torch.similarity.measure_similarity`) on ``held``,
    and per expert the nearest other expert's distance ``min_r D[e,r] / S[e]``."""
    sim = measure_similarity(loaded.model, held)
    D, S = np.asarray(sim.replace), np.asarray(sim.skip)
    masked = D + np.diag(np.full(D.shape[1], np.inf))
    return {"D": D.tolist(), "S": S.tolist(), "sensitivity": np.asarray(sim.sensitivity).tolist(),
            "nearest_ratio": (masked.min(axis=2) / S).tolist()}


def measure(seed: int, calibration: int) -> dict:
    trained = load_model(NAME)
    held = heldout_sequences(trained, NAME)
    models = {"trained": trained, "untrained": untrained(seed)}
    out = {"uniform": {"loss_nats_per_token": math.log(256)}, **{
        name: {"loss_nats_per_token": loss} for name, loss in ngram_losses(held).items()}}
    for name, m in models.items():
        out[name] = {**next_token_scores(m.model, held), "router": router_stats(m, held),
                     "similarity": similarity(m, held[:calibration])}
    return out


def markdown(res: dict) -> str:
    rows = ["| model | held-out nats/byte | bits/byte | top-1 |", "| --- | --- | --- | --- |"]
    for name in ("uniform", "unigram", "bigram", "untrained", "trained"):
        loss, top1 = res[name]["loss_nats_per_token"], res[name].get("top1_accuracy")
        rows.append(f"| {name} | " + ("n/a |  n/a" if loss is None else
                                     f"{loss:.3f} | {loss / math.log(2):.3f}")
                    + f" | {'' if top1 is None else f'{top1:.3f}'} |")
    rows += ["", "| layer | model | router entropy (ln 8 = 2.079) | top-2 mass | max load / mean "
                 "| byte specialisation | nearest expert D/S (mean) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for i in range(len(res["trained"]["router"]["entropy_nats"])):
        for name in ("trained", "untrained"):
            r, s = res[name]["router"], res[name]["similarity"]
            rows.append(f"| {i} | {name} | {r['entropy_nats'][i]:.3f} | {r['top2_mass'][i]:.3f} "
                        f"| {r['load_max_over_mean'][i]:.2f} | {r['specialisation'][i]:.3f} "
                        f"| {np.mean(s['nearest_ratio'][i]):.3f} |")
    return "\n".join(rows)


def similarity_markdown(res: dict) -> str:
    """Per layer and model: the spread of ``D[e,r] / S[e]`` over ordered pairs
    ``e != r`` (a near-duplicate pair has a ratio well below 1), and the
    sensitivity ``s_i``."""
    rows = ["| layer | model | S mean | D/S min | D/S 10% | D/S median | pairs D/S < 0.5 "
            "| sensitivity |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i in range(len(res["trained"]["similarity"]["S"])):
        for name in ("trained", "untrained"):
            sim = res[name]["similarity"]
            r = _pair_ratios(sim, i)
            rows.append(f"| {i} | {name} | {np.mean(sim['S'][i]):.3f} | {r.min():.3f} "
                        f"| {np.quantile(r, 0.1):.3f} | {np.median(r):.3f} "
                        f"| {int((r < 0.5).sum())} / {r.size} | {sim['sensitivity'][i]:.2f} |")
    return "\n".join(rows)


def _pair_ratios(sim: dict, layer: int) -> np.ndarray:
    """``D[e,r] / S[e]`` over the ordered pairs ``e != r`` of one layer."""
    D, S = np.asarray(sim["D"][layer]), np.asarray(sim["S"][layer])
    return (D / S[:, None])[~np.eye(len(S), dtype=bool)]


def plot_similarity(res: dict, path: Path) -> None:
    """Heat maps of ``D[e,r] / S[e]``, trained above untrained, one column per layer."""
    I = len(res["trained"]["similarity"]["S"])
    fig, axes = plt.subplots(2, I, figsize=(3.2 * I, 6.2))
    for row, name in enumerate(("trained", "untrained")):
        sim = res[name]["similarity"]
        for i in range(I):
            D, S = np.asarray(sim["D"][i]), np.asarray(sim["S"][i])
            im = axes[row, i].imshow(D / S[:, None], cmap="viridis", vmin=0, vmax=2)
            axes[row, i].set_title(f"{name}, layer {i}", fontsize=9)
            axes[row, i].set_xlabel("replacement r")
        axes[row, 0].set_ylabel("expert e")
    fig.colorbar(im, ax=axes, shrink=0.8, label="D[e, r] / S[e]")
    fig.suptitle(f"{NAME}: replacement distance relative to the expert's own output "
                 "(SPEC §6 tables, held-out hidden states); < 1 = closer than skipping")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(res: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    names = ["uniform", "unigram", "bigram", "untrained", "trained"]
    losses = [res[n]["loss_nats_per_token"] or 0.0 for n in names]
    axes[0].bar(names, losses, color=["grey"] * 4 + ["C0"])
    axes[0].set_ylabel("held-out next-byte loss, nats")
    axes[0].tick_params(axis="x", rotation=30)
    layers = np.arange(len(res["trained"]["router"]["entropy_nats"]))
    for name, style in (("trained", "o-"), ("untrained", "s--")):
        r = res[name]["router"]
        axes[1].plot(layers, r["entropy_nats"], style, label=f"{name}: entropy")
        axes[1].plot(layers, r["specialisation"], style, alpha=0.5,
                     label=f"{name}: byte specialisation")
        axes[3].plot(layers, np.mean(res[name]["similarity"]["nearest_ratio"], axis=1), style,
                     label=name)
    axes[1].axhline(math.log(8), color="grey", ls=":", label="ln 8")
    axes[1].set_xlabel("MoE layer")
    axes[1].legend(fontsize=7)
    load = np.asarray(res["trained"]["router"]["load"])
    im = axes[2].imshow(load * load.shape[1], cmap="coolwarm", vmin=0, vmax=2, aspect="auto")
    axes[2].set_xlabel("expert")
    axes[2].set_ylabel("MoE layer")
    axes[2].set_title("trained: Top-2 load / balanced load", fontsize=9)
    fig.colorbar(im, ax=axes[2])
    axes[3].set_xlabel("MoE layer")
    axes[3].set_ylabel("nearest other expert: D / S")
    axes[3].legend(fontsize=7)
    fig.suptitle(f"{NAME}: held-out loss against baselines, router and expert statistics")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="init of the untrained model")
    parser.add_argument("--calibration", type=int, default=16,
                        help="held-out sequences whose hidden states estimate D and S")
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args()
    torch.set_num_threads(2)
    res = measure(args.seed, args.calibration)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tiny_moe_evidence.json").write_text(json.dumps(res) + "\n")
    table = markdown(res)
    (args.out / "tiny_moe_evidence.md").write_text(
        "Held-out text of wdmoe-tiny-moe (benchmarks/tiny_moe_evidence.py)\n\n" + table + "\n")
    plot(res, args.out / "tiny_moe_evidence.png")
    sim_table = similarity_markdown(res)
    (args.out / "tiny_moe_similarity.md").write_text(
        "SPEC §6 similarity tables of wdmoe-tiny-moe, trained vs untrained "
        "(benchmarks/tiny_moe_evidence.py)\n\n" + sim_table + "\n")
    plot_similarity(res, args.out / "tiny_moe_similarity.png")
    print(table + "\n\n" + sim_table)


if __name__ == "__main__":
    main()
