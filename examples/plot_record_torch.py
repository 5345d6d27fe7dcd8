"""
Record an instance from a torch MoE model
=========================================

The router probabilities of every MoE layer of a (here tiny, random) Mixtral-architecture
model become the gating weights of an instance, priced at the paper's sizes. Needs the
``torch`` extra.
"""

import matplotlib.pyplot as plt

import wdmoe_opt as wo
from wdmoe_opt.torch.models import load_model, token_ids
from wdmoe_opt.torch.record import record_gating, recorded_instance

loaded = load_model("tiny-mixtral", seed=0)
ids, how = token_ids(loaded, tokens=64, seed=0)
weights = record_gating(loaded.model, ids)
instance = recorded_instance(weights, top_k=2, source="recorded:tiny-mixtral", seed=0)
print(instance.name, weights.shape, how)
sol = wo.solve(wo.JointProblem(instance), "sequential", selection="alg1", bandwidth="exact")
print(f"WDMoE on the recorded batch: {sol.objective_s:.4f} s")

fig, ax = plt.subplots(figsize=(6, 3))
ax.imshow(weights.mean(axis=1), aspect="auto", cmap="viridis")
ax.set_xlabel("expert")
ax.set_ylabel("layer")
ax.set_title("mean router probability")
fig.tight_layout()
