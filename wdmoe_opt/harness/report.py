"""``wdmoe-opt report``: PNG figures, CSV tables and one ``index.html`` from a bench folder.

One section per benchmark problem, titled in words, with what "solved" means there:
the time profile to a target (:class:`~wdmoe_opt.harness.analysis.Target`), the quality
profile and time against gap side by side; the methods best first; tiers as rows and
methods as columns for the target, the mean gap with its confidence interval and the
solve time (with its spread over repeats); per-instance tables and figures folded
away. Numbers are rounded for reading; every table's raw numbers are in a CSV file
linked beside it. The page states the machine, the versions, the time limit, the
target and the tolerances. The numbers come from :mod:`wdmoe_opt.harness.analysis`,
the figures from :mod:`wdmoe_opt.harness.figures`.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write_text
from . import analysis as an
from . import figures as fg
from .bench import read_meta
from .library import TIERS
from .runner import METHOD_TIME_FRACTION
from .table import read_results

#: Gaps smaller than this (relative) read as 0 in the tables (the CSV keeps them).
SHOWN_ZERO_GAP = 1e-6
_SUPPORT = {"topk": "Top-K support", "all": "any-expert support"}


@dataclass
class Report:
    """What :func:`write_report` produced: the page, figures, CSV tables, index updates."""

    page: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    updates: dict = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def problem_title(key: str) -> str:
    """A benchmark problem key in words: ``p1/topk/uniform`` ->
    ``P1, Top-K support, uniform lower level``."""
    parts = key.split("/")
    support = _SUPPORT.get(parts[1], f"{parts[1]} support") if len(parts) > 1 else ""
    if parts[0] == "p1" and len(parts) == 3:
        return f"P1, {support}, {parts[2]} lower level"
    if parts[0] == "p2" and len(parts) == 2:
        return f"P2, {support}, total WLR at the uniform split"
    if key == "p3":
        return "P3, bandwidth allocation for the router's Top-K selection"
    return key


def solved_sentence(key: str, tol: float) -> str:
    """One sentence on what "solved" means for a benchmark problem (eqs. 13-21)."""
    parts = key.split("/")
    within = f"within {tol:g} (relative) of the reference"
    if parts[0] == "p1":
        lower = ("the follower's selection is optimal for the leader's bandwidth"
                 if parts[-1] == "coupled" else
                 "the exact P2 selection at the uniform split, ties broken for the leader, "
                 "then its P3 bandwidth")
        return (f"Solved means a bilevel-feasible point ({lower}) whose batch latency T "
                f"(eq. 13) is {within}. The paper's ablations (router Top-K or Algorithm 1 "
                f"selection, then a bandwidth split) are not bilevel-feasible: they never "
                f"solve P1 and are compared by their latency in the quality profile and "
                f"against the target.")
    if parts[0] == "p2":
        keep = " within its router Top-K" if parts[-1] == "topk" else ""
        return (f"Solved means a selection in which every token keeps at least one "
                f"expert{keep}, whose total WLR at the uniform split (eq. 15) is {within}.")
    if key == "p3":
        return (f"Solved means a split of the total bandwidth whose batch latency T for the "
                f"router's Top-K selection (eq. 19) is {within}; P3 is convex, so exact "
                f"methods reach it and certify it with a lower bound.")
    return f"Solved means a checker-accepted point whose objective is {within}."


def fmt_time(seconds: float) -> str:
    """``0.52 ms``, ``12.3 ms``, ``1.23 s`` (``-`` for NaN)."""
    if not np.isfinite(seconds):
        return "-"
    return f"{_digits(seconds * 1e3, 3)} ms" if seconds < 1 else f"{_digits(seconds, 3)} s"


def _digits(x: float, digits: int) -> str:
    """``digits`` significant digits, whole numbers (never ``1.2e+02``) from 10**digits."""
    return f"{x:.0f}" if abs(x) >= 10**digits else f"{x:.{digits}g}"


def fmt_gap(gap: float) -> str:
    """A relative gap in percent, 3 significant digits; under 1e-6 reads ``0 %``."""
    if not np.isfinite(gap):
        return "-"
    return "0 %" if abs(gap) < SHOWN_ZERO_GAP else f"{_digits(100 * gap, 3)} %"


def fmt_share(share: float) -> str:
    """A fraction in percent, 3 significant digits (``-`` for NaN)."""
    return f"{100 * share:.3g} %" if np.isfinite(share) else "-"


def fmt_ci(mean: float, half: float) -> str:
    """``12.3 % ± 4.1`` (percentage points); the mean alone without an interval or with
    one narrower than :data:`SHOWN_ZERO_GAP`."""
    if not half >= SHOWN_ZERO_GAP:
        return fmt_gap(mean)
    return f"{fmt_gap(mean)} ± {_digits(100 * half, 2)}"


def fmt_time_spread(median: float, spread: float, repeats: int) -> str:
    """The median time, with the relative range over repeats when there are some."""
    if repeats < 2 or not np.isfinite(spread):
        return fmt_time(median)
    return f"{fmt_time(median)} (± {_digits(100 * spread / 2, 2)} %)"


def _shown_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The method table as read: counts as ``k/n``, times and gaps rounded."""
    s = summary
    n = s["instances"].astype(int).astype(str)
    shown = pd.DataFrame({
        "kind": s["kind"],
        "reached target": s["reached"].astype(str) + "/" + n,
        "solved": s["solved"].astype(str) + "/" + n,
        "failed": s["failed"].astype(str),
        "time to target (SGM)": s["sgm_time_to_target_s"].map(fmt_time),
        "median time": [fmt_time_spread(m, sp, r) for m, sp, r
                        in zip(s["median_time_s"], s["time_spread"], s["repeats"], strict=True)],
        f"mean gap ± {100 * an.CI_LEVEL:g} % CI": [fmt_ci(m, h) for m, h in
                                                  zip(s["mean_gap"], s["mean_gap_ci"],
                                                      strict=True)],
        "median gap": s["median_gap"].astype(float).map(fmt_gap),
        "worst gap": s["worst_gap"].astype(float).map(fmt_gap),
        "retained weight (median)": s["median_retained_weight"].astype(float).map(fmt_share),
    }, index=s.index)
    return _corner(shown, "method")


