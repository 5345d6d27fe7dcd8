"""P5, expert placement: held-out latency vs round-robin, the MILP gap on small
instances, local-search throughput, and the joint placement + selection + bandwidth
alternation (docs/placement.md quotes every number).

Every instance: the wdmoe-sim preset (Mixtral sizes, 100 MHz), heterogeneous
devices (distances drawn uniformly in [50, 500] m, compute 2-16 TFLOP/s), synthetic
gating, ``capacity_experts`` per layer and device; a trace of ``train + test``
batches of ``--batch-tokens`` tokens; placements decided on the training batches
and scored on the held-out ones (Top-K, exact P3 per batch). Ratios are taken
within one run.

    PYTHONPATH=. python benchmarks/p5_placement.py --out docs/figures --parts heldout,throughput
    PYTHONPATH=. python benchmarks/p5_placement.py --out docs/figures --parts milp,joint \
        --search-time 10
    PYTHONPATH=. python benchmarks/p5_placement.py --out docs/figures --parts recorded \
        --search-time 10

The ``recorded`` part repeats the held-out comparison on gating recorded from the
shipped trained model ``wdmoe-tiny-moe`` (needs torch).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

from wdmoe_opt.generate import generate
from wdmoe_opt.placement import PlacementProblem
from wdmoe_opt.placement.evaluate import PlacementEvaluator
from wdmoe_opt.placement.heuristics import round_robin
from wdmoe_opt.placement.joint import alternate, split_trace, stage_shares
from wdmoe_opt.placement.local_search import LocalSearchOptions
from wdmoe_opt.registry import get_method

METHODS = ("round-robin", "staggered", "greedy", "local-search")
#: (devices, experts per layer): devices outnumber experts in all but the first two
GRID = ((8, 8), (16, 16), (16, 8), (64, 8), (64, 32), (256, 8), (256, 64), (1024, 8),
        (1024, 64))
#: the shipped trained model whose recorded gating the ``recorded`` part uses (E = 8)
RECORDED = "wdmoe-tiny-moe"
RECORDED_DEVICES = (8, 16, 64, 256, 1024)


def trace(devices: int, experts: int, seed: int, layers: int, tokens: int):
    rng = np.random.default_rng(10_000 + seed)
    return generate("wdmoe-sim", seed=seed, devices=devices, experts=experts, layers=layers,
                    tokens=tokens, placement="round-robin",
                    distances_m=tuple(rng.uniform(50.0, 500.0, devices)))


def compare(inst, args, key: dict) -> list[dict]:
    """Every method's placement decided on the training batches of the trace ``inst``,
    scored on its held-out batches; one row per method, ``key`` added to each."""
    devices, experts = inst.n_devices, inst.n_experts
    cap = max(args.capacity, -(-experts // devices))
    train, test = split_trace(inst, args.batch_tokens, args.train, cap)
    test_ev = PlacementEvaluator(test)
    rows = []
    for m in METHODS:
        opts = {"time_limit": args.search_time} if m == "local-search" else None
        start = time.perf_counter()
        sol = get_method(f"p5/{m}")(train, opts)
        rows.append({**key, "devices": devices, "experts": experts, "method": m,
                     "capacity": cap, "train_s": sol.objective_s,
                     "heldout_s": test_ev.score(sol.placement),
                     "devices_used": int(np.unique(sol.placement).size),
                     "solve_s": time.perf_counter() - start,
                     "moves_per_s": sol.extra.get("moves_per_s"),
                     "status": str(sol.status)})
    return rows


def with_ratio(rows: list[dict]) -> pd.DataFrame:
    """``rows`` as a table with ``ratio_to_rr``: held-out latency / round-robin's."""
    df = pd.DataFrame(rows)
    rr = df[df.method == "round-robin"].set_index(["devices", "experts", "seed"])["heldout_s"]
    df["ratio_to_rr"] = df.heldout_s / rr.loc[list(zip(df.devices, df.experts, df.seed,
                                                       strict=True))].to_numpy()
    return df


def heldout_rows(args) -> pd.DataFrame:
    rows = []
    jobs = [(u, e, s) for u, e in GRID for s in range(args.seeds)]
    for devices, experts, seed in track(jobs, description="held-out"):
        inst = trace(devices, experts, seed, args.layers,
                     args.batch_tokens * (args.train + args.test))
        rows += compare(inst, args, {"seed": seed})
    return with_ratio(rows)


