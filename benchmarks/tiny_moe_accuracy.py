"""Accuracy measured, not proxied: every selection policy run inside ``wdmoe-tiny-moe``.

Held-out text (documents never trained on) runs in prefill batches of ``--seqs``
sequences of 128 bytes (``J = 512`` tokens by default; ``--seqs 8`` is the paper's
1024, at twice the CPU time). Each batch gets the ``wdmoe-sim`` system (channels from the batch's
seed; token sizes priced at Mixtral 8x7B, eqs. 4-5) with the batch's own gating
weights. Each policy then runs live, layer by layer, on the router
probabilities of that forward pass (the router Top-2, Top-1, Algorithm 1 at
several initial thresholds theta0, Algorithm 2, the exact per-layer MILP of P2,
``p1-floor/greedy`` (the weight floor) at several floors, and the P4 (SiftMoE)
methods: ``p4/relax`` at several deviation budgets and the ``p4/skip-threshold`` and
``p4/substitute`` baselines, with the similarity tables measured on the trained
model over ``--calibration`` bytes of training text), and we measure:

* next-byte cross-entropy and top-1 accuracy against the text, and the KL
  divergence from the unmodified model (``KL(p_topk || p_policy)``);
* the predicted latency per batch (eq. 13) and energy (transmit + compute) at the
  uniform split and at the optimal P3 bandwidth (not for P4 points, which may leave
  a token with no expert, outside P3's eq. 16);
* the accuracy proxies: retained weight (SPEC §1) of the live selection and the P4
  bound ``Delta`` (SPEC §6, SiftMoE's Prop. 1) of its actions on the live weights (a
  dropped Top-K expert is a skip), summed over layers, mean over tokens.

A P4 point runs its actions (a replacement uses expert ``r``'s output at the replaced
expert's weight, a skip drops the output without renormalizing), layer by layer on
the live weights (``wdmoe_opt.torch.p4_policy``); the P2/P1 policies keep a subset of
the Top-2 and the router renormalizes over it.

It reports Pareto fronts (latency and energy vs measured loss) and the
Spearman rank correlation, over all (policy, batch) points, of each proxy with
the measured loss change against Top-2 in the same batch.

    .venv/bin/python benchmarks/tiny_moe_accuracy.py          # ~6 min of CPU

Writes ``docs/figures/tiny_moe_accuracy.{csv,md,png}``. Needs the torch extra.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from _tables import markdown_table  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from tqdm import tqdm  # noqa: E402

from wdmoe_opt import BandwidthProblem, solve  # noqa: E402
from wdmoe_opt.model import (  # noqa: E402
    Selection,
    energy_j,
    retained_weight,
    total_latency_s,
    uniform_bandwidth_hz,
)
from wdmoe_opt.model.deviation import deviation, selection_from_actions, topk_experts  # noqa: E402
from wdmoe_opt.torch import (  # noqa: E402
    method_policy,
    output_divergence,
    p4_policy,
    record_gating,
    recorded_instance,
    run_with_actions,
    run_with_policy,
    topk_policy,
)
from wdmoe_opt.torch.similarity import measure_similarity  # noqa: E402
from wdmoe_opt.torch.zoo import calibration_ids, heldout_batches  # noqa: E402

NAME = "wdmoe-tiny-moe"
FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
THETAS = (0.3, 0.5, 0.7, 0.9)
FLOORS = (0.95, 0.9, 0.8, 0.7)
BUDGETS = (0.3, 1.0, 3.0)


def policies(instance, milp_limit: float) -> dict:
    """Every compared policy, for the system and placement of ``instance``."""
    out = {"topk": topk_policy(2), "top1": topk_policy(1)}
    out.update({f"alg1 theta0={t}": method_policy(instance, "alg1", theta0=t) for t in THETAS})
    out["alg2"] = method_policy(instance, "alg2")
    out["milp (exact P2)"] = method_policy(instance, "milp-highspy", time_limit=milp_limit)
    out.update({f"weight-floor {f}": method_policy(instance, "p1-floor/greedy",
                                                   min_retained_weight=f) for f in FLOORS})
    return out


def p4_policies(instance) -> dict:
    """The P4 methods, as action policies (``instance`` carries the similarity tables)."""
    out = {f"p4/relax eps={b:g}": p4_policy(instance, "relax", b) for b in BUDGETS}
    out["p4/skip-threshold"] = p4_policy(instance, "skip-threshold")
    out["p4/substitute"] = p4_policy(instance, "substitute")
    return out


def kept_actions(instance, selection: Selection) -> np.ndarray:
    """A Top-K subset as P4 actions: a kept expert keeps (``a = e``), a dropped one skips."""
    e = topk_experts(instance)
    kept = np.take_along_axis(selection.mask, e, axis=2)
    return np.where(kept, e, -1)


def scores(logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, float]:
    """Next-token cross-entropy (nats) and top-1 accuracy of ``logits`` on ``ids``."""
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    target = ids[:, 1:]
    return (float(-logp.gather(-1, target[..., None]).mean()),
            float((logp.argmax(-1) == target).double().mean()))


def measure(args) -> pd.DataFrame:
    loaded, batches = heldout_batches(NAME, args.batches, args.seqs)
    similarity = measure_similarity(loaded.model, calibration_ids(args.calibration))
    rows = []
    for b, batch in enumerate(tqdm(batches, desc="batches")):
        instance = recorded_instance(record_gating(loaded.model, batch), top_k=2,
                                     source=f"recorded:{NAME}", seed=b
                                     ).replace(similarity=similarity)
        ref_logits, _, _ = run_with_policy(loaded.model, batch, None)
        runs = {**{name: (run_with_policy, p) for name, p in
                   policies(instance, args.milp_limit).items()},
                **{name: (run_with_actions, p) for name, p in p4_policies(instance).items()}}
        for name, (run, policy) in runs.items():
            logits, w, ran = run(loaded.model, batch, policy)
            live = replace(instance, gating_weights=w)
            if run is run_with_actions:
                actions, sel = ran, selection_from_actions(live, ran)
            else:
                sel = Selection(ran)
                actions = kept_actions(live, sel)
            uniform = uniform_bandwidth_hz(live)
            # P3 needs every token to keep an expert (eq. 16); P4 is solved at the uniform split
            exact = None if run is run_with_actions else solve(BandwidthProblem(live, sel),
                                                               "exact")
            loss, top1 = scores(logits, batch)
            kl, _, agree = output_divergence(ref_logits, logits)
            rows.append({"batch": b, "policy": name, "loss_nats": loss, "top1_accuracy": top1,
                         "kl_nats": kl, "top1_agreement": agree,
                         "retained_weight": retained_weight(live, sel),
                         "p4_delta": float(deviation(live, actions).sum(0).mean()),
                         "experts_per_token": float(sel.mask.sum(-1).mean()),
                         "latency_uniform_s": float(total_latency_s(live, sel, uniform)),
                         "latency_exact_s": np.nan if exact is None else exact.objective_s,
                         "energy_uniform_j": energy_j(live, sel, uniform),
                         "energy_exact_j": (np.nan if exact is None
                                            else energy_j(live, sel, exact.bandwidth_hz))})
    rows = pd.DataFrame(rows)
    base = rows[rows.policy == "topk"].set_index("batch")
    for col in ("loss_nats", "latency_uniform_s", "latency_exact_s", "energy_uniform_j",
                "energy_exact_j"):
        ref = rows.batch.map(base[col])
        rows[f"{col}_vs_topk"] = rows[col] - ref if col == "loss_nats" else rows[col] / ref
    return rows


def summarize(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Mean per policy; Spearman of each proxy with the measured loss change."""
    cols = ["loss_nats", "loss_nats_vs_topk", "top1_accuracy", "kl_nats", "retained_weight",
            "p4_delta", "experts_per_token", "latency_uniform_s_vs_topk", "latency_exact_s_vs_topk",
            "energy_uniform_j_vs_topk", "energy_exact_j_vs_topk"]
    table = rows.groupby("policy", sort=False)[cols].mean().reset_index()
    moved = rows[rows.policy != "topk"]
    corr = {"retained weight (1 - w)": spearmanr(1 - moved.retained_weight,
                                                 moved.loss_nats_vs_topk).statistic,
            "KL from Top-2": spearmanr(moved.kl_nats, moved.loss_nats_vs_topk).statistic,
            "P4 bound Delta": spearmanr(moved.p4_delta, moved.loss_nats_vs_topk).statistic,
            "experts dropped": spearmanr(-moved.experts_per_token,
                                         moved.loss_nats_vs_topk).statistic}
    return table, {k: float(v) for k, v in corr.items()}


