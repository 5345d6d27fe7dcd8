"""Fig. 5: latency per batch vs total bandwidth (20-120 MHz), Mixtral-based vs WDMoE.

    python benchmarks/fig5_bandwidth.py                # 5 seeds, paper size
    python benchmarks/fig5_bandwidth.py --seeds 2 --tokens 256

Writes ``docs/figures/fig5_bandwidth.png`` and ``docs/results/fig5_bandwidth.csv``
(one row per bandwidth, seed and variant) on the calibrated ``wdmoe-sim`` preset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from wdmoe_opt.harness.ablation import ablation_rows, summarize

BANDWIDTHS_MHZ = (20, 40, 60, 80, 100, 120)
LABELS = {"mixtral": "Mixtral-based (Top-2, uniform split)", "wdmoe": "WDMoE (Alg. 1 + P3)"}


def plot(summary: pd.DataFrame, path: Path, command: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for variant, style in (("mixtral", "--o"), ("wdmoe", "-s")):
        s = summary[summary["variant"] == variant]
        ax.errorbar(s["bandwidth_mhz"], s["latency_ms_mean"] / 1e3, yerr=s["latency_ms_std"] / 1e3,
                    fmt=style, capsize=3, label=LABELS[variant])
    ax.set_xlabel("Total bandwidth (MHz)")
    ax.set_ylabel("Latency per batch (s)")
    ax.set_title("wdmoe-sim, mean ± std over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.text(0.01, 0.01, command, fontsize=6, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("docs"), help="docs folder")
    args = ap.parse_args(argv)
    extra = {} if args.tokens is None else {"tokens": args.tokens}
    rows = [r for mhz in BANDWIDTHS_MHZ for r in ablation_rows(
        seeds=range(args.seeds), variants=("mixtral", "wdmoe"),
        total_bandwidth_hz=mhz * 1e6, **extra)]
    summary = summarize(rows, by=("bandwidth_mhz", "variant"))
    command = "python benchmarks/fig5_bandwidth.py" + "".join(
        f" --{k} {v}" for k, v in (("seeds", args.seeds), ("tokens", args.tokens)) if v)
    (args.out / "results").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "results" / "fig5_bandwidth.csv", index=False)
    plot(summary, args.out / "figures" / "fig5_bandwidth.png", command)
    print(summary[["bandwidth_mhz", "variant", "latency_ms_mean", "ratio_mean"]].to_string(
        index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
