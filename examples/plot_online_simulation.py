"""
Serve requests online: a small simulation
=========================================

``wdmoe_opt.simulate`` serves Poisson requests (prefill, then decode token by token) on
SimPy, with devices moving in the cell, channel estimates with error and the bandwidth
re-solved per batch through the batch API. Here one simulated minute, two policies.
"""

import matplotlib.pyplot as plt
import numpy as np

from wdmoe_opt.simulate import SimConfig, simulate

config = SimConfig(duration_s=60.0, rate_per_s=0.5, layers=8, seed=0)
config.check()
runs = simulate(config, policies=("topk-uniform", "wdmoe"))
for run in runs:
    s = run.summary()
    print(f"{s['policy']:13s} finished {s['finished']}/{s['arrived']}  p50 "
          f"{s['latency_p50_s']:.2f} s  p95 {s['latency_p95_s']:.2f} s  energy/token "
          f"{s['energy_per_token_j']:.3f} J")

fig, ax = plt.subplots(figsize=(6, 3))
for run in runs:
    latency = np.sort([r.finish_s - r.arrival_s for r in run.requests if r.finish_s])
    ax.plot(latency, np.arange(1, latency.size + 1) / latency.size, label=run.policy)
ax.set_xlabel("request latency (s)")
ax.set_ylabel("fraction of requests")
ax.legend()
fig.tight_layout()
