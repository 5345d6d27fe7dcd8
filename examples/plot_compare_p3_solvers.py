"""
Compare the P3 bandwidth solvers
================================

P3 (eqs. 19-21) is convex. The toolkit solves it with the uniform split, SciPy's SLSQP
(the paper's choice), CVXPY and its own certified interior point (``p3/exact``). Every
method reports its objective; the certified ones a lower bound too. Times are of one
solve each on this machine (``benchmarks/p3_bandwidth.py`` measures them properly).
"""

import matplotlib.pyplot as plt

import wdmoe_opt as wo
from wdmoe_opt.generate import generate

instance = generate("wdmoe-sim", seed=1, tokens=256)
problem = wo.BandwidthProblem(instance, wo.Selection.topk(instance))
methods = ["uniform", "slsqp", "cvxpy", "exact"]
solutions = {m: wo.solve(problem, m) for m in methods}
best = min(s.objective_s for s in solutions.values())
for m, s in solutions.items():
    bound = "-" if s.lower_bound_s is None else f"{s.lower_bound_s:.6f}"
    print(f"{m:8s} latency {s.objective_s:.6f} s  bound {bound}  status {s.status}  "
          f"time {s.solve_time_s * 1e3:.2f} ms")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
ax1.bar(methods, [solutions[m].objective_s / best for m in methods])
ax1.set_ylabel("latency / best")
ax1.set_ylim(0.95, None)
ax2.bar(methods, [solutions[m].solve_time_s * 1e3 for m in methods])
ax2.set_yscale("log")
ax2.set_ylabel("solve time (ms)")
fig.tight_layout()
