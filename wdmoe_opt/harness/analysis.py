"""The numbers of a benchmark report: references, targets, profiles, summaries and best
known updates (no plotting, no HTML here).

Definitions (``docs/harness.md``):

* a run is **ok** when it finished with status ``optimal``, ``feasible`` or ``time_limit``
  and the checker accepted its point; it is **solved** when it is ok, feasible for its
  problem (bilevel-feasible for P1) and within ``tol`` of the reference value;
* the **reference** of an instance is the best of its index best known value and the
  best problem-feasible objective in the results; when there is neither, the best
  objective of any ok run (``reference_from`` says which: the best known value when a
  run improves on it by less than ``tol``);
* the **quality ratio** of a run is its value over the reference (latency ``T/T_ref``,
  eq. 13/19; WLR ``ref/WLR``, eq. 15), at least 1, ``inf`` for a failed run;
* a run **reaches the target** (:class:`Target`) when it is ok and its value is within
  a relative gap of the reference, or within ``tol`` of the best value a heuristic
  (a method the registry does not mark ``exact``) reached on the instance;
* repeats are merged: the median solve time and its relative range, the first
  repeat's point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError

OK_STATUSES = ("optimal", "feasible", "time_limit")
#: Relative tolerance on the gap to the reference for a run to count as solved.
SOLVED_TOL = 1e-6
#: Shift of the shifted geometric mean of times, in seconds. Most solves here take
#: milliseconds; 10 ms keeps those from dominating the mean, as Mittelmann's 10 s
#: shift does for MILP solvers whose times are in minutes.
SGM_SHIFT_S = 0.01
#: ``--target`` value meaning "the best value a heuristic reached on the instance".
BEST_HEURISTIC = "best-heuristic"
#: Confidence level of the intervals on mean gaps.
CI_LEVEL = 0.95
_KEYS = ["problem", "instance", "solver"]


@dataclass(frozen=True)
class Target:
    """What a run must reach to count in the time profile and the shifted geometric mean.

    ``relative`` is a relative gap to the reference (``0.01`` = within 1 %); ``None``
    means the best value any heuristic run reached on the instance (within ``tol``),
    or the reference where no heuristic ran.
    """

    relative: float | None = None

    def describe(self, tol: float) -> str:
        if self.relative is None:
            return (f"the best value a heuristic (a method not marked exact) reached on the "
                    f"instance, within {tol:g} (relative); the reference where no heuristic ran")
        return f"within {100 * self.relative:g} % of the reference"


def parse_target(text: str) -> Target:
    """``"1%"`` or ``"0.01"`` (relative gap to the reference) or ``"best-heuristic"``."""
    word = str(text).strip()
    if word == BEST_HEURISTIC:
        return Target()
    try:
        value = float(word[:-1]) / 100 if word.endswith("%") else float(word)
    except ValueError:
        value = float("nan")
    if not value >= 0 or not np.isfinite(value):
        raise InputError("--target", f"must be a relative gap (1%, 0.01) or {BEST_HEURISTIC}",
                         text)
    return Target(value)


def merge_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, instance, solver): the first repeat's point, the median
    solve time, ``repeats`` and ``time_spread`` = (max - min) / median over repeats.

    Rows of unavailable solvers (not runs at all) are left out."""
    df = df[df["status"] != "unavailable"].sort_values("repeat")
    groups = df.groupby(_KEYS)
    time = groups["solve_time_s"].agg(["median", "min", "max"])
    first = groups.first().reset_index()
    first["solve_time_s"] = time["median"].to_numpy()
    first["repeats"] = groups.size().to_numpy()
    spread = (time["max"] - time["min"]) / time["median"].where(time["median"] > 0)
    first["time_spread"] = spread.to_numpy()
    first["ok"] = first["status"].isin(OK_STATUSES)
    first["feasible"] = first["ok"] & first["feasible"].eq(True)
    return first


