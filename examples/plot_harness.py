"""
Run a small benchmark and read its report
=========================================

The harness runs solver configurations (the files of ``solvers/``) on the instances of a
library, each in its own process with a time and memory limit, re-checks every result
independently and writes a table; the report turns it into profiles and tables.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from wdmoe_opt.harness.bench import plan, run_bench
from wdmoe_opt.harness.library import build_library
from wdmoe_opt.harness.report import write_report

tmp = Path(tempfile.mkdtemp())
build_library(tmp / "lib", [
    {"name": f"tiny-{s}", "tier": "tiny", "store": True,
     "generator": {"preset": "wdmoe-sim", "seed": s,
                   "params": {"layers": 2, "tokens": 8, "experts": 4, "devices": 4}}}
    for s in range(2)])
sweep = plan(tmp / "lib", ["p3-uniform", "p3-slsqp", "p3-exact"], tmp / "runs",
             timeout=60.0, jobs=1)
runs = run_bench(sweep).frame()
print(runs[["instance", "solver", "status", "objective_s", "solve_time_s"]])
fig, ax = plt.subplots(figsize=(6, 3))
for solver, group in runs.groupby("solver"):
    ax.plot(group["instance"], group["objective_s"], "o", label=solver)
ax.set_ylabel("latency per batch (s)")
ax.legend()
fig.tight_layout()

# %%
report = write_report(tmp / "runs", tmp / "report")
print("report page:", report.page.name, "with", len(report.figures), "figures")
