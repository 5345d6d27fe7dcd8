"""P5 with replicated experts: held-out latency with and without replication under the
same capacities, and the MILP's optimal replication on tiny instances
(docs/placement.md quotes every number).

``heldout``: the instances of ``benchmarks/p5_placement.py`` (wdmoe-sim preset,
heterogeneous devices, synthetic gating) with ``--layers`` layers, devices
outnumbering experts; ``p5/local-search`` decides the placement on the training
batches with ``max_replicas`` = 1 (no replication), 2 and 4 under the same
``capacity_experts`` (each copy uses capacity), and the held-out batches are
scored with exact P3 per batch, tokens routed to the copies by the split rule.
Ratios are taken within one run, per seed.

``milp``: ``p5/milp`` with and without replication (optimal copies and route) on
tiny instances, and local search's gap to it.

    PYTHONPATH=. python benchmarks/p5_replication.py --out docs/figures
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from p5_placement import grouped_bars, md_table, save_table, trace, trace_arguments
from rich.progress import track

from wdmoe_opt.placement import PlacementProblem
from wdmoe_opt.placement.evaluate import PlacementEvaluator
from wdmoe_opt.placement.heuristics import round_robin
from wdmoe_opt.placement.joint import split_trace
from wdmoe_opt.registry import get_method

#: (devices, experts per layer): devices outnumber experts
GRID = ((16, 8), (64, 8), (64, 16), (256, 8))
REPLICAS = (1, 2, 4)


def heldout_rows(args) -> pd.DataFrame:
    rows = []
    jobs = [(u, e, c, s) for u, e in GRID for c in args.capacities for s in range(args.seeds)]
    for devices, experts, cap, seed in track(jobs, description="replication"):
        inst = trace(devices, experts, seed, args.layers,
                     args.batch_tokens * (args.train + args.test))
        train, test = split_trace(inst, args.batch_tokens, args.train, cap)
        test_ev = PlacementEvaluator(test)
        rr = test_ev.score(round_robin(train))
        for r in REPLICAS:
            problem = PlacementProblem(train.instance, train.batch_tokens, train.capacity,
                                       max_replicas=r)
            start, cpu = time.perf_counter(), time.process_time()
            sol = get_method("p5/local-search")(problem, {"time_limit": args.search_time})
            rows.append({
                "devices": devices, "experts": experts, "capacity": cap, "seed": seed,
                "max_replicas": r, "train_s": sol.objective_s,
                "heldout_s": test_ev.score(sol.placement, sol.replicas), "round_robin_s": rr,
                "extra_copies": int(sol.extra.get("extra_copies", 0)),
                "devices_used": int(np.unique(sol.placement if sol.replicas is None
                                              else sol.replicas[sol.replicas >= 0]).size),
                "solve_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                "status": str(sol.status)})
    df = pd.DataFrame(rows)
    key = ["devices", "experts", "capacity", "seed"]
    base = df[df.max_replicas == 1].set_index(key)["heldout_s"]
    df["ratio_to_single"] = df.heldout_s / base.loc[list(df[key].itertuples(
        index=False, name=None))].to_numpy()
    df["ratio_to_rr"] = df.heldout_s / df.round_robin_s
    return df


def milp_rows(args) -> pd.DataFrame:
    rows = []
    for devices, experts, layers in ((2, 2, 1), (3, 2, 1)):
        for seed in range(args.seeds):
            inst = trace(devices, experts, seed, layers, 4)
            for r in (1, 2):
                problem = PlacementProblem(inst, 2, 2, max_replicas=r)
                milp = get_method("p5/milp")(problem, {"time_limit": args.milp_time})
                ls = get_method("p5/local-search")(problem)
                rows.append({"devices": devices, "experts": experts, "layers": layers,
                             "seed": seed, "max_replicas": r, "milp_ms": 1e3 * milp.objective_s,
                             "bound_ms": 1e3 * milp.lower_bound_s, "status": str(milp.status),
                             "route": milp.extra.get("route_rule", "-"),
                             "rounds": milp.extra["rounds"],
                             "local_search_ms": 1e3 * ls.objective_s,
                             "ls_gap_to_bound": 1 - milp.lower_bound_s / ls.objective_s})
    df = pd.DataFrame(rows)
    key = ["devices", "experts", "layers", "seed"]
    single = df[df.max_replicas == 1].set_index(key)["milp_ms"]
    df["milp_vs_single"] = df.milp_ms / single.loc[list(df[key].itertuples(
        index=False, name=None))].to_numpy()
    return df


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = df.groupby(["devices", "experts", "capacity", "max_replicas"])["ratio_to_single"]
    g = g.agg(["mean", "min", "max"]).reset_index()
    configs = list(dict.fromkeys(zip(g.devices, g.experts, g.capacity, strict=True)))
    fig, ax = plt.subplots(figsize=(10, 4.2))
    grouped_bars(ax, g, ["devices", "experts", "capacity"], configs, "max_replicas",
                 [r for r in REPLICAS if r > 1], lambda r: f"max_replicas = {r}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(configs)), [f"U={u} E={e}\ncap {c}" for u, e, c in configs])
    ax.set_ylabel("held-out latency / without replication")
    ax.set_ylim(min(0.8, float(g["min"].min()) - 0.02), 1.05)
    ax.set_title("P5 local search with replicated experts (same capacities; split rule)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = trace_arguments(__doc__, 8)
    ap.add_argument("--capacities", type=lambda s: [int(c) for c in s.split(",")],
                    default=[1, 2], help="capacity_experts per device, comma-separated")
    ap.add_argument("--milp-time", type=float, default=60.0)
    ap.add_argument("--parts", default="heldout,milp")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    if "heldout" in parts:
        df = heldout_rows(args)
        df.to_csv(args.out / "p5_replication.csv", index=False)
        plot(df, args.out / "p5_replication.png")
        summary = df.groupby(["devices", "experts", "capacity", "max_replicas"]).agg(
            vs_single_mean=("ratio_to_single", "mean"),
            vs_single_worst=("ratio_to_single", "max"),
            vs_rr_mean=("ratio_to_rr", "mean"), extra_copies=("extra_copies", "mean"),
            devices_used=("devices_used", "mean"), cpu_s=("cpu_s", "mean"))
        (args.out / "p5_replication.md").write_text(md_table(summary.reset_index(), 3))
        print(summary)
    if "milp" in parts:
        save_table(milp_rows(args), args.out, "p5_replication_milp", 4)


if __name__ == "__main__":
    main()