def recorded_rows(args) -> pd.DataFrame:
    """The held-out comparison on gating recorded from the shipped trained model
    ``wdmoe-tiny-moe`` (4 layers, 8 experts, Top-2) on its held-out text: ``train +
    test`` batches of one 128-token sequence each (``--batch-tokens`` is ignored),
    priced with the preset's Mixtral sizes; the devices vary with the seed."""
    import torch

    from wdmoe_opt.torch import record_gating, recorded_instance
    from wdmoe_opt.torch.zoo import heldout_batches

    loaded, batches = heldout_batches(RECORDED, args.train + args.test, 1)
    weights = record_gating(loaded.model, torch.cat(batches))        # [I, J, E], in order
    args = argparse.Namespace(**{**vars(args), "batch_tokens": batches[0].numel()})
    rows = []
    jobs = [(u, s) for u in RECORDED_DEVICES for s in range(args.seeds)]
    for devices, seed in track(jobs, description="recorded"):
        rng = np.random.default_rng(10_000 + seed)
        inst = recorded_instance(weights, top_k=2, source=f"recorded:{RECORDED}", seed=seed,
                                 devices=devices, placement="round-robin",
                                 distances_m=tuple(rng.uniform(50.0, 500.0, devices)))
        rows += compare(inst, args, {"seed": seed, "gating": f"recorded:{RECORDED}"})
    return with_ratio(rows)


def milp_rows(args) -> pd.DataFrame:
    rows = []
    for devices, experts, layers in ((3, 3, 2), (4, 3, 2), (4, 4, 1)):
        for seed in range(args.seeds):
            inst = trace(devices, experts, seed, layers, 8)
            train, test = split_trace(inst, 4, 1, 2)
            milp = get_method("p5/milp")(train, {"time_limit": 120.0})
            for m in METHODS:
                sol = get_method(f"p5/{m}")(train)
                rows.append({"devices": devices, "experts": experts, "layers": layers,
                             "seed": seed, "method": m, "objective_s": sol.objective_s,
                             "milp_s": milp.objective_s, "bound_s": milp.lower_bound_s,
                             "milp_status": str(milp.status),
                             "gap_to_bound": 1 - milp.lower_bound_s / sol.objective_s})
    return pd.DataFrame(rows)


def joint_rows(args) -> pd.DataFrame:
    rows = []
    for devices, experts in ((16, 8), (64, 8)):
        for seed in range(args.seeds):
            inst = trace(devices, experts, seed, args.layers,
                         args.batch_tokens * (args.train + args.test))
            train, test = split_trace(inst, args.batch_tokens, args.train, args.capacity)
            res = alternate(train, "alg1", max_rounds=3, search=LocalSearchOptions(
                start="round-robin", time_limit=args.search_time))
            shares = stage_shares(test, round_robin(train), res["placement"], "alg1")
            rows.append({"devices": devices, "experts": experts, "seed": seed,
                         "rounds": max(h["round"] for h in res["history"]),
                         "train_start_s": res["start_objective_s"],
                         "train_end_s": res["objective_s"], **shares})
    return pd.DataFrame(rows)


def throughput(args) -> dict:
    inst = trace(64, 8, 0, args.layers, args.batch_tokens * args.train)
    train = PlacementProblem(inst, args.batch_tokens, args.capacity)
    sol = get_method("p5/local-search")(train, {"start": "round-robin",
                                                "time_limit": args.search_time})
    return {"moves_scored": sol.extra["moves_scored"], "moves_per_s": sol.extra["moves_per_s"],
            "p3_solves_per_move": args.train, "devices": 64, "experts": 8,
            "layers": args.layers, "batch_tokens": args.batch_tokens}


