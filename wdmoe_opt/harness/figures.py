"""The figures of a benchmark report (matplotlib, Agg backend), one PNG file each.

Per problem: the Dolan-More time profile to the target, the quality profile, time
against gap (one point per (instance, method)) and one figure per instance. The numbers
come from :mod:`wdmoe_opt.harness.analysis`; a method keeps its colour in every figure
of a section (``colors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis as an

#: Smallest linear range of the symmetric-log gap axis: gaps below it read as 0 (the
#: default solved tolerance).
GAP_LINTHRESH = an.SOLVED_TOL


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def method_colors(methods) -> dict[str, tuple]:
    """One colour per method, in the order given (best first)."""
    cmap = _pyplot().get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def _log_x(ax, values) -> None:
    """A log x axis; 0.1 ms to 1 s when no value is positive (every run failed)."""
    v = np.asarray(values, dtype=float)
    ax.set_xscale("log")
    if not np.any(np.isfinite(v) & (v > 0)):
        ax.set_xlim(1e-4, 1.0)


def _plot_profile(tau: np.ndarray, rho: Mapping[str, np.ndarray], colors: Mapping,
                  xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Step curves ``rho_s(tau)`` on a ``log2`` axis from 1, best method first."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    top = max(2.0, float(tau.max()) * 1.25)
    for solver, color in colors.items():
        y = rho[solver]
        ax.step(np.append(tau, top), np.append(y, y[-1]), where="post", label=solver,
                color=color, lw=1.6)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, top)
    _plain_log2_ticks(ax.xaxis, top)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    return _save(fig, path)


def _plain_log2_ticks(axis, top: float) -> None:
    """Ticks read as numbers (``1.5``, not ``2^0.58``); quarter steps on a short axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator
    if top <= 8:
        axis.set_major_locator(LogLocator(base=2, subs=(1.0, 1.25, 1.5, 1.75)))
    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda x, _: ""))


def plot_time_profile(runs: pd.DataFrame, colors: Mapping, title: str, path: Path) -> Path:
    """The Dolan-More profile of the solve times of the runs that reached the target."""
    tau, rho = an.performance_profile(runs, success="reached")
    return _plot_profile(tau, rho, colors, "tau (time / fastest time to the target)",
                         "fraction of instances reaching the target", title, path)


def plot_quality_profile(runs: pd.DataFrame, colors: Mapping, title: str,
                         path: Path) -> Path:
    """The quality profile: fraction of instances within a factor tau of the reference."""
    tau, rho = an.quality_profile(runs)
    sense = runs["sense"].iloc[0]
    ratio = "reference / WLR" if sense == "max" else "latency / reference"
    return _plot_profile(tau, rho, colors, f"tau ({ratio})",
                         "fraction of instances within tau", title, path)


def plot_time_vs_gap(runs: pd.DataFrame, colors: Mapping, title: str, path: Path) -> Path:
    """Solve time (log) against the gap to the reference (symmetric log), one filled
    point per (instance, method); a hollow square marks the gap to the method's own
    certified bound where it reported one."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    ok = runs[runs["ok"]]
    for solver, color in colors.items():
        g = ok[ok["solver"] == solver]
        ax.scatter(g["solve_time_s"], g["gap_to_ref"], color=color, s=22, label=solver)
        b = g[g["gap"].notna()]
        ax.scatter(b["solve_time_s"], b["gap"], facecolors="none", edgecolors=[color],
                   marker="s", s=40)
    _log_x(ax, ok["solve_time_s"])
    gaps = np.abs(np.concatenate([ok["gap_to_ref"].astype(float), ok["gap"].astype(float)]))
    linthresh = gap_linthresh(gaps)
    ax.set_yscale("symlog", linthresh=linthresh)
    signed = np.concatenate([ok["gap_to_ref"].astype(float), ok["gap"].astype(float)])
    signed = signed[np.isfinite(signed)]
    low, high = (signed.min(), signed.max()) if signed.size else (0.0, 0.0)
    ax.set_ylim(min(2 * low, -linthresh), max(2 * high, linthresh))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("solve time, s (log)")
    ax.set_ylabel(f"relative gap (log; linear within ±{linthresh:g})")
    failed = int((~runs["ok"]).sum())
    ax.set_title(title + (f" ({failed} failed runs not shown)" if failed else ""),
                 fontsize="medium")
    ax.grid(alpha=0.3)
    keys = [Line2D([], [], ls="", marker="o", color="0.4", label="gap to best known"),
            Line2D([], [], ls="", marker="s", mfc="none", color="0.4",
                   label="gap to own bound")]
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + keys, fontsize="x-small", loc="best")
    return _save(fig, path)


def gap_linthresh(gaps: np.ndarray) -> float:
    """The decade below the smallest gap of at least :data:`GAP_LINTHRESH`, so that the
    log part of the axis holds every such gap and smaller ones read as about 0."""
    big = gaps[np.isfinite(gaps) & (gaps >= GAP_LINTHRESH)]
    return float(10.0 ** np.floor(np.log10(big.min()))) if big.size else GAP_LINTHRESH


def plot_instance(runs: pd.DataFrame, colors: Mapping, title: str, path: Path) -> Path:
    """Objective and solve time of every method on one instance, best method on top
    (``*`` after the runs that reached the target, the status after failed ones)."""
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter
    runs = runs.set_index("solver").reindex([s for s in colors if s in set(runs["solver"])])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 0.9 + 0.35 * len(runs)))
    y = np.arange(len(runs))[::-1]
    color = [colors[s] for s in runs.index]
    a1.barh(y, runs["objective"].astype(float), color=color)
    ref = runs["reference"].dropna()
    if not ref.empty:
        a1.axvline(float(ref.iloc[0]), color="k", ls="--", lw=1)
        title += f"; dashed: the reference ({runs['reference_from'].iloc[0]})"
    a1.set_yticks(y, [s + (" *" if r else "") + ("" if ok else f" ({status})") for s, r, ok, status
                      in zip(runs.index, runs["reached"], runs["ok"], runs["status"], strict=True)])
    sense = runs["sense"].iloc[0]
    a1.set_xlabel("total WLR (max)" if sense == "max" else "batch latency T, s (min)")
    a2.barh(y, runs["solve_time_s"].astype(float), color=color)
    _log_x(a2, runs["solve_time_s"])
    a2.xaxis.set_minor_formatter(NullFormatter())
    a2.set_yticks(y, [""] * len(runs))
    a2.set_xlabel("solve time, s (log)")
    fig.suptitle(f"{title}; * reached the target", fontsize="small")
    return _save(fig, path)