def pareto(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other beats on both (lower x, lower y), by x."""
    order = np.lexsort((y, x))
    front, best = [], np.inf
    for i in order:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return np.asarray(front)


def plot(table: pd.DataFrame, tokens: int, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, col, label in ((axes[0], "latency_exact_s_vs_topk", "latency (optimal P3) / Top-2"),
                           (axes[1], "energy_uniform_j_vs_topk",
                            "energy (uniform split, P4's setting) / Top-2")):
        shown = table[np.isfinite(table[col])]
        x, y = shown[col].to_numpy(), shown["loss_nats"].to_numpy()
        for name, xi, yi in zip(shown.policy, x, y, strict=True):
            ax.plot(xi, yi, "s" if name.startswith("p4/") else "o", ms=5)
            ax.annotate(name, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = pareto(x, y)
        ax.plot(x[front], y[front], "k--", lw=1, label="Pareto front")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("measured held-out loss, nats/byte")
    fig.suptitle(f"{NAME}: measured accuracy vs predicted latency and energy "
                 f"(J = {tokens} prefill batches, wdmoe-sim at Mixtral sizes)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--seqs", type=int, default=4, help="sequences of 128 bytes per batch")
    parser.add_argument("--milp-limit", type=float, default=10.0,
                        help="time limit (s, all layers) of the exact P2 MILP per batch")
    parser.add_argument("--calibration", type=int, default=512,
                        help="bytes of training text the similarity tables are measured on")
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = measure(args)
    table, corr = summarize(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out / "tiny_moe_accuracy.csv", index=False)
    text = (f"{args.batches} held-out batches of {args.seqs} x 128 bytes, wdmoe-sim at Mixtral "
            "sizes (benchmarks/tiny_moe_accuracy.py); means over batches\n\n"
            + markdown_table(table, ".4f") + "\n\n"
            "Spearman rank correlation with the measured loss change vs Top-2, over all "
            "(policy, batch) points:\n\n" + "\n".join(f"* {k}: {v:.3f}" for k, v in corr.items()))
    (args.out / "tiny_moe_accuracy.md").write_text(text + "\n")
    plot(table, 128 * args.seqs, args.out / "tiny_moe_accuracy.png")
    print(text)


if __name__ == "__main__":
    main()