def md_table(df: pd.DataFrame, digits: int) -> str:
    """``df`` as a markdown table, floats with ``digits`` decimals."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    rows = [df.columns.tolist(), ["---"] * df.shape[1]]
    rows += [[cell(v) for v in r] for r in df.itertuples(index=False)]
    return "".join("| " + " | ".join(map(str, r)) + " |\n" for r in rows)


def save_table(df: pd.DataFrame, out: Path, stem: str, digits: int) -> None:
    """Write ``df`` as ``out/stem.csv`` and ``out/stem.md`` and print it."""
    df.to_csv(out / f"{stem}.csv", index=False)
    (out / f"{stem}.md").write_text(md_table(df, digits))
    print(df)


def summarize(df: pd.DataFrame, path: Path) -> None:
    """Per (devices, experts, method): the held-out ratio to round-robin, mean and worst
    seed, devices used and solve time; written to ``path`` as markdown and printed."""
    summary = df.groupby(["devices", "experts", "method"]).agg(
        ratio_mean=("ratio_to_rr", "mean"), ratio_max=("ratio_to_rr", "max"),
        devices_used=("devices_used", "mean"), solve_s=("solve_s", "mean"))
    path.write_text(md_table(summary.reset_index(), 3))
    print(summary)


def grouped_bars(ax, g: pd.DataFrame, index: list[str], configs: list, column: str,
                 values, label) -> None:
    """Bars of ``g``'s ``mean`` with ``min``-``max`` whiskers: one group per config (the
    ``index`` columns), one bar per value of ``column`` in ``values``."""
    width = 0.8 / len(values)
    for n, v in enumerate(values):
        sub = g[g[column] == v].set_index(index).loc[configs]
        x = np.arange(len(configs)) + (n - (len(values) - 1) / 2) * width
        ax.bar(x, sub["mean"], width, label=label(v),
               yerr=[sub["mean"] - sub["min"], sub["max"] - sub["mean"]], capsize=2)


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = df.groupby(["devices", "experts", "method"])["ratio_to_rr"].agg(["mean", "min", "max"])
    g = g.reset_index()
    configs = list(dict.fromkeys(zip(g.devices, g.experts, strict=True)))
    fig, ax = plt.subplots(figsize=(10, 4.2))
    grouped_bars(ax, g, ["devices", "experts"], configs, "method", METHODS, str)
    ax.axhline(0.7, color="k", ls="--", lw=0.8, label="goal: 30 % below round-robin")
    ax.set_xticks(np.arange(len(configs)), [f"U={u}\nE={e}" for u, e in configs])
    ax.set_ylabel("held-out latency / round-robin")
    ax.set_yscale("log")
    ax.set_title("P5: held-out batch latency relative to round-robin (Top-K, exact P3)")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def trace_arguments(doc: str, layers: int) -> argparse.ArgumentParser:
    """The parser of the P5 benchmarks' shared flags: output folder, seeds and the trace
    (layers, batch size, training and held-out batches), local search's time."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=layers)
    ap.add_argument("--batch-tokens", type=int, default=64)
    ap.add_argument("--train", type=int, default=4)
    ap.add_argument("--test", type=int, default=4)
    ap.add_argument("--search-time", type=float, default=20.0,
                    help="local-search time limit per run (s)")
    return ap


def main() -> None:
    ap = trace_arguments(__doc__, 32)
    ap.add_argument("--capacity", type=int, default=2, help="capacity_experts per device")
    ap.add_argument("--parts", default="heldout,recorded,milp,throughput,joint")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    if "heldout" in parts:
        df = heldout_rows(args)
        df.to_csv(args.out / "p5_heldout.csv", index=False)
        plot(df, args.out / "p5_heldout.png")
        summarize(df, args.out / "p5_heldout.md")
    if "recorded" in parts:
        df = recorded_rows(args)
        df.to_csv(args.out / "p5_heldout_recorded.csv", index=False)
        summarize(df, args.out / "p5_heldout_recorded.md")
    if "milp" in parts:
        df = milp_rows(args)
        df.to_csv(args.out / "p5_milp.csv", index=False)
        summary = df.groupby(["devices", "experts", "layers", "method"]).agg(
            gap_mean=("gap_to_bound", "mean"), gap_max=("gap_to_bound", "max"))
        (args.out / "p5_milp.md").write_text(md_table(summary.reset_index(), 4))
        print(summary)
    if "throughput" in parts:
        t = throughput(args)
        (args.out / "p5_throughput.md").write_text(md_table(pd.DataFrame([t]), 1))
        print(t)
    if "joint" in parts:
        save_table(joint_rows(args), args.out, "p5_joint", 4)


if __name__ == "__main__":
    main()
