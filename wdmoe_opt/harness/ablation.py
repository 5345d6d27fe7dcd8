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


def summarize(rows: list[dict], by: Sequence[str] = ("variant",),
              ranges: dict[str, tuple[float, float]] | None = None):
    """Mean and spread over seeds: a :class:`pandas.DataFrame` with ``latency_ms``,
    ``ratio`` (mean, std), ``reduction_pct`` (``100 (1 - mean ratio)``) and
    ``retained_weight`` (mean), one row per group, variants in paper order; with
    ``ranges`` (``variant -> (low, high)`` reduction in %, e.g. :data:`PAPER_RANGES`)
    also ``in_range``, the number of seeds whose own reduction lies in the range."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if ranges:
        low = df["variant"].map(lambda v: ranges.get(v, (float("nan"),) * 2)[0])
        high = df["variant"].map(lambda v: ranges.get(v, (float("nan"),) * 2)[1])
        reduction = 100.0 * (1.0 - df["ratio"])
        df["in_range"] = (reduction >= low) & (reduction <= high)
    g = df.groupby(list(by), sort=False)
    out = pd.DataFrame({
        "seeds": g["seed"].nunique(),
        "latency_ms_mean": g["latency_ms"].mean(), "latency_ms_std": g["latency_ms"].std(),
        "ratio_mean": g["ratio"].mean(), "ratio_std": g["ratio"].std(),
        "ratio_min": g["ratio"].min(), "ratio_max": g["ratio"].max(),
        "retained_weight_mean": g["retained_weight"].mean()})
    out["reduction_pct"] = 100.0 * (1.0 - out["ratio_mean"])
    if ranges:
        out["in_range"] = g["in_range"].sum()
    return out.reset_index()


def table_cells(summary, paper: dict[str, float] | None = None
                ) -> tuple[list[str], list[list[str]]]:
    """The Table II-style table as strings, ``(header, rows)``: the one renderer that
    the markdown file and the terminal table both print (with the paper's per-dataset
    ranges and the seeds inside them when ``summary`` has ``in_range``, see
    :func:`summarize`)."""
    ranged = "in_range" in summary
    header = ["variant", "latency/batch (ms), mean ± std", "ratio to mixtral, mean ± std "
              "[min, max]", "reduction", "retained weight"] + (["paper ARC-C ratio"] if paper
                                                               else []) \
        + (["paper reduction: range (mean)", "seeds in the paper's range"] if ranged else [])
    rows = [[r.variant, f"{r.latency_ms_mean:,.1f} ± {r.latency_ms_std:,.1f}",
             f"{r.ratio_mean:.3f} ± {r.ratio_std:.3f} [{r.ratio_min:.3f}, {r.ratio_max:.3f}]",
             f"{r.reduction_pct:.1f}%", f"{r.retained_weight_mean:.3f}"]
            + ([f"{paper[r.variant]:.3f}"] if paper else [])
            + (_range_cells(r) if ranged else []) for r in summary.itertuples()]
    return header, rows


def _range_cells(r) -> list[str]:
    """The paper's per-dataset range (mean) of a variant and the seeds inside it."""
    if r.variant not in PAPER_RANGES:
        return ["", ""]
    low, high = PAPER_RANGES[r.variant]
    return [f"{low:.1f}–{high:.1f} % ({PAPER_MEAN_REDUCTION[r.variant]:.1f} %)",
            f"{r.in_range}/{r.seeds}"]


def to_markdown(summary, command: str, paper: dict[str, float] | None = None) -> str:
    """:func:`table_cells` as a markdown table, with the command that produced it."""
    header, rows = table_cells(summary, paper)
    lines = [f"Produced by `{command}`.", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


#: The paper's Table II (latency per batch, ms), one value per dataset: MMLU, PIQA,
#: ARC-E, ARC-C, HumanEval, GSM-8K, BoolQ, MBPP.
PAPER_TABLE2 = {
    "mixtral": (298813.6, 37183.1, 36401.5, 40367.1, 572.6, 1661.6, 109957.8, 847.9),
    "no-bandwidth": (258884.0, 33861.6, 35043.3, 37584.2, 527.3, 1491.5, 106806.9, 700.9),
    "no-selection": (195383.3, 22114.1, 22774.5, 25598.4, 335.2, 1066.0, 66684.0, 538.1),
    "wdmoe": (172743.9, 19522.2, 21692.0, 23400.0, 305.9, 964.5, 63991.0, 448.2),
}
_PAPER_REDUCTIONS = {v: [100.0 * (1.0 - x / m)
                         for x, m in zip(row, PAPER_TABLE2["mixtral"], strict=True)]
                     for v, row in PAPER_TABLE2.items() if v != "mixtral"}
#: Per-dataset range of each ablation's reduction against Mixtral-based (%), e.g.
#: WDMoE 40.4-47.5, bandwidth alone 34.6-41.5, selection alone 2.9-17.3.
PAPER_RANGES = {v: (min(r), max(r)) for v, r in _PAPER_REDUCTIONS.items()}
#: The mean over the eight datasets (%): WDMoE 43.7, bandwidth alone 37.8, selection 8.9.
PAPER_MEAN_REDUCTION = {v: sum(r) / len(r) for v, r in _PAPER_REDUCTIONS.items()}
#: The ARC-C column as ratios to the Mixtral-based method.
PAPER_ARC_C = {v: row[3] / PAPER_TABLE2["mixtral"][3] for v, row in PAPER_TABLE2.items()}
