"""``wdmoe-opt report``: PNG figures, CSV tables and one ``index.html`` from a bench folder.

Per benchmark problem: a Dolan-More performance profile of solve times, the solver
summary (runs, solved, failed, shifted geometric mean time), solved counts per tier,
objective / gap-to-best / gap-to-bound / status tables and one figure per instance.
The numbers come from :mod:`wdmoe_opt.harness.analysis`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write_text
from . import analysis as an
from .table import read_results


@dataclass
class Report:
    """What :func:`write_report` produced: the page, the figures, the index updates."""

    page: Path
    figures: list[Path] = field(default_factory=list)
    updates: dict = field(default_factory=dict)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def plot_profile(runs: pd.DataFrame, title: str, path: Path) -> Path:
    """The Dolan-More profile of solve times, ``log2`` ratio axis."""
    plt = _pyplot()
    tau, rho = an.performance_profile(runs)
    fig, ax = plt.subplots(figsize=(6, 4))
    top = max(2.0, float(tau.max()) * 2)
    for solver, y in rho.items():
        ax.step(np.append(tau, top), np.append(y, y[-1]), where="post", label=solver)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, top)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau (time / best time on the instance)")
    ax.set_ylabel("fraction of instances solved within tau")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_instance(runs: pd.DataFrame, title: str, path: Path) -> Path:
    """Objective and solve time of every solver on one instance (failed runs hatched)."""
    plt = _pyplot()
    runs = runs.sort_values("solver")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    colors = ["tab:green" if s else ("tab:blue" if ok else "tab:red")
              for s, ok in zip(runs["solved"], runs["ok"], strict=True)]
    y = np.arange(len(runs))
    a1.barh(y, runs["objective"].astype(float).fillna(0), color=colors)
    ref = runs["reference"].dropna()
    if not ref.empty:
        a1.axvline(float(ref.iloc[0]), color="k", ls="--", lw=1, label="reference")
        a1.legend(fontsize="small")
    a1.set_yticks(y, runs["solver"])
    sense = runs["sense"].iloc[0]
    a1.set_xlabel("total WLR (max)" if sense == "max" else "batch latency T, s (min)")
    a2.barh(y, runs["solve_time_s"].astype(float), color=colors)
    a2.set_xscale("log")
    a2.set_yticks(y, [""] * len(runs))
    a2.set_xlabel("solve time, s (log)")
    fig.suptitle(f"{title}  (green solved, blue ok, red failed)", fontsize="small")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def problem_tables(runs: pd.DataFrame, shift: float) -> dict[str, pd.DataFrame]:
    """The tables of one benchmark problem, by title."""
    return {
        "Solvers": an.solver_summary(runs, shift),
        "Solved per tier": an.solved_by_tier(runs),
        "Objective (latency s, or WLR for P2)": an.pivot(runs, "objective"),
        "Gap to best known (relative; < 0 is a point that is not feasible for the problem)":
            an.pivot(runs, "gap_to_ref"),
        "Gap to own bound (relative, as reported)": an.pivot(runs, "gap"),
        "Status": an.pivot(runs, "status"),
        "Solve time s (median over repeats)": an.pivot(runs, "solve_time_s"),
    }


def write_report(results_dir: str | Path, out: str | Path, *, library=None,
                 tol: float = an.SOLVED_TOL, shift: float = an.SGM_SHIFT_S) -> Report:
    """Write figures, CSV tables and ``index.html`` under ``out``; return what was written.

    With ``library`` (the instance index the sweep ran on), the best known values the
    results improve are returned in ``Report.updates`` (see :func:`update_index`).
    """
    out = Path(out)
    df = read_results(results_dir)
    runs = an.with_reference(an.merge_repeats(df), tol)
    report = Report(out / "index.html")
    sections = []
    for problem, g in runs.groupby("problem"):
        slug = _slug(problem)
        figs = [plot_profile(g, f"{problem}: performance profile (time)",
                             out / f"{slug}-profile.png")]
        figs += [plot_instance(gi, f"{problem} / {name}", out / slug / f"{_slug(name)}.png")
                 for name, gi in g.groupby("instance")]
        tables = problem_tables(g, shift)
        for title, table in tables.items():
            table.to_csv(out / f"{slug}-{_slug(title.split(' (')[0].lower())}.csv")
        report.figures += figs
        sections.append(_section(problem, figs, tables, out))
    if library is not None:
        report.updates = an.best_known_updates(df, library)
    skipped = df[df["status"] == "unavailable"].groupby("solver")["error"].first()
    atomic_write_text(report.page, _page(sections, df, tol, shift, report.updates, skipped))
    return report


def update_index(library, updates: dict):
    """Write the improved best known values into the library's index file."""
    from .library import with_best_known, write_library
    if updates:
        write_library(with_best_known(library, updates))


def _section(problem: str, figs: list[Path], tables: dict, out: Path) -> str:
    parts = [f"<h2>{html.escape(problem)}</h2>",
             f'<img src="{figs[0].relative_to(out)}" alt="performance profile">']
    for title, table in tables.items():
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(table.to_html(float_format=lambda x: f"{x:.6g}", na_rep="-",
                                   border=0, classes="t"))
    parts.append("<h3>Per instance</h3>")
    parts += [f'<img class="small" src="{f.relative_to(out)}" alt="{f.stem}">'
              for f in figs[1:]]
    return "\n".join(parts)


def _page(sections: list[str], df: pd.DataFrame, tol: float, shift: float,
          updates: dict, skipped: pd.Series) -> str:
    versions = sorted(set(df["versions"].dropna()))
    upd = "".join(f"<li>{html.escape(n)} {html.escape(p)}: {v['objective']:.9g} "
                  f"({v['status']}, {html.escape(str(v['solver']))})</li>"
                  for (n, p), v in sorted(updates.items()))
    skip = "".join(f"<li>{html.escape(s)}: {html.escape(str(e))}</li>"
                   for s, e in skipped.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>wdmoe-opt benchmark report</title>
<style>body{{font-family:sans-serif;margin:2em}} table.t{{border-collapse:collapse;
font-size:small}} table.t td,table.t th{{padding:2px 8px;border-bottom:1px solid #ddd}}
img.small{{width:48%}}</style></head><body>
<h1>wdmoe-opt benchmark report</h1>
<p>{len(df)} runs, {df['instance'].nunique()} instances, {df['solver'].nunique()} solvers.
A run is <b>solved</b> when the checker accepts it, it is feasible for its problem
(bilevel-feasible for P1) and within {tol:g} (relative) of the reference (the best known
value or the best feasible result). Times: solve time only; the shifted geometric mean
uses a shift of {shift:g} s and counts unsolved runs at their time limit.</p>
<h3>Solvers not run</h3><ul>{skip or "<li>none</li>"}</ul>
<h3>Best known values improved by these runs</h3><ul>{upd or "<li>none</li>"}</ul>
{''.join(sections)}
<h3>Versions</h3><pre>{html.escape(chr(10).join(versions))}</pre>
</body></html>
"""
