"""``p1/exact`` under the coupled reading: the closed failure, the stored tiny instances, a
seed sweep of the test shapes, and the largest sizes solved, in one run.

    .venv/bin/python benchmarks/p1_coupled.py            # ~15 min on 2 shared cores

Every solve is ``p1/exact`` with its defaults (gap ``tol`` = 1e-4, 200,000 boxes); ``cpu_s``
is the process's CPU time of the solve (imports excluded), the fair figure on a shared
machine. ``on_tie`` marks an optimum on a tie surface of the follower: its latency is above
P3's optimum for its own selection (by more than 1e-6), so the follower leaves that
selection at P3's point. The scaling part grows the tokens per layer (2 layers, identity
placement, wdmoe-sim, seeds 0-2) for each device count until a size is not proven on every
seed or its slowest seed passes ``--cpu-limit`` seconds (20), up to ``--max-tokens`` (8; the
enumeration's cap of 20,000 selections per layer, ``3^J`` under the Top-K support, refuses
10). Writes
``docs/results/p1_coupled.{md,csv}`` and ``docs/figures/p1_coupled_scaling.png`` (CPU
seconds to prove vs tokens per layer; ``--plot-only`` redoes both from the csv).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _tables import markdown_table  # noqa: E402
from tqdm import tqdm  # noqa: E402

from wdmoe_opt import BandwidthProblem, InputError, JointProblem, solve  # noqa: E402
from wdmoe_opt.generate import generate  # noqa: E402
from wdmoe_opt.io import read_instance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The shapes of tests/joint/test_bilevel.py.
SHAPES = {"L2 J3 E3 U3": dict(layers=2, tokens=3, experts=3, devices=3),
          "L2 J3 E2 U2": dict(layers=2, tokens=3, experts=2, devices=2),
          "L1 J4 E3 U3": dict(layers=1, tokens=4, experts=3, devices=3),
          "L2 J2 E4 U2 rr": dict(layers=2, tokens=2, experts=4, devices=2,
                                 placement="round-robin")}
#: The failure of docs/joint.md, with the preset statistics of the day it was found.
FAILURE = dict(seed=1404, layers=2, tokens=3, experts=3, devices=3, layer_correlation=0.97,
               sharpness=1.0)


def run(instance, name: str, part: str, support: str = "topk") -> dict:
    """One coupled ``p1/exact`` solve, timed in CPU seconds, with its tie verdict."""
    cpu = time.process_time()
    sol = solve(JointProblem(instance, support=support, lower_level="coupled"), "exact")
    cpu = time.process_time() - cpu
    p3 = solve(BandwidthProblem(instance, sol.selection), "exact").objective_s
    return {"part": part, "name": name, "support": support, "layers": instance.n_layers,
            "tokens": instance.n_tokens, "devices": instance.n_devices,
            "status": str(sol.status), "objective_s": sol.objective_s,
            "lower_bound_s": sol.lower_bound_s, "gap": sol.gap, "boxes": sol.extra["boxes"],
            "cpu_s": cpu, "on_tie": bool(sol.objective_s > p3 * (1 + 1e-6))}


def failure_and_stored() -> list[dict]:
    rows = [run(generate("wdmoe-sim", **FAILURE), "small_instance(1404, ...)", "failure")]
    for path in tqdm(sorted((ROOT / "instances" / "tiny").glob("*.json")), desc="stored"):
        rows.append(run(read_instance(path), path.stem, "stored"))
    ff = ROOT / "instances" / "tiny" / "tiny-ff-j5-e3-s4.json"
    rows.append(run(read_instance(ff), ff.stem, "stored", support="all"))
    return rows


def sweep(seeds: int) -> list[dict]:
    jobs = [(shape, seed) for shape in SHAPES for seed in range(seeds)]
    return [run(generate("wdmoe-sim", seed=seed, **SHAPES[shape]), f"{shape} s{seed}", "sweep")
            for shape, seed in tqdm(jobs, desc="seed sweep")]


def scaling(devices: tuple[int, ...], cpu_limit: float, max_tokens: int) -> list[dict]:
    rows = []
    for u in tqdm(devices, desc="scaling"):
        for tokens in range(3, max_tokens + 1):
            try:
                batch = [run(generate("wdmoe-sim", seed=s, layers=2, tokens=tokens, experts=u,
                                      devices=u), f"U{u} J{tokens} s{s}", "scaling")
                         for s in range(3)]
            except InputError:          # past the enumeration's cap of selections per layer
                break
            rows += batch
            if any(r["status"] != "optimal" or r["cpu_s"] > cpu_limit for r in batch):
                break
    return rows


def plot(df: pd.DataFrame, path: Path) -> None:
    """CPU seconds to prove vs tokens per layer, one line per device count (each seed a dot)."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    sc = df[df.part == "scaling"]
    for u, g in sc.groupby("devices"):
        med = g.groupby("tokens").cpu_s.median()
        line, = ax.plot(med.index, med.values, marker="o", label=f"{u} devices (median)")
        proven = g.status == "optimal"
        ax.scatter(g.tokens[proven], g.cpu_s[proven], s=10, color=line.get_color(), alpha=0.5)
        ax.scatter(g.tokens[~proven], g.cpu_s[~proven], s=30, facecolors="none",
                   edgecolors=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("tokens per layer (2 layers, Top-K support: 3^J selections per layer)")
    ax.set_ylabel("CPU seconds to prove (gap 1e-4)")
    ax.set_title("p1/exact, coupled reading")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(df: pd.DataFrame) -> str:
    cols = ["name", "support", "status", "gap", "boxes", "cpu_s", "on_tie"]
    fixed = df[df.part.isin(["failure", "stored"])][cols]
    sw = df[df.part == "sweep"].assign(shape=lambda d: d.name.str.rsplit(" s", n=1).str[0])
    summary = sw.groupby("shape", sort=False).agg(
        instances=("status", "size"), proven=("status", lambda s: int((s == "optimal").sum())),
        max_gap=("gap", "max"), on_tie=("on_tie", "sum"), median_cpu_s=("cpu_s", "median"),
        max_cpu_s=("cpu_s", "max"), max_boxes=("boxes", "max")).reset_index()
    sc = df[df.part == "scaling"].groupby(["devices", "tokens"]).agg(
        proven=("status", lambda s: f"{int((s == 'optimal').sum())}/{len(s)}"),
        max_gap=("gap", "max"), median_cpu_s=("cpu_s", "median"), max_cpu_s=("cpu_s", "max"),
        max_boxes=("boxes", "max")).reset_index()
    return "\n\n".join(["## The failure and the stored tiny instances",
                        markdown_table(fixed, ".3g"),
                        "## Seed sweep of the test shapes", markdown_table(summary, ".3g"),
                        "## Scaling (2 layers, seeds 0-2)", markdown_table(sc, ".3g")]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100, help="seeds per test shape in the sweep")
    ap.add_argument("--devices", type=int, nargs="+", default=[2, 3, 4, 5])
    ap.add_argument("--max-tokens", type=int, default=8, help="largest tokens per layer tried")
    ap.add_argument("--cpu-limit", type=float, default=20.0,
                    help="stop growing a device count past this CPU time of one solve")
    ap.add_argument("--plot-only", action="store_true")
    args = ap.parse_args()
    csv = ROOT / "docs" / "results" / "p1_coupled.csv"
    if args.plot_only:
        df = pd.read_csv(csv)
    else:
        df = pd.DataFrame(failure_and_stored() + sweep(args.seeds)
                          + scaling(tuple(args.devices), args.cpu_limit, args.max_tokens))
        df.to_csv(csv, index=False)
    (ROOT / "docs" / "results" / "p1_coupled.md").write_text(markdown(df))
    plot(df, ROOT / "docs" / "figures" / "p1_coupled_scaling.png")
    print(markdown(df))


if __name__ == "__main__":
    main()
