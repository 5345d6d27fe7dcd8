"""
The paper's Table II and Fig. 5, in miniature
=============================================

Table II ablates WDMoE: the Mixtral-based baseline (Top-K, uniform split), selection
alone, bandwidth allocation alone, and both. Fig. 5 sweeps the total bandwidth. Here with
two seeds and 128 tokens per batch, so it builds fast; ``benchmarks/table2_ablation.py``
and ``benchmarks/fig5_bandwidth.py`` run the full versions.
"""

import matplotlib.pyplot as plt

from wdmoe_opt.harness.ablation import PAPER_ARC_C, ablation_rows, summarize

rows = ablation_rows(seeds=range(2), tokens=128)
table = summarize(rows)
print(table[["variant", "ratio_mean", "reduction_pct", "retained_weight_mean"]].round(3))

fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(table["variant"], table["ratio_mean"], label="wdmoe-opt (2 seeds)")
ax.plot(list(PAPER_ARC_C), list(PAPER_ARC_C.values()), "ko", label="paper, ARC-C")
ax.set_ylabel("latency / Mixtral-based")
ax.legend()
fig.tight_layout()

# %%
# Fig. 5: latency per batch against the total bandwidth.
sweep = [r for mhz in (20, 60, 120) for r in ablation_rows(
    seeds=range(1), tokens=128, variants=("wdmoe",), total_bandwidth_hz=mhz * 1e6)]
fig, ax = plt.subplots(figsize=(6, 3))
for variant in ("mixtral", "wdmoe"):
    pts = [(r["bandwidth_mhz"], r["latency_ms"]) for r in sweep if r["variant"] == variant]
    ax.plot(*zip(*pts, strict=True), "o-", label=variant)
ax.set_xlabel("total bandwidth (MHz)")
ax.set_ylabel("latency per batch (ms)")
ax.legend()
fig.tight_layout()
