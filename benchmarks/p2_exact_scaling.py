"""Exact P2: ``p2/exact`` (counts, flows, Lagrangian bound) beside both MILP routes, one run.

    .venv/bin/python benchmarks/p2_exact_scaling.py          # ~15 min on 2 shared cores

For each support (``topk``, ``all``) and each tokens-per-layer size (1 layer, 8 experts on
8 devices, wdmoe-sim seed 0; plus a round-robin shared placement of 8 experts on 4
devices), every exact method gets the same time limit (60 s); a method stops growing after its
first unproven size. ``time_s`` is wall-clock, ``cpu_s`` the process's CPU time (HiGHS
runs with one thread), the fairer figure on a shared machine. Writes
``docs/figures/p2_exact_scaling.{csv,md,png}`` (CPU seconds to prove vs tokens per
layer; unproven points hollow; ``--plot-only`` re-plots the csv).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
from p2_selection import OUT, _save  # noqa: E402
from tqdm import tqdm  # noqa: E402

from wdmoe_opt import SelectionProblem, solve  # noqa: E402
from wdmoe_opt.generate import generate  # noqa: E402

METHODS = ("exact", "milp-highspy", "milp-pyomo")
LAYOUTS = {"identity": dict(experts=8, devices=8),
           "shared": dict(experts=8, devices=4, placement="round-robin")}


def sweep(grids: dict, limit: float) -> pd.DataFrame:
    """Every (layout, support, method) over its token grid until the first unproven size."""
    rows = []
    jobs = [(lay, sup, m) for (lay, sup) in grids for m in METHODS]
    for layout, support, method in tqdm(jobs, desc="exact P2 sweep"):
        for tokens in grids[(layout, support)]:
            inst = generate("wdmoe-sim", seed=0, layers=1, tokens=tokens, **LAYOUTS[layout])
            cpu = time.process_time()
            sol = solve(SelectionProblem(inst, support=support), method, time_limit=limit)
            rows.append({"layout": layout, "support": support, "method": method,
                         "tokens": tokens, "status": str(sol.status), "time_s": sol.solve_time_s,
                         "cpu_s": time.process_time() - cpu, "wlr": sol.wlr_total,
                         "gap": sol.gap})
            if sol.status != "optimal":
                break
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path) -> None:
    """CPU seconds to prove vs tokens per layer (hollow: not proven at the time limit)."""
    groups = list(df.groupby(["layout", "support"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, ((layout, support), g) in zip(axes[0], groups, strict=True):
        for method, gm in g.groupby("method", sort=False):
            ok = (gm["status"] == "optimal").to_numpy()
            line, = ax.plot(gm["tokens"][ok], gm["cpu_s"][ok], "o-", label=method)
            ax.plot(gm["tokens"][~ok], gm["cpu_s"][~ok], "o", mfc="none",
                    color=line.get_color())
        ax.set(xscale="log", yscale="log", xlabel="tokens per layer", title=f"{layout}, {support}")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0][0].set_ylabel("CPU seconds to prove optimal")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=60.0, help="seconds per solve")
    ap.add_argument("--topk", default="16,32,64,128,256,512,1024", help="grid, Top-K support")
    ap.add_argument("--all", dest="all_", default="64,256,512,1024", help="grid, support all")
    ap.add_argument("--shared", default="8,16,32,64", help="grid, shared placement (Top-K)")
    ap.add_argument("--plot-only", action="store_true", help="re-plot the saved csv")
    args = ap.parse_args()
    grids = {("identity", "topk"): _ints(args.topk), ("identity", "all"): _ints(args.all_),
             ("shared", "topk"): _ints(args.shared)}
    if args.plot_only:
        df = pd.read_csv(OUT / "p2_exact_scaling.csv")
    else:
        df = sweep(grids, args.limit)
        _save(df, "exact_scaling")
    plot(df, OUT / "p2_exact_scaling.png")


if __name__ == "__main__":
    main()