def _sign(runs: pd.DataFrame) -> np.ndarray:
    """-1 for maximized objectives (P2's WLR), +1 for minimized ones (latency)."""
    return np.where(runs["sense"] == "max", -1.0, 1.0)


def _per_instance_min(values: pd.Series, runs: pd.DataFrame) -> pd.Series:
    return values.groupby([runs["problem"], runs["instance"]]).transform("min")


def with_reference(runs: pd.DataFrame, tol: float = SOLVED_TOL) -> pd.DataFrame:
    """Add ``reference``, ``reference_from``, ``gap_to_ref``, ``quality_ratio`` and
    ``solved`` to merged runs."""
    runs = runs.copy()
    sign = _sign(runs)
    value = runs["objective"].astype(float)
    signed = sign * value
    known = _per_instance_min((sign * runs["best_known"].astype(float)).fillna(np.inf), runs)
    feasible = _per_instance_min(signed.where(runs["feasible"], np.inf), runs)
    seen = _per_instance_min(signed.where(runs["ok"], np.inf), runs)
    ref = np.fmin(known, feasible)
    ref = ref.where(np.isfinite(ref), seen).replace([np.inf, -np.inf], np.nan)
    runs["reference"] = sign * ref
    runs["reference_from"] = np.select(
        [np.isfinite(known) & (known <= feasible + tol * np.abs(known)), np.isfinite(feasible),
         ref.notna()],
        ["best known", "best feasible run", "best run"], "none")
    runs["gap_to_ref"] = ((signed - ref) / ref.abs().where(ref != 0, 1.0)).where(runs["ok"])
    ratio = np.where(sign < 0, runs["reference"] / value, value / runs["reference"])
    good = runs["ok"] & (value > 0) & (runs["reference"] > 0) & np.isfinite(ratio)
    runs["quality_ratio"] = np.where(good, np.maximum(ratio, 1.0), np.inf)
    runs["solved"] = runs["feasible"] & (runs["gap_to_ref"] <= tol)
    return runs


def is_exact(runs: pd.DataFrame) -> pd.Series:
    """Whether each run's method proves optimality (the registry's ``exact`` flag, as
    the worker recorded it; ``False`` where not recorded)."""
    if "exact" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["exact"].eq(True)


def with_target(runs: pd.DataFrame, target: Target, tol: float = SOLVED_TOL) -> pd.DataFrame:
    """Add ``target`` (the value to reach) and ``reached`` to runs with a reference."""
    runs = runs.copy()
    sign = _sign(runs)
    signed = sign * runs["objective"].astype(float)
    goal = sign * runs["reference"].astype(float)
    eps = tol if target.relative is None else target.relative
    if target.relative is None:
        heuristic = signed.where(runs["ok"] & ~is_exact(runs))
        goal = _per_instance_min(heuristic, runs).fillna(goal)
    runs["target"] = sign * goal
    runs["reached"] = runs["ok"] & (signed - goal <= eps * goal.abs())
    return runs


def analyse(df: pd.DataFrame, target: Target, tol: float = SOLVED_TOL) -> pd.DataFrame:
    """The merged runs of a results table with their reference and target columns."""
    return with_target(with_reference(merge_repeats(df), tol), target, tol)


