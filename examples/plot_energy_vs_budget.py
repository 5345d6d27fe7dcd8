"""
SiftMoE: energy against the deviation budget (P4)
=================================================

Each routed expert may be kept, replaced by a similar expert, or skipped; the estimated
deviation of every token must stay within a budget. Relaxing the budget lets the base
station send less, and energy falls. Here on a prefill batch of the ``wdmoe-sift``
preset (SiftMoE's published settings as far as known, ``docs/energy.md``), without
deadlines so that the budget alone shapes the curve.
"""

import matplotlib.pyplot as plt

import wdmoe_opt as wo
from wdmoe_opt.energy.problem import EnergyProblem
from wdmoe_opt.generate import generate

instance = generate("wdmoe-sift", seed=0, layers=4, tokens=64)
budgets = [0.1, 0.3, 0.6, 1.0, 1.5, 2.5, 4.0]
NO_DEADLINE = float("inf")
curves = {}
for method in ("relax", "skip-threshold", "substitute"):
    curves[method] = []
    for eps in budgets:
        sol = wo.solve(EnergyProblem(instance, eps, deadlines_s=NO_DEADLINE), method)
        feasible = str(sol.status) in ("optimal", "feasible")
        curves[method].append(sol.extra["energy_j"] if feasible else float("nan"))
    print(method, [f"{e:.3g}" for e in curves[method]])
topk = wo.solve(EnergyProblem(instance, deadlines_s=NO_DEADLINE), "topk").extra["energy_j"]

fig, ax = plt.subplots(figsize=(6, 3.5))
for method, energy in curves.items():
    ax.plot(budgets, energy, "o-", label=method)
ax.axhline(topk, color="k", ls=":", label="router Top-K")
ax.set_xscale("log")
ax.set_xlabel("global deviation budget ε")
ax.set_ylabel("energy per batch (J)")
ax.legend()
fig.tight_layout()
