"""
The latency-accuracy trade-off
==============================

Dropping experts saves latency and loses gating weight (the accuracy proxy). The
``p1-floor`` problem asks for the least latency at a retained-weight floor; sweeping the
floor traces the trade-off, against the paper's WDMoE point.
"""

import matplotlib.pyplot as plt

import wdmoe_opt as wo
from wdmoe_opt.generate import generate
from wdmoe_opt.problems import WeightFloorProblem

instance = generate("wdmoe-sim", seed=2, tokens=128)
base = wo.solve(wo.JointProblem(instance), "sequential", selection="topk", bandwidth="uniform")
floors = [1.0, 0.95, 0.9, 0.85, 0.8, 0.7]
curve = [wo.solve(WeightFloorProblem(instance, f), "greedy") for f in floors]
wdmoe = wo.solve(wo.JointProblem(instance), "sequential", selection="alg1", bandwidth="exact")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot([s.retained_weight for s in curve], [s.objective_s / base.objective_s for s in curve],
        "o-", label="p1-floor/greedy")
ax.plot([wdmoe.retained_weight], [wdmoe.objective_s / base.objective_s], "r*", ms=12,
        label="WDMoE (Alg. 1 + P3)")
ax.set_xlabel("retained weight")
ax.set_ylabel("latency / Mixtral-based")
ax.legend()
fig.tight_layout()
