"""The numbers of a benchmark report: solved runs, performance profiles, shifted
geometric means, gap tables and best known updates (no plotting here).

Definitions (``docs/harness.md``):

* a run is **ok** when it finished with status ``optimal``, ``feasible`` or ``time_limit``
  and the checker accepted its point; it is **solved** when it is ok, feasible for its
  problem (bilevel-feasible for P1) and within ``tol`` of the reference value;
* the **reference** of an instance is the best of its index best known value and the
  best feasible objective in the results;
* repeats are merged: the median solve time, the first repeat's point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OK_STATUSES = ("optimal", "feasible", "time_limit")
#: Relative tolerance on the gap to the reference for a run to count as solved.
SOLVED_TOL = 1e-6
#: Shift of the shifted geometric mean of times, in seconds. Most solves here take
#: milliseconds; 10 ms keeps those from dominating the mean, as Mittelmann's 10 s
#: shift does for MILP solvers whose times are in minutes.
SGM_SHIFT_S = 0.01


def merge_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, instance, solver): the first repeat's point, median time.

    Rows of unavailable solvers (not runs at all) are left out."""
    df = df[df["status"] != "unavailable"].sort_values("repeat")
    time = df.groupby(["problem", "instance", "solver"])["solve_time_s"].median()
    first = df.groupby(["problem", "instance", "solver"], as_index=False).first()
    first["solve_time_s"] = time.values
    first["ok"] = first["status"].isin(OK_STATUSES)
    first["feasible"] = first["ok"] & first["feasible"].fillna(False).astype(bool)
    return first


def with_reference(runs: pd.DataFrame, tol: float = SOLVED_TOL) -> pd.DataFrame:
    """Add ``reference``, ``gap_to_ref`` and ``solved`` to merged runs."""
    runs = runs.copy()
    sign = np.where(runs["sense"] == "max", -1.0, 1.0)
    signed = pd.Series(np.where(runs["feasible"], sign * runs["objective"].astype(float),
                                np.inf), index=runs.index)
    signed_best = pd.Series(sign * runs["best_known"].astype(float), index=runs.index)
    keys = [runs["problem"], runs["instance"]]
    ref = np.fmin(signed.groupby(keys).transform("min"),
                  signed_best.fillna(np.inf).groupby(keys).transform("min"))
    ref = ref.replace(np.inf, np.nan)
    runs["reference"] = sign * ref
    diff = sign * runs["objective"].astype(float) - ref
    runs["gap_to_ref"] = (diff / ref.abs().where(ref != 0, 1.0)).where(runs["ok"])
    runs["solved"] = runs["feasible"] & (runs["gap_to_ref"] <= tol)
    return runs


def performance_profile(runs: pd.DataFrame, metric: str = "solve_time_s"
                        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dolan-More profile of one problem's runs.

    ``r[p, s] = t[p, s] / min_s t[p, s]`` over the solved runs (``inf`` otherwise);
    returns the sorted breakpoints ``tau`` and, per solver, ``rho_s(tau)`` = the
    fraction of instances with ``r[p, s] <= tau``.
    """
    t = runs.pivot(index="instance", columns="solver", values=metric).astype(float)
    solved = runs.pivot(index="instance", columns="solver", values="solved")
    t = t.where(solved.fillna(False).astype(bool), np.inf)
    best = t.min(axis=1).replace(0, np.finfo(float).tiny)
    ratios = t.div(best, axis=0).replace(np.nan, np.inf)
    finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
    tau = np.unique(np.concatenate([[1.0], finite]))
    n = len(ratios)
    rho = {s: np.array([(ratios[s] <= x).sum() / n for x in tau]) for s in ratios.columns}
    return tau, rho


def shifted_geometric_mean(times, shift: float = SGM_SHIFT_S) -> float:
    """``exp(mean(log(t + shift))) - shift``."""
    t = np.asarray(times, dtype=float)
    return float(np.exp(np.mean(np.log(t + shift))) - shift) if t.size else float("nan")


def solver_summary(runs: pd.DataFrame, shift: float = SGM_SHIFT_S) -> pd.DataFrame:
    """Per solver: runs, ok, solved, failures, and the shifted geometric mean time
    with every unsolved run counted at its time limit."""
    rows = []
    for solver, g in runs.groupby("solver"):
        t = np.where(g["solved"], g["solve_time_s"].astype(float), g["timeout"].astype(float))
        rows.append({"solver": solver, "instances": len(g), "ok": int(g["ok"].sum()),
                     "solved": int(g["solved"].sum()),
                     "failed": int((~g["ok"]).sum()),
                     f"sgm_time_s (shift {shift:g} s)": shifted_geometric_mean(t, shift),
                     "median_gap_to_ref": float(g["gap_to_ref"].median())
                     if g["gap_to_ref"].notna().any() else np.nan})
    return pd.DataFrame(rows).set_index("solver")


def solved_by_tier(runs: pd.DataFrame) -> pd.DataFrame:
    """Solved counts, solver x tier ("solved/instances")."""
    solved = runs.pivot_table(index="solver", columns="tier", values="solved", aggfunc="sum")
    total = runs.pivot_table(index="solver", columns="tier", values="solved", aggfunc="count")
    return solved.astype(int).astype(str) + "/" + total.astype(int).astype(str)


def pivot(runs: pd.DataFrame, values: str) -> pd.DataFrame:
    """Instance x solver table of one column."""
    return runs.pivot(index="instance", columns="solver", values=values)


def best_known_updates(df: pd.DataFrame, library, rtol: float = 1e-9) -> dict:
    """Best known values the results improve, ``{(instance, problem): value}``.

    Only feasible runs (checker-verified, bilevel-feasible for P1) on the indexed
    instance (same content hash) count. The bound is the tightest bound any verified
    run reported; the status is ``optimal`` when a run proved it or the bound closes
    the gap to within ``rtol``.
    """
    from .library import improves
    hashes = {e.name: e for e in library.entries}
    updates = {}
    ok = df[df["status"].isin(OK_STATUSES)]
    for (problem, name), g in ok.groupby(["problem", "instance"]):
        entry = hashes.get(name)
        if entry is None or (g["instance_hash"] != entry.hash).any():
            continue
        sense = g["sense"].iloc[0]
        sign = -1.0 if sense == "max" else 1.0
        current = entry.best_known.get(problem)
        candidate = _candidate(g, sign, sense, current, rtol)
        if candidate is not None and improves(candidate, current, rtol):
            updates[(name, problem)] = candidate
    return updates


def _candidate(g: pd.DataFrame, sign: float, sense: str, current, rtol: float):
    feasible = g[g["feasible"].fillna(False).astype(bool) & g["objective"].notna()]
    bounds = [b for b in g["bound"].dropna()]
    if current and current.get("bound") is not None:
        bounds.append(current["bound"])
    bound = (sign * max(sign * b for b in bounds)) if bounds else None
    if feasible.empty:
        if current is None or bound is None:
            return None
        return {**current, "bound": bound}
    best = feasible.loc[(sign * feasible["objective"]).idxmin()]
    objective = float(best["objective"])
    proven = best["status"] == "optimal" or (
        bound is not None and sign * (objective - bound) <= rtol * abs(objective))
    return {"objective": objective, "sense": sense, "bound": bound,
            "status": "optimal" if proven else "feasible", "solver": best["solver"]}
