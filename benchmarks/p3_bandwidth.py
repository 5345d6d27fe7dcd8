"""P3 benchmark: uniform, SLSQP, cvxpy and the exact solver on paper-scale and large instances.

Every method solves the same instances in one run, interleaved, so the time ratios
compare like with like on a shared machine. Per method and instance it records the
registry's solve time (the solve function end to end, including building the data
and the common evaluation of the solution), the time of the optimizer proper
(``extra["algorithm_time_s"]``), the objective and its gap to the exact optimum.
cvxpy is timed twice: ``cold`` (its model cache cleared before each run, so the DCP
model is built and compiled) and ``warm`` (the cached model re-solved with new
parameter values). Every timing is the minimum over ``--repeats`` runs (one run
when it takes over a second). Backends are imported by an untimed warm-up solve
first, and each instance's loads (memoized on the selection) by an untimed
``uniform`` solve.

    .venv/bin/python benchmarks/p3_bandwidth.py --out docs/figures

writes ``p3_bandwidth.csv`` and ``p3_solve_time.png`` there and prints a Markdown table.
Every method runs single-threaded: BLAS threads (OpenBLAS spins its idle threads for
a while after each call) would otherwise take the second core from the next method
on a small machine.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from wdmoe_opt import BandwidthProblem, Selection, get_method  # noqa: E402
from wdmoe_opt.bandwidth import conic  # noqa: E402
from wdmoe_opt.generate import generate  # noqa: E402

#: (label, generator overrides); sizes for the time-vs-size curve carry ``devices``.
INSTANCES = [
    ("paper 32x8", dict(layers=32, tokens=1024, devices=8, experts=8)),
    ("paper 32x8 fast fading", dict(layers=32, tokens=1024, devices=8, experts=8,
                                    fast_fading=True)),
    ("32x16", dict(layers=32, tokens=2048, devices=16, experts=16)),
    ("32x32", dict(layers=32, tokens=2048, devices=32, experts=32)),
    ("large 32x64", dict(layers=32, tokens=4096, devices=64, experts=64)),
    ("large 32x64 fast fading", dict(layers=32, tokens=4096, devices=64, experts=64,
                                     fast_fading=True)),
    ("large 32x128 shared", dict(layers=32, tokens=8192, devices=128, experts=256,
                                 placement="round-robin")),
]
METHODS = ("uniform", "slsqp", "cvxpy", "exact")


def _fastest(solver, prob, repeats: int, before=None):
    """The fastest of ``repeats`` solves (a single one when it takes over a second);
    ``before()`` runs untimed before each."""
    best = None
    for _ in range(repeats):
        if before is not None:
            before()
        sol = solver(prob)
        best = sol if best is None else min(best, sol, key=lambda s: s.solve_time_s)
        if best.solve_time_s >= 1.0:
            break
    return best


def _run(method: str, prob, repeats: int) -> list[dict]:
    solver = get_method(method, "p3")
    if method == "cvxpy":
        runs = [("cold", _fastest(solver, prob, repeats, before=conic._MODELS.clear)),
                ("warm", _fastest(solver, prob, repeats))]
    else:
        runs = [("", _fastest(solver, prob, repeats))]
    return [{"variant": variant, "status": str(sol.status), "objective_s": sol.objective_s,
             "lower_bound_s": sol.lower_bound_s, "solve_time_s": sol.solve_time_s,
             "algorithm_time_s": sol.extra.get("algorithm_time_s")} for variant, sol in runs]


def _warm_up() -> None:
    """Import every backend before timing (a first cvxpy call pays ~1 s of imports)."""
    inst = generate("wdmoe-sim", seed=0, layers=2, tokens=8, devices=3, experts=3)
    for method in METHODS:
        get_method(method, "p3")(BandwidthProblem(inst, Selection.topk(inst)))


def run(seed: int = 0, repeats: int = 3, instances=INSTANCES) -> pd.DataFrame:
    """One row per (instance, method[, variant]); gaps are relative to ``exact``."""
    _warm_up()
    rows = []
    for label, params in instances:
        inst = generate("wdmoe-sim", seed=seed, **params)
        prob = BandwidthProblem(inst, Selection.topk(inst))
        # Untimed: fills the loads and weights memoized on the selection, so no
        # method pays for them (the first solve on a large instance would).
        get_method("uniform", "p3")(prob)
        for method in METHODS:
            for rec in _run(method, prob, repeats):
                rows.append({"instance": label, "devices": inst.n_devices,
                             "layers": inst.n_layers, "tokens": inst.n_tokens,
                             "method": method + (f" ({rec.pop('variant')})"
                                                 if rec["variant"] else ""), **rec})
                rows[-1].pop("variant", None)
    df = pd.DataFrame(rows)
    exact = df[df.method == "exact"].set_index("instance")
    df["gap_to_exact"] = (df.objective_s / df.instance.map(exact.objective_s)) - 1
    for col in ("solve_time_s", "algorithm_time_s"):
        df[f"{col[:-2]}_ratio"] = df[col] / df.instance.map(exact[col])
    return df


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = df[df.instance.isin([label for label, p in INSTANCES
                                 if not p.get("fast_fading") and "shared" not in label])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, col, what in zip(axes, ("solve_time_s", "algorithm_time_s"),
                             ("solve time (registry, end to end)", "algorithm time"),
                             strict=True):
        for method, group in curve.dropna(subset=[col]).groupby("method"):
            ax.plot(group.devices, group[col], marker="o", label=method)
        ax.set(xscale="log", yscale="log", xlabel="devices U (32 layers, identity placement)",
               ylabel=f"{what} [s]", title=f"P3 {what}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(df: pd.DataFrame) -> str:
    cols = ["instance", "method", "status", "objective_s", "gap_to_exact", "solve_time_s",
            "solve_time_ratio", "algorithm_time_s", "algorithm_time_ratio"]
    out = df[cols].copy()
    for c in ("solve_time_s", "algorithm_time_s"):
        out[c] = out[c].map(lambda v: "" if v is None or np.isnan(v) else f"{v * 1e3:.2f} ms")
    for c in ("solve_time_ratio", "algorithm_time_ratio"):
        out[c] = out[c].map(lambda v: "" if np.isnan(v) else f"{v:.1f}x")
    out["gap_to_exact"] = out.gap_to_exact.map(lambda v: f"{v:.1e}")
    out["objective_s"] = out.objective_s.map(lambda v: f"{v:.6f}")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in out.itertuples(False)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="paper-scale instances only")
    parser.add_argument("--replot", type=Path, help="redraw the figure from a results CSV")
    args = parser.parse_args(argv)
    if args.replot:
        plot(pd.read_csv(args.replot), args.out / "p3_solve_time.png")
        return
    instances = INSTANCES[:2] if args.quick else INSTANCES
    df = run(args.seed, args.repeats, instances)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "p3_bandwidth.csv", index=False)
    plot(df, args.out / "p3_solve_time.png")
    print(markdown(df))


if __name__ == "__main__":
    main()