def _profile(ratios: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Breakpoints ``tau`` (1 and every finite ratio) and, per column, the fraction of
    rows whose ratio is at most ``tau`` (NaN and ``inf`` never count)."""
    values = ratios.to_numpy(dtype=float)
    tau = np.unique(np.concatenate([[1.0], values[np.isfinite(values)]]))
    return tau, {s: (values[:, j, None] <= tau).mean(axis=0)
                 for j, s in enumerate(ratios.columns)}


def performance_profile(runs: pd.DataFrame, metric: str = "solve_time_s",
                        success: str = "solved"
                        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dolan-More profile of one problem's runs.

    ``r[p, s] = t[p, s] / min_s t[p, s]`` over the runs whose ``success`` column is
    true (``inf`` otherwise); returns the sorted breakpoints ``tau`` and, per solver,
    ``rho_s(tau)`` = the fraction of instances with ``r[p, s] <= tau``.
    """
    t = runs.pivot(index="instance", columns="solver", values=metric).astype(float)
    ok = runs.pivot(index="instance", columns="solver", values=success)
    t = t.where(ok.eq(True), np.inf)
    best = t.min(axis=1).replace(0, np.finfo(float).tiny)
    return _profile(t.div(best, axis=0))


def quality_profile(runs: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Profile of solution quality: per solver, the fraction of instances whose
    ``quality_ratio`` (value over the reference, at least 1) is at most ``tau``."""
    ratios = runs.pivot(index="instance", columns="solver", values="quality_ratio")
    return _profile(ratios.astype(float).fillna(np.inf))


def shifted_geometric_mean(times, shift: float = SGM_SHIFT_S) -> float:
    """``exp(mean(log(t + shift))) - shift``."""
    t = np.asarray(times, dtype=float)
    return float(np.exp(np.mean(np.log(t + shift))) - shift) if t.size else float("nan")


def mean_ci(values, level: float = CI_LEVEL) -> tuple[float, float]:
    """Mean of the finite values and the half width of its Student-t confidence interval
    (NaN with fewer than two values)."""
    from scipy import stats
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < 2:
        return float(x.mean()), float("nan")
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(half)


def _kind(exact: pd.Series) -> str:
    if exact.eq(True).any():
        return "exact"
    return "heuristic" if exact.eq(False).any() else "unknown"


def _stats(g: pd.DataFrame, shift: float) -> dict:
    """The numbers of one solver on some instances (merged runs with a target)."""
    to_target = np.where(g["reached"], g["solve_time_s"].astype(float),
                         g["timeout"].astype(float))
    gaps = g["gap_to_ref"].astype(float)
    mean, half = mean_ci(gaps)
    return {"kind": _kind(g["exact"] if "exact" in g else pd.Series(dtype=object)),
            "instances": len(g), "failed": int((~g["ok"]).sum()),
            "reached": int(g["reached"].sum()), "solved": int(g["solved"].sum()),
            "sgm_time_to_target_s": shifted_geometric_mean(to_target, shift),
            "median_time_s": float(g["solve_time_s"].where(g["ok"]).median()),
            "time_spread": float(g["time_spread"].median()),
            "repeats": int(g["repeats"].max()),
            "median_gap": float(gaps.median()), "mean_gap": mean, "mean_gap_ci": half,
            "worst_gap": float(gaps.max()),
            "median_retained_weight": float(g["retained_weight"].where(g["ok"]).astype(float)
                                            .median())}


def method_summary(runs: pd.DataFrame, shift: float = SGM_SHIFT_S,
                   tol: float = SOLVED_TOL) -> pd.DataFrame:
    """Per solver of one problem (:func:`_stats`), best first: most instances reaching
    the target, then the smallest mean gap (gaps within ``tol`` tie), then the shortest
    shifted geometric mean time to the target (unreached runs at their time limit)."""
    table = pd.DataFrame({s: _stats(g, shift) for s, g in runs.groupby("solver")}).T
    table.index.name = "solver"
    gap = table["mean_gap"].astype(float)
    order = pd.DataFrame({"reached": -table["reached"].astype(int),
                          "gap": gap.where(gap.abs() > tol, 0.0).fillna(np.inf),
                          "time": table["sgm_time_to_target_s"].astype(float)})
    return table.loc[order.sort_values(["reached", "gap", "time"]).index]


def tier_summary(runs: pd.DataFrame, shift: float = SGM_SHIFT_S) -> pd.DataFrame:
    """:func:`_stats` per (tier, solver), long format."""
    rows = [{"tier": tier, "solver": solver, **_stats(g, shift)}
            for (tier, solver), g in runs.groupby(["tier", "solver"])]
    return pd.DataFrame(rows)


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
