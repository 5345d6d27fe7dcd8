"""
Solve one instance, from Python and from the command line
=========================================================

Generate a small instance of the paper's simulation setting (``wdmoe-sim``), solve the
paper's WDMoE (Algorithm 1, then optimal bandwidth) as a composition of two steps, check
the answer independently, and do the same with the ``wdmoe-opt`` command.
"""

# %%
# From Python: a P1 method is a P2 step followed by a P3 step, each a validated value.
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import wdmoe_opt as wo
from wdmoe_opt.check import check_solution
from wdmoe_opt.generate import generate
from wdmoe_opt.io import solution_to_dict, write_instance

instance = generate("wdmoe-sim", seed=0, tokens=128)
wdmoe = wo.get_method("p1/sequential").step({"selection": "alg1", "bandwidth": "exact"})
solution = wdmoe.solve(wo.JointProblem(instance))
print(f"latency per batch {solution.objective_s:.4f} s, retained weight "
      f"{solution.retained_weight:.1%}, status {solution.status}")
print("independent check:", check_solution(instance, solution_to_dict(solution)) or "OK")

# %%
# The baseline (router Top-K, uniform split) for comparison, layer by layer.
mixtral = wo.solve(wo.JointProblem(instance), "sequential", selection="topk",
                   bandwidth="uniform")
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(mixtral.layer_latency_s * 1e3, label="Mixtral-based (Top-K, uniform)")
ax.plot(solution.layer_latency_s * 1e3, label="WDMoE (Alg. 1 + P3)")
ax.set_xlabel("layer")
ax.set_ylabel("attention waiting latency (ms)")
ax.legend()
fig.tight_layout()

# %%
# The same from the command line: ``generate``, ``solve`` (P1, then P3 alone on the saved
# selection), ``check``.
with tempfile.TemporaryDirectory() as tmp:
    inst_file, sol_file = Path(tmp, "sim.json"), Path(tmp, "wdmoe.json")
    write_instance(instance, inst_file)

    def cli(*args: str) -> str:
        run = subprocess.run([sys.executable, "-m", "wdmoe_opt", *args], check=True,
                             capture_output=True, text=True)
        return run.stdout

    cli("solve", str(inst_file), "--selection", "alg1", "--bandwidth", "exact",
        "-o", str(sol_file), "--brief")
    p3 = json.loads(cli("solve", str(inst_file), "--problem", "p3", "--bandwidth", "slsqp",
                        "--selection-from", str(sol_file), "--json"))
    print(f"P3 alone with SLSQP: {p3['objective_s']:.4f} s, status {p3['status']}, "
          f"gap {p3['gap']:.1e}")
    print(cli("check", str(inst_file), str(sol_file)))
