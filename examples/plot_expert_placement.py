"""
Place the experts (P5), judged on held-out batches
==================================================

With more devices than experts, where each expert lives decides most of the latency.
Placements are decided on training batches of a trace and scored on held-out batches
(optimal bandwidth per batch), against round-robin (expert ``e`` on device ``e mod U``).
"""

import matplotlib.pyplot as plt

import wdmoe_opt as wo
from wdmoe_opt.generate import generate
from wdmoe_opt.placement.joint import heldout_latency, split_trace

trace = generate("wdmoe-sim", seed=0, layers=8, tokens=256, experts=8, devices=16,
                 placement="round-robin")
train, test = split_trace(trace, batch_tokens=64, train_batches=2, capacity=2)
latency = {}
for method in ("round-robin", "greedy", "local-search"):
    options = {"time_limit": 20.0} if method == "local-search" else None
    sol = wo.solve(train, method, options)
    latency[method] = heldout_latency(test, sol.placement)
    print(f"{method:13s} held-out latency per batch {latency[method] * 1e3:8.2f} ms")

fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(list(latency), [v / latency["round-robin"] for v in latency.values()])
ax.set_ylabel("held-out latency / round-robin")
fig.tight_layout()
