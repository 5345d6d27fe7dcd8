"""The latency-accuracy trade-off: min latency s.t. retained weight >= rho, swept over rho.

    python benchmarks/tradeoff_curve.py                 # 3 seeds, 256 tokens
    python benchmarks/tradeoff_curve.py --seeds 1 --tokens 1024

On the calibrated ``wdmoe-sim`` preset: ``p1-floor/greedy`` for each floor, with the
paper's points (Mixtral-based, WDMoE = Alg. 1 + P3, Top-K + P3) for reference.
Writes ``docs/figures/p1_tradeoff.png`` and ``docs/results/p1_tradeoff.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from wdmoe_opt import JointProblem, solve
from wdmoe_opt.generate import generate
from wdmoe_opt.harness.ablation import run_ablation
from wdmoe_opt.problems import WeightFloorProblem

FLOORS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)


def rows_for(seed: int, tokens: int) -> list[dict]:
    problem = JointProblem(generate("wdmoe-sim", seed=seed, tokens=tokens))
    base = run_ablation(problem)
    ref = base["mixtral"].objective_s
    out = [{"seed": seed, "method": v, "floor": np.nan, "ratio": s.objective_s / ref,
            "retained_weight": s.retained_weight} for v, s in base.items()]
    for rho in FLOORS:
        s = solve(WeightFloorProblem(problem.instance, rho), "greedy")
        out.append({"seed": seed, "method": "weight-floor", "floor": rho,
                    "ratio": s.objective_s / ref, "retained_weight": s.retained_weight})
    return out


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("docs"), help="docs folder")
    args = ap.parse_args(argv)
    df = pd.DataFrame([r for s in range(args.seeds) for r in rows_for(s, args.tokens)])
    (args.out / "results").mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "results" / "p1_tradeoff.csv", index=False)
    curve = df[df.method == "weight-floor"].groupby("floor")[["ratio", "retained_weight"]].mean()
    points = df[df.method != "weight-floor"].groupby("method")[["ratio", "retained_weight"]].mean()
    print(curve.to_string(), "\n", points.to_string())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(curve["retained_weight"], curve["ratio"], "-o", label="min latency s.t. floor")
    for name, r in points.iterrows():
        ax.plot(r["retained_weight"], r["ratio"], "s", label=name)
    ax.set_xlabel("Retained gating weight (accuracy proxy)")
    ax.set_ylabel("Latency / Mixtral-based")
    ax.set_title(f"wdmoe-sim, {args.tokens} tokens, mean of {args.seeds} seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.text(0.01, 0.01, f"python benchmarks/tradeoff_curve.py --seeds {args.seeds} "
             f"--tokens {args.tokens}", fontsize=6, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    (args.out / "figures").mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "figures" / "p1_tradeoff.png", dpi=150)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