def _tier_order(tiers) -> list[str]:
    known = [t for t in TIERS if t in set(tiers)]
    return known + sorted(set(tiers) - set(known))


def _instances(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The (tier, instance) pairs of the runs: tiers in the library's order, then names."""
    rank = {t: k for k, t in enumerate(_tier_order(runs["tier"]))}
    pairs = runs[["tier", "instance"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(pairs, key=lambda p: (rank[p[0]], p[1]))


def _by_tier(tiers: pd.DataFrame, order: list[str],
             cell: Callable[[pd.Series], str]) -> pd.DataFrame:
    """Tiers as rows, methods as columns (best first), one formatted cell each."""
    cells = pd.Series([cell(r) for _, r in tiers.iterrows()],
                      index=pd.MultiIndex.from_frame(tiers[["tier", "solver"]]))
    table = cells.unstack("solver").reindex(index=_tier_order(tiers["tier"]), columns=order)
    return _corner(table.fillna("-"), "tier")


def _by_instance(runs: pd.DataFrame, order: list[str], column: str,
                 cell: Callable[[object], str]) -> pd.DataFrame:
    """Instances (by tier) as rows, methods as columns, one formatted cell each."""
    table = runs.pivot(index=["tier", "instance"], columns="solver", values=column)
    rows = pd.MultiIndex.from_tuples(_instances(runs), names=["tier", "instance"])
    table = table.reindex(index=rows, columns=order)
    table.columns.name = None
    return table.map(lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v))
                     else cell(v))


def _corner(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """Name the rows in the header's corner cell (one header row in HTML)."""
    table.index.name, table.columns.name = None, name
    return table


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(escape=True, border=0, classes="t", na_rep="-")


def _heading(title: str, csv: Path, out: Path) -> str:
    return (f'<h3>{html.escape(title)} <a class="csv" href="{csv.relative_to(out)}">'
            f"raw CSV</a></h3>")


def _write_csv(table: pd.DataFrame, path: Path, report: Report) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, table.to_csv())
    report.tables.append(path)
    return path


#: The columns of the per-run CSV of a section.
RUN_COLUMNS = ("tier", "instance", "solver", "status", "exact", "repeats", "objective",
               "reference", "reference_from", "gap_to_ref", "quality_ratio", "bound", "gap",
               "retained_weight", "target", "reached", "solved", "solve_time_s",
               "time_spread", "timeout")


def _section(problem: str, runs: pd.DataFrame, out: Path, report: Report, *,
             tol: float, shift: float) -> str:
    """The HTML of one benchmark problem; its figures and CSV files are written."""
    slug = _slug(problem)
    summary = an.method_summary(runs, shift, tol)
    order = list(summary.index)
    colors = fg.method_colors(order)
    figs = [fg.plot_time_profile(runs, colors, "Time to the target",
                                 out / f"{slug}-time-profile.png"),
            fg.plot_quality_profile(runs, colors, "Quality",
                                    out / f"{slug}-quality-profile.png"),
            fg.plot_time_vs_gap(runs, colors, "Time against gap",
                                out / f"{slug}-time-vs-gap.png")]
    per_instance = [fg.plot_instance(runs[runs["instance"] == name], colors,
                                     f"{name} ({tier})", out / slug / f"{_slug(name)}.png")
                    for tier, name in _instances(runs)]
    report.figures += figs + per_instance
    tiers = an.tier_summary(runs, shift)
    csv_methods = _write_csv(summary, out / f"{slug}-methods.csv", report)
    csv_tiers = _write_csv(tiers.set_index(["tier", "solver"]), out / f"{slug}-tiers.csv",
                           report)
    cols = [c for c in RUN_COLUMNS if c in runs]
    csv_runs = _write_csv(runs[cols].set_index(["tier", "instance", "solver"]),
                          out / f"{slug}-runs.csv", report)
    repeats = int(runs["repeats"].max())
    sources = runs.groupby("instance")["reference_from"].first().value_counts()
    n_inst = runs["instance"].nunique()
    src = ", ".join(f"{k} on {v}" for k, v in sources.items())
    sense = "lower" if runs["sense"].iloc[0] == "min" else "higher"
    parts = [
        f'<h2 id="{slug}">{html.escape(problem_title(problem))} '
        f"<code>{html.escape(problem)}</code></h2>",
        f"<p>{html.escape(solved_sentence(problem, tol))} {n_inst} instances; "
        f"{sense} is better; reference: {html.escape(src)}.</p>",
        '<div class="figs">' + "".join(
            f'<img src="{f.relative_to(out)}" alt="{f.stem}">' for f in figs) + "</div>",
        _heading("Methods, best first", csv_methods, out),
        _html_table(_shown_summary(summary)),
        _heading("Reached the target, per tier", csv_tiers, out),
        _html_table(_by_tier(tiers, order, lambda r: f"{r['reached']}/{r['instances']}")),
        _heading(f"Mean gap to the reference ± {100 * an.CI_LEVEL:g} % CI "
                 "(percentage points, Student t over the instances), per tier", csv_tiers, out),
        _html_table(_by_tier(tiers, order, lambda r: fmt_ci(r["mean_gap"], r["mean_gap_ci"]))),
        _heading("Median solve time, per tier"
                 + (f" (± half the relative range over {repeats} repeats)"
                    if repeats > 1 else ""), csv_tiers, out),
        _html_table(_by_tier(tiers, order, lambda r: fmt_time_spread(
            r["median_time_s"], r["time_spread"], r["repeats"]))),
        "<details><summary>Per instance: gaps, objective, status, solve time, "
        "figures</summary>",
        _per_instance_tables(runs, order, csv_runs, out),
        *(f'<img class="inst" src="{f.relative_to(out)}" alt="{f.stem}">'
          for f in per_instance),
        "</details>",
    ]
    return "\n".join(parts)


#: The per-instance tables of a section: title, column of the runs, cell format.
INSTANCE_TABLES = (
    ("Gap to the reference", "gap_to_ref", fmt_gap),
    ("Gap to own bound (as reported)", "gap", fmt_gap),
    ("Objective (latency s, or WLR for P2)", "objective", lambda v: f"{v:.5g}"),
    ("Retained weight (share of the router's Top-K gating weight kept)", "retained_weight",
     fmt_share),
    ("Status", "status", str),
    ("Solve time (median over repeats)", "solve_time_s", fmt_time),
)


def _per_instance_tables(runs: pd.DataFrame, order: list[str], csv: Path, out: Path) -> str:
    """Instances as rows, methods as columns, one table per column that holds a value."""
    tables = [_heading(title, csv, out) + _html_table(_by_instance(runs, order, col, cell))
              for title, col, cell in INSTANCE_TABLES if runs[col].notna().any()]
    return "\n".join(tables)


def write_report(results_dir: str | Path, out: str | Path, *, library=None,
                 tol: float = an.SOLVED_TOL, shift: float = an.SGM_SHIFT_S,
                 target: an.Target | None = None) -> Report:
    """Write figures, CSV tables and ``index.html`` under ``out``; return what was written.

    ``target`` (default: the best heuristic's value) is what a run must reach to count
    in the time profile and the shifted geometric mean. With ``library`` (the instance
    index the sweep ran on), the best known values the results improve are returned in
    ``Report.updates`` (see :func:`update_index`).
    """
    out = Path(out)
    target = target or an.Target()
    df = read_results(results_dir)
    runs = an.analyse(df, target, tol)
    report = Report(out / "index.html")
    sections = [_section(problem, g, out, report, tol=tol, shift=shift)
                for problem, g in runs.groupby("problem")]
    if library is not None:
        report.updates = an.best_known_updates(df, library)
    settings = {"target": target.describe(tol), "tol": tol, "shift": shift}
    atomic_write_text(report.page, _page(sections, df, read_meta(results_dir), settings,
                                         report.updates))
    return report


def update_index(library, updates: dict):
    """Write the improved best known values into the library's index file."""
    from .library import with_best_known, write_library
    if updates:
        write_library(with_best_known(library, updates))


def _versions(df: pd.DataFrame) -> dict[str, str]:
    """Every package version the runs recorded (several values if they differ)."""
    seen: dict[str, set[str]] = {}
    for text in df["versions"].dropna().unique():
        for name, version in json.loads(text).items():
            seen.setdefault(name, set()).add(str(version))
    return {name: ", ".join(sorted(v)) for name, v in sorted(seen.items())}


def _machine(meta: dict) -> str:
    m = meta.get("machine")
    if not m:
        return "not recorded (a bench folder from an older wdmoe-opt)"
    memory = f", {m['memory_gib']:.0f} GiB" if m.get("memory_gib") else ""
    where = (f" (runs went to the dask scheduler {meta['scheduler']}; this is the client)"
             if meta.get("scheduler") else f", {meta.get('jobs', 1)} run(s) at a time")
    return f"{m['cpu']}, {m['cores']} cores{memory}, {m['os']}{where}"


def _page(sections: list[str], df: pd.DataFrame, meta: dict, settings: dict,
          updates: dict) -> str:
    timeouts = sorted(set(df["timeout"].dropna().astype(float)))
    limit = ", ".join(f"{t:g} s" for t in timeouts) or "-"
    memory = f"{meta['memory_mb']:g} MiB" if meta.get("memory_mb") else "-"
    facts = {
        "runs": f"{len(df)} runs, {df['instance'].nunique()} instances, "
                f"{df['solver'].nunique()} methods, {int(df['repeat'].max()) + 1} repeat(s)",
        "machine": _machine(meta),
        "time limit": f"{limit} per run (methods with a time_limit option get "
                      f"{100 * METHOD_TIME_FRACTION:g} %); memory {memory}",
        "target": settings["target"],
        "solved": f"problem-feasible and within {settings['tol']:g} of the reference",
        "time to target": f"shifted geometric mean, shift {settings['shift']:g} s, runs "
                          "that miss the target counted at the time limit",
        "versions": "; ".join(f"{k} {v}" for k, v in _versions(df).items()) or "-",
        "written": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    facts_html = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                         for k, v in facts.items())
    upd = "".join(f"<li>{html.escape(n)} {html.escape(p)}: {v['objective']:.9g} "
                  f"({v['status']}, {html.escape(str(v['solver']))})</li>"
                  for (n, p), v in sorted(updates.items()))
    skipped = df[df["status"] == "unavailable"].groupby("solver")["error"].first()
    skip = "".join(f"<li>{html.escape(s)}: {html.escape(str(e))}</li>"
                   for s, e in skipped.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>wdmoe-opt benchmark report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1500px}}
