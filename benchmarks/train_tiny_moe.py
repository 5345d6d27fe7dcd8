"""Train ``wdmoe-tiny-moe``: a small Mixtral-architecture byte-level LM on CPython's docs.

4 MoE layers, hidden size 64, 8 experts of FFN size 128, Top-2, byte vocabulary
(256), context 128; trained with AdamW on random 128-byte windows of the train
documents of ``pydoc_data.topics`` (every 8th document of the sorted keys is held
out), with Mixtral's load-balancing auxiliary loss. CPU only, deterministic from
``--seed`` (same torch version and thread count).

    nice -n 10 .venv/bin/python benchmarks/train_tiny_moe.py      # 4.4 min, 1 thread
    .venv/bin/python benchmarks/train_tiny_moe.py --plot-only     # redraw the figure

Writes the checkpoint into ``wdmoe_opt/torch/checkpoints/wdmoe-tiny-moe/`` (``config.json``,
``model.safetensors``, ``training.json``, ``heldout.txt``) and the training curve
``docs/figures/tiny_moe_training.png``. Needs the torch extra.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tqdm import tqdm  # noqa: E402

from wdmoe_opt.torch.models import windows  # noqa: E402
from wdmoe_opt.torch.zoo import ZOO, next_token_scores, pydoc_corpus, split_documents  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "figures" / "tiny_moe_training.png"
NAME = "wdmoe-tiny-moe"
CONTEXT = 128

#: The architecture (transformers ``MixtralConfig`` fields).
ARCH = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
            num_local_experts=8, num_experts_per_tok=2, router_aux_loss_coef=0.01,
            tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def byte_ids(docs: dict[str, str], keys: list[str]) -> np.ndarray:
    """The documents' UTF-8 bytes, separated by a blank line, as int64 ids."""
    text = "\n\n".join(docs[k] for k in keys).encode()
    return np.frombuffer(text, dtype=np.uint8).astype(np.int64)


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))


def train(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    docs, corpus_hash = pydoc_corpus()
    train_keys, held_keys = split_documents(docs)
    train_ids, held_ids = byte_ids(docs, train_keys), byte_ids(docs, held_keys)
    held = windows(held_ids, CONTEXT, whole=False)
    train_probe = windows(train_ids[rng.permutation(train_ids.size // CONTEXT)[:64]
                                    [:, None] * CONTEXT + np.arange(CONTEXT)], CONTEXT)

    model = transformers.MixtralForCausalLM(transformers.MixtralConfig(**ARCH))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01,
                            betas=(0.9, 0.95))
    log = []

    def evaluate(step: int) -> None:
        model.eval()
        row = {"step": step,
               "train_loss": next_token_scores(model, train_probe)["loss_nats_per_token"],
               "heldout_loss": next_token_scores(model, held[::4])["loss_nats_per_token"]}
        model.train()
        log.append(row)
        bar.set_postfix(train=f"{row['train_loss']:.3f}", heldout=f"{row['heldout_loss']:.3f}")

    start = time.time()
    bar = tqdm(range(args.steps), desc=NAME, mininterval=10)
    model.train()
    for step in bar:
        if step % args.eval_every == 0:
            evaluate(step)
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        starts = rng.integers(0, train_ids.size - CONTEXT, args.batch)
        batch = torch.as_tensor(train_ids[starts[:, None] + np.arange(CONTEXT)])
        out = model(input_ids=batch, output_router_logits=True)
        ce = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 256),
                                               batch[:, 1:].reshape(-1))
        loss = ce + ARCH["router_aux_loss_coef"] * out.aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    evaluate(args.steps)
    model.eval()
    final = next_token_scores(model, held)
    seconds = time.time() - start

    out_dir = ZOO / NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    (out_dir / "heldout.txt").write_bytes(held_ids.astype(np.uint8).tobytes())
    record = {
        "name": NAME, "command": " ".join(["python", "benchmarks/train_tiny_moe.py",
                                           *sys.argv[1:]]),
        "corpus": {"source": "pydoc_data.topics", "sha256": corpus_hash,
                   "python": sys.version.split()[0], "documents": len(docs),
                   "train_documents": train_keys, "heldout_documents": held_keys,
                   "train_bytes": int(train_ids.size), "heldout_bytes": int(held_ids.size)},
        "training": {"seed": args.seed, "steps": args.steps, "batch": args.batch,
                     "context": CONTEXT, "lr": args.lr, "warmup": args.warmup,
                     "threads": args.threads, "seconds": round(seconds, 1),
                     "torch": torch.__version__, "transformers": transformers.__version__,
                     "parameters": sum(p.numel() for p in model.parameters())},
        "heldout": {"file": "heldout.txt", "context": CONTEXT, **final},
        "curve": log,
        "curve_heldout": f"every 4th held-out sequence ({held[::4].shape[0]} of "
                         f"{held.shape[0]}); the final 'heldout' entry scores all {held.shape[0]}",
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def plot(record: dict, path: Path) -> None:
    """Train and held-out loss (nats per byte) against the optimizer step."""
    steps = [r["step"] for r in record["curve"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [r["train_loss"] for r in record["curve"]], label="train documents")
    ax.plot(steps, [r["heldout_loss"] for r in record["curve"]], label="held-out documents")
    ax.plot([steps[-1]], [record["heldout"]["loss_nats_per_token"]], "k.",
            label="final, whole held-out text")
    ax.axhline(math.log(256), color="grey", ls=":", label="uniform over bytes (ln 256)")
    ax.set_xlabel("optimizer step (batch 16 x 128 bytes)")
    ax.set_ylabel("next-byte cross-entropy, nats")
    ax.set_title(f"{record['name']}: training curve ({record['training']['seconds']:.0f} s, "
                 f"{record['training']['threads']} thread(s))")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot-only", action="store_true",
                        help="Redraw the figure from the shipped training.json.")
    args = parser.parse_args()
    if args.plot_only:
        record = json.loads((ZOO / NAME / "training.json").read_text())
    else:
        record = train(args)
    plot(record, FIGURE)
    print(json.dumps(record["heldout"]))


if __name__ == "__main__":
    main()
