"""Accuracy vs predicted latency of live selection policies on tiny random MoE models.

For each model family and seed: record the gating weights of ``--tokens`` random
token ids, build the ``wdmoe-sim`` instance from them, then run every policy
inside the forward pass and measure the KL divergence of the next-token
distribution and the top-1 agreement against the unmodified model, beside the
latency the WDMoE model predicts (uniform split, and the optimal P3 split).

    .venv/bin/python benchmarks/live_policy.py            # ~1 min on 2 cores
    .venv/bin/python benchmarks/live_policy.py --models ~/models/OLMoE-1B-7B-0924 --out out/

Writes ``docs/figures/torch_live_policy.{csv,md,png}``. Needs the torch extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _tables import markdown_table  # noqa: E402

from wdmoe_opt import SelectionProblem, solve  # noqa: E402
from wdmoe_opt.torch import (  # noqa: E402
    TINY_MODELS,
    evaluate_policies,
    fixed_policy,
    load_model,
    method_policy,
    record_gating,
    recorded_instance,
    token_ids,
    topk_policy,
)

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"


def policies(instance):
    """The compared policies: router Top-K, the paper's Algorithms 1 and 2 run live
    layer by layer, Algorithm 1 solved offline on the recorded weights and replayed,
    and Top-1. (Exact P2, ``milp-highspy``, hits its 60 s limit per layer at 128
    tokens, too slow to run live here.)"""
    k = instance.model.top_k
    offline = solve(SelectionProblem(instance), "alg1").selection
    return {"topk": topk_policy(k), "alg1 live": method_policy(instance, "alg1"),
            "alg1 offline": fixed_policy(offline), "alg2 live": method_policy(instance, "alg2"),
            "top1": topk_policy(1)}


def measure(model_name: str, seed: int, tokens: int) -> pd.DataFrame:
    """One row per policy for one model (tiny name or checkpoint path) and seed."""
    loaded = load_model(model_name, seed)
    ids, _ = token_ids(loaded, tokens, seed)
    instance = recorded_instance(record_gating(loaded.model, ids),
                                 top_k=int(loaded.model.config.num_experts_per_tok),
                                 source=f"recorded:{model_name}", seed=seed)
    reports = evaluate_policies(loaded.model, ids, instance, policies(instance),
                                bandwidth=("uniform", "exact"))
    rows = pd.DataFrame([r.as_row() for r in reports])
    for col in ("latency_uniform_s", "latency_exact_s"):
        rows[col.replace("_s", "_vs_topk")] = rows[col] / rows.loc[0, col]
    return rows.assign(model=model_name, seed=seed)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of each (model, policy)."""
    cols = ["latency_uniform_vs_topk", "latency_exact_vs_topk", "retained_weight",
            "kl_mean_nats", "top1_agreement"]
    return (rows.groupby(["model", "policy"], sort=False)[cols].mean().reset_index())


def plot(summary: pd.DataFrame, path: Path) -> None:
    """Accuracy (KL, top-1 agreement) against predicted latency: colour = model,
    marker = policy."""
    markers = dict(zip(summary["policy"].unique(), "osD^vPX*", strict=False))
    colours = dict(zip(summary["model"].unique(), plt.rcParams["axes.prop_cycle"].by_key()
                       ["color"], strict=False))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, col in zip(axes, ("kl_mean_nats", "top1_agreement"), strict=True):
        for row in summary.itertuples():
            ax.plot(row.latency_uniform_vs_topk, getattr(row, col), markers[row.policy],
                    color=colours[row.model], alpha=0.85)
        ax.set_xlabel("predicted latency / Top-K latency (uniform split)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("KL(ref || policy), nats per token")
    axes[1].set_ylabel("top-1 agreement with the unmodified model")
    handles = ([plt.Line2D([], [], color=c, marker="o", ls="", label=m)
                for m, c in colours.items()]
               + [plt.Line2D([], [], color="grey", marker=k, ls="", label=p)
                  for p, k in markers.items()])
    axes[1].legend(handles=handles, fontsize=8, loc="lower right")
    fig.suptitle("Live selection on tiny random MoE models: measured accuracy vs predicted latency")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TINY_MODELS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args()
    rows = pd.concat([measure(m, int(s), args.tokens) for m in args.models.split(",")
                      for s in args.seeds.split(",")], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out / "torch_live_policy.csv", index=False)
    summary = summarize(rows)
    table = markdown_table(summary, ".3f")
    (args.out / "torch_live_policy.md").write_text(
        f"Mean over seeds {args.seeds}, {args.tokens} tokens (benchmarks/live_policy.py)\n\n"
        + table + "\n")
    plot(summary, args.out / "torch_live_policy.png")
    print(table)


if __name__ == "__main__":
    main()
