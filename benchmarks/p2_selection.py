"""P2 expert selection: heuristics vs the exact MILP, paper-scale heuristics, MILP limits.

    .venv/bin/python benchmarks/p2_selection.py small       # heuristics vs exact (~20 s)
    .venv/bin/python benchmarks/p2_selection.py paper       # paper scale + P3, Alg 1 variants
    .venv/bin/python benchmarks/p2_selection.py timing      # Alg 1 on 8192 x 32 x 8
    .venv/bin/python benchmarks/p2_selection.py degenerate  # literal 'all' vs Top-K optimum
    .venv/bin/python benchmarks/p2_selection.py sweep --route milp-highspy --support topk

Each part writes ``docs/figures/p2_<part>.{csv,md}``; docs/selection.md quotes them.
Every number is recomputed by the one evaluator (``Solution.evaluate``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from wdmoe_opt import BandwidthProblem, SelectionProblem, solve
from wdmoe_opt.generate import generate
from wdmoe_opt.selection.alg1 import Alg1Options, algorithm1
from wdmoe_opt.selection.common import LayerTimes

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"
HEURISTICS = {"topk": {}, "alg1": {}, "alg1-above": {"direction": "above"}, "alg2": {}}


def _row(sol, **labels) -> dict:
    return {**labels, "wlr": sol.wlr_total, "latency_s": sol.objective_s,
            "retained_weight": sol.retained_weight, "invocations": sol.expert_invocations,
            "status": str(sol.status), "time_s": sol.solve_time_s}


def _heuristic(problem, name):
    return solve(problem, name.split("-")[0], **HEURISTICS[name])


def part_small(seeds=range(5)) -> pd.DataFrame:
    """Heuristics vs the exact P2 (highspy MILP) on 2 layers x 16 tokens x 8 experts."""
    rows = []
    for seed in seeds:
        inst = generate("wdmoe-sim", seed=seed, layers=2, tokens=16)
        for support in ("topk", "all"):
            problem = SelectionProblem(inst, support=support)
            exact = solve(problem, "milp", time_limit=60.0)
            rows.append(_row(exact, seed=seed, support=support, method="milp", wlr_gap=0.0))
            for name in HEURISTICS:
                sol = _heuristic(problem, name)
                rows.append(_row(sol, seed=seed, support=support, method=name,
                                 wlr_gap=1 - sol.wlr_total / exact.wlr_total))
    return pd.DataFrame(rows)


def part_paper(seeds=range(3), bandwidth="exact") -> pd.DataFrame:
    """Paper scale (32 layers x 1024 tokens x 8 experts): each heuristic at the uniform
    split, then with P3 (``bandwidth``) on top, as the paper's ablation (Table II)."""
    rows = []
    for seed in seeds:
        inst = generate("wdmoe-sim", seed=seed)
        problem = SelectionProblem(inst)
        for name in HEURISTICS:
            sol = _heuristic(problem, name)
            p3 = solve(BandwidthProblem(inst, sol.selection), bandwidth)
            rows.append({**_row(sol, seed=seed, method=name), "latency_p3_s": p3.objective_s})
    df = pd.DataFrame(rows)
    base = df[df.method == "topk"].set_index("seed")
    df["gain_uniform"] = 1 - df.latency_s / df.seed.map(base.latency_s)
    df["gain_with_p3"] = 1 - df.latency_p3_s / df.seed.map(base.latency_p3_s)
    return df


def part_timing(repeats=7) -> pd.DataFrame:
    """Algorithm 1 on 8192 tokens x 32 layers x 8 experts: median wall time."""
    inst = generate("wdmoe-sim", seed=0, tokens=8192)
    problem = SelectionProblem(inst)
    rows = []
    for direction in ("below", "above"):
        opts = Alg1Options(direction=direction)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            algorithm1(LayerTimes(problem), opts)
            times.append(time.perf_counter() - start)
        full = [solve(problem, "alg1", direction=direction).solve_time_s for _ in range(3)]
        rows.append({"direction": direction, "algorithm_median_ms": 1e3 * np.median(times),
                     "with_evaluation_median_ms": 1e3 * np.median(full), "budget_ms": 50.0})
    return pd.DataFrame(rows)


def part_degenerate(tokens=16, seeds=range(2)) -> pd.DataFrame:
    """The literal P2 (support 'all') optimum next to the Top-K-restricted one, paper preset
    (32 layers x 8 experts) with ``tokens`` per layer so the MILP proves optimality."""
    rows = []
    for seed in seeds:
        inst = generate("wdmoe-sim", seed=seed, tokens=tokens)
        for support in ("topk", "all"):
            sol = solve(SelectionProblem(inst, support=support), "milp", time_limit=600.0)
            per_device = sol.selection.mask.sum(axis=1)                  # [I, E]
            rows.append({**_row(sol, seed=seed, support=support),
                         "gap": sol.gap,
                         "devices_with_1_token": float((per_device == 1).sum(axis=1).mean()),
                         "max_tokens_on_a_device": float(per_device.max(axis=1).mean()),
                         "idle_devices": float((per_device == 0).sum(axis=1).mean())})
        rows.append(_row(_heuristic(SelectionProblem(inst), "topk"), seed=seed,
                         support="router Top-K"))
    return pd.DataFrame(rows)


def part_sweep(route: str, support: str, grid, experts=8, limit=60.0) -> pd.DataFrame:
    """Largest tokens-per-layer solved to optimality within ``limit`` s (1 layer)."""
    rows = []
    for tokens in grid:
        inst = generate("wdmoe-sim", seed=0, layers=1, tokens=tokens, experts=experts)
        sol = solve(SelectionProblem(inst, support=support), route, time_limit=limit)
        rows.append(_row(sol, route=route, support=support, tokens=tokens, experts=experts)
                    | {"gap": sol.gap})
        print(rows[-1], flush=True)
        if sol.status != "optimal":
            break
    return pd.DataFrame(rows)


def _save(df: pd.DataFrame, name: str) -> None:
    """Write ``p2_<name>.csv`` and a GitHub table ``p2_<name>.md`` (4 significant digits)."""
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / f"p2_{name}.csv", index=False)
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
             for row in df.itertuples(index=False)]
    table = [list(df.columns), ["---"] * df.shape[1], *cells]
    (OUT / f"p2_{name}.md").write_text("\n".join("| " + " | ".join(r) + " |" for r in table)
                                       + "\n")
    print(df.to_string(index=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["small", "paper", "timing", "degenerate", "sweep"])
    ap.add_argument("--route", default="milp-highspy")
    ap.add_argument("--support", default="topk")
    ap.add_argument("--grid", default="16,32,48,64,96,128,160")
    ap.add_argument("--experts", type=int, default=8)
    args = ap.parse_args()
    if args.part == "sweep":
        grid = [int(x) for x in args.grid.split(",")]
        df = part_sweep(args.route, args.support, grid, args.experts)
        name = f"sweep_{args.route}_{args.support}_E{args.experts}"
        old = OUT / f"p2_{name}.csv"
        if old.exists():   # keep earlier grid points of the same route and support
            df = pd.concat([pd.read_csv(old), df]).drop_duplicates(["tokens"], keep="last")
        _save(df.sort_values("tokens"), name)
        return
    df = {"small": part_small, "paper": part_paper, "timing": part_timing,
          "degenerate": part_degenerate}[args.part]()
    _save(df, args.part)


if __name__ == "__main__":
    main()
