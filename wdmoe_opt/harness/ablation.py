"""The paper's ablations (Table II) and bandwidth sweep (Fig. 5): experiments over
the solvers, used by ``wdmoe-opt ablation`` and ``benchmarks/``.

Each variant is a ``p1/sequential`` composition of a P2 and a P3
method, the paper's scheme with one part switched off:

* ``mixtral``: router Top-K, uniform split (the Mixtral-based baseline);
* ``no-bandwidth``: the selection (Algorithm 1), uniform split;
* ``no-selection``: router Top-K, bandwidth allocation (P3, eqs. 19-21);
* ``wdmoe``: the selection, then P3 (the paper's method).

Results are reported as ratios to ``mixtral`` on the same instance, averaged over
seeds with their spread (sample standard deviation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..generate import generate
from ..problems import JointProblem
from ..registry import get_method
from ..solution import Solution

VARIANTS = ("mixtral", "no-bandwidth", "no-selection", "wdmoe")


def variant_methods(selection: str = "alg1", bandwidth: str = "exact") -> dict[str, tuple]:
    """``variant -> (P2 method, P3 method)`` for the paper's method pair."""
    return {"mixtral": ("topk", "uniform"), "no-bandwidth": (selection, "uniform"),
            "no-selection": ("topk", bandwidth), "wdmoe": (selection, bandwidth)}


def run_ablation(problem: JointProblem, selection: str = "alg1", bandwidth: str = "exact",
                 variants: Sequence[str] = VARIANTS) -> dict[str, Solution]:
    """Solve ``problem`` with each variant (``p1/sequential`` compositions)."""
    pairs = variant_methods(selection, bandwidth)
    method = get_method("sequential", "p1")
    return {v: method(problem, {"selection": pairs[v][0], "bandwidth": pairs[v][1]})
            for v in variants}


def ablation_rows(preset: str = "wdmoe-sim", seeds: Iterable[int] = range(5), *,
                  selection: str = "alg1", bandwidth: str = "exact",
                  variants: Sequence[str] = VARIANTS, **overrides) -> list[dict]:
    """One row per (seed, variant): latency per batch (ms), ratio to ``mixtral`` on the
    same instance, retained weight and expert invocations (``overrides`` go to the
    generator, e.g. ``tokens=256`` or ``total_bandwidth_hz=40e6``)."""
    variants = tuple(dict.fromkeys(("mixtral", *variants)))
    rows = []
    for seed in seeds:
        instance = generate(preset, seed=seed, **overrides)
        sols = run_ablation(JointProblem(instance), selection, bandwidth, variants)
        base = sols["mixtral"].objective_s
        rows += [{"seed": seed, "variant": v, "bandwidth_mhz":
                  instance.system.total_bandwidth_hz / 1e6, "latency_ms": s.objective_s * 1e3,
                  "ratio": s.objective_s / base, "retained_weight": s.retained_weight,
                  "invocations": s.expert_invocations, "status": str(s.status)}
                 for v, s in sols.items()]
    return rows


def summarize(rows: list[dict], by: Sequence[str] = ("variant",)):
    """Mean and spread over seeds: a :class:`pandas.DataFrame` with ``latency_ms``,
    ``ratio`` (mean, std), ``reduction_pct`` (``100 (1 - mean ratio)``) and
    ``retained_weight`` (mean), one row per group, variants in paper order."""
    import pandas as pd

    df = pd.DataFrame(rows)
    g = df.groupby(list(by), sort=False)
    out = pd.DataFrame({
        "seeds": g["seed"].nunique(),
        "latency_ms_mean": g["latency_ms"].mean(), "latency_ms_std": g["latency_ms"].std(),
        "ratio_mean": g["ratio"].mean(), "ratio_std": g["ratio"].std(),
        "ratio_min": g["ratio"].min(), "ratio_max": g["ratio"].max(),
        "retained_weight_mean": g["retained_weight"].mean()})
    out["reduction_pct"] = 100.0 * (1.0 - out["ratio_mean"])
    return out.reset_index()


def table_cells(summary, paper: dict[str, float] | None = None
                ) -> tuple[list[str], list[list[str]]]:
    """The Table II-style table as strings, ``(header, rows)``: the one renderer that
    the markdown file and the terminal table both print."""
    header = ["variant", "latency/batch (ms), mean ± std", "ratio to mixtral, mean ± std "
              "[min, max]", "reduction", "retained weight"] + (["paper ARC-C ratio"] if paper
                                                               else [])
    rows = [[r.variant, f"{r.latency_ms_mean:,.1f} ± {r.latency_ms_std:,.1f}",
             f"{r.ratio_mean:.3f} ± {r.ratio_std:.3f} [{r.ratio_min:.3f}, {r.ratio_max:.3f}]",
             f"{r.reduction_pct:.1f}%", f"{r.retained_weight_mean:.3f}"]
            + ([f"{paper[r.variant]:.3f}"] if paper else []) for r in summary.itertuples()]
    return header, rows


def to_markdown(summary, command: str, paper: dict[str, float] | None = None) -> str:
    """:func:`table_cells` as a markdown table, with the command that produced it."""
    header, rows = table_cells(summary, paper)
    lines = [f"Produced by `{command}`.", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


#: The paper's Table II, ARC-C column, as ratios to the Mixtral-based method.
PAPER_ARC_C = {"mixtral": 1.0, "no-bandwidth": 37584.2 / 40367.1,
               "no-selection": 25598.4 / 40367.1, "wdmoe": 23400.0 / 40367.1}