table.t{{border-collapse:collapse;font-size:small;margin-bottom:1em}}
table.t td,table.t th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}
table.meta th{{text-align:left;padding-right:1em;vertical-align:top}}
div.figs img{{width:32%;min-width:360px}} img.inst{{width:48%}}
a.csv{{font-size:small;font-weight:normal;margin-left:.5em}}
h2 code{{font-size:small;color:#666;margin-left:.5em}}</style></head><body>
<h1>wdmoe-opt benchmark report</h1>
<table class="meta">{facts_html}</table>
<p>How to read a section: the <b>reference</b> of an instance is its best known value, or
the best problem-feasible run, or (with neither) the best run; the <b>gap</b> of a run is
its relative distance to the reference, positive when worse. The <b>time profile</b>
shows, for each method, the fraction of instances on which it reached the target within
a factor tau of the fastest method that did; the <b>quality profile</b> the fraction of
instances on which its value is within a factor tau of the reference (failed runs never
count); <b>time against gap</b> one point per instance and method, with the gap to the
method's own certified bound as a hollow square where it reported one. Methods are
sorted best first: most instances reaching the target, then the smallest mean gap, then
the shortest time to the target.</p>
<h3>Methods not run</h3><ul>{skip or "<li>none</li>"}</ul>
<h3>Best known values improved by these runs</h3><ul>{upd or "<li>none</li>"}</ul>
{''.join(sections)}
</body></html>
"""
