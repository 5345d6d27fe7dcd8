"""The numbers of a report: references, targets, profiles, intervals, summaries.

Expected values are worked out by hand from the small tables below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wdmoe_opt.errors import InputError
from wdmoe_opt.harness import analysis as an


def test_shifted_geometric_mean():
    assert an.shifted_geometric_mean([1.0, 1.0], shift=1.0) == pytest.approx(1.0)
    assert an.shifted_geometric_mean([0.0, 3.0], shift=1.0) == pytest.approx(1.0)
    assert np.isnan(an.shifted_geometric_mean([]))


def _runs(times: dict, solved: dict) -> pd.DataFrame:
    rows = [{"instance": i, "solver": s, "solve_time_s": t, "solved": solved[(i, s)]}
            for (i, s), t in times.items()]
    return pd.DataFrame(rows)


def test_performance_profile_ratios():
    times = {("a", "x"): 1.0, ("a", "y"): 2.0, ("b", "x"): 4.0, ("b", "y"): 1.0}
    solved = {k: True for k in times} | {("b", "x"): False}
    tau, rho = an.performance_profile(_runs(times, solved))
    assert list(tau) == [1.0, 2.0]
    assert list(rho["x"]) == [0.5, 0.5]   # best on a, fails b
    assert list(rho["y"]) == [0.5, 1.0]   # best on b, within 2x on a


def _results(rows: list[tuple]) -> pd.DataFrame:
    """Rows ``(instance, solver, repeat, status, objective, feasible, best, time, exact)``
    of a minimized problem, as the results table holds them."""
    cols = ("instance", "solver", "repeat", "status", "objective", "feasible", "best_known",
            "solve_time_s", "exact")
    df = pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])
    return df.assign(problem="p1/topk/uniform", sense="min", tier="tiny", timeout=10.0,
                     retained_weight=np.where(df["solver"] == "e", 0.7, 0.9))


#: a: best known 2.0; h1 and h2 heuristics, e exact and problem-feasible at 2.0.
#: b: no best known, no problem-feasible run: the best run (h2, 5.0) is the reference.
#: c: h2 failed.
TABLE = _results([
    ("a", "h1", 0, "feasible", 3.0, False, 2.0, 0.1, False),
    ("a", "h1", 1, "feasible", 3.0, False, 2.0, 0.3, False),
    ("a", "h1", 2, "feasible", 3.0, False, 2.0, 0.2, False),
    ("a", "h2", 0, "feasible", 2.1, False, 2.0, 0.4, False),
    ("a", "e", 0, "optimal", 2.0, True, 2.0, 1.0, True),
    ("b", "h1", 0, "feasible", 6.0, False, None, 0.1, False),
    ("b", "h2", 0, "feasible", 5.0, False, None, 0.2, False),
    ("c", "h1", 0, "feasible", 4.0, False, 4.0, 0.1, False),
    ("c", "h2", 0, "timeout", None, None, 4.0, None, None),
])


def _by(runs: pd.DataFrame, column: str) -> dict:
    return {(r.instance, r.solver): getattr(r, column) for r in runs.itertuples()}


def test_repeats_merge_to_median_time_and_spread():
    runs = an.merge_repeats(TABLE)
    h1 = runs[(runs["instance"] == "a") & (runs["solver"] == "h1")].iloc[0]
    assert h1["solve_time_s"] == pytest.approx(0.2) and h1["repeats"] == 3
    assert h1["time_spread"] == pytest.approx((0.3 - 0.1) / 0.2)


def test_reference_falls_back_to_the_best_run_and_says_so():
    runs = an.with_reference(an.merge_repeats(TABLE))
    ref, source = _by(runs, "reference"), _by(runs, "reference_from")
    assert ref[("a", "h1")] == 2.0 and source[("a", "h1")] == "best known"
    assert ref[("b", "h1")] == 5.0 and source[("b", "h1")] == "best run"
    gap, ratio = _by(runs, "gap_to_ref"), _by(runs, "quality_ratio")
    assert gap[("a", "h1")] == pytest.approx(0.5) and ratio[("a", "h1")] == pytest.approx(1.5)
    assert gap[("b", "h1")] == pytest.approx(0.2) and ratio[("b", "h2")] == 1.0
    assert np.isnan(gap[("c", "h2")]) and ratio[("c", "h2")] == np.inf
    solved = _by(runs, "solved")
    assert solved[("a", "e")] and not solved[("b", "h2")]  # h2 is not problem-feasible


def test_a_run_that_improves_the_best_known_sets_the_reference():
    table = TABLE.copy()
    e = table["solver"] == "e"
    for value, source in ((2.0 * (1 - 1e-9), "best known"), (1.9, "best feasible run")):
        table.loc[e, "objective"] = value
        runs = an.with_reference(an.merge_repeats(table))
        assert _by(runs, "reference")[("a", "h1")] == value
        assert _by(runs, "reference_from")[("a", "h1")] == source  # within tol: best known


def test_targets_relative_and_best_heuristic():
    base = an.with_reference(an.merge_repeats(TABLE))
    ten = _by(an.with_target(base, an.Target(0.1)), "reached")
    assert ten == {("a", "e"): True, ("a", "h1"): False, ("a", "h2"): True,
                   ("b", "h1"): False, ("b", "h2"): True, ("c", "h1"): True,
                   ("c", "h2"): False}
    best = an.with_target(base, an.Target())
    assert _by(best, "target")[("a", "h1")] == 2.1  # h2's value; e is exact
    assert {k for k, v in _by(best, "reached").items() if v} == {
        ("a", "e"), ("a", "h2"), ("b", "h2"), ("c", "h1")}


def test_quality_profile_counts_instances_within_tau():
    runs = an.with_reference(an.merge_repeats(TABLE))
    tau, rho = an.quality_profile(runs)
    # ratios: h1 1.5 (a), 1.2 (b), 1.0 (c); h2 1.05 (a), 1.0 (b), failed (c); e 1.0 (a)
    assert list(tau) == pytest.approx([1.0, 1.05, 1.2, 1.5])
    assert list(rho["h1"]) == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1.0])
    assert list(rho["h2"]) == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert list(rho["e"]) == pytest.approx([1 / 3] * 4)  # e ran on a only


@given(st.lists(st.floats(1.0, 5.0), min_size=1, max_size=12))
def test_quality_profile_is_a_nondecreasing_fraction(ratios):
    runs = pd.DataFrame({"instance": range(len(ratios)), "solver": "s",
                         "quality_ratio": ratios})
    tau, rho = an.quality_profile(runs)
    assert tau[0] == 1.0 and np.all(np.diff(rho["s"]) >= 0)
    assert rho["s"][-1] == 1.0


def test_mean_ci_is_the_student_t_interval():
    mean, half = an.mean_ci([1.0, 2.0, 3.0, np.nan])
    # t(0.975, 2 dof) = 4.3027 (tables); s = 1, n = 3
    assert mean == 2.0 and half == pytest.approx(4.3027 / np.sqrt(3), rel=1e-4)
    assert np.isnan(an.mean_ci([1.0])[1]) and np.isnan(an.mean_ci([])[0])


def test_method_summary_puts_the_best_first():
    runs = an.analyse(TABLE, an.Target(0.1))
    summary = an.method_summary(runs)
    # h2 reached 2; e and h1 reached 1 each, e with the smaller mean gap (0 < 0.23)
    assert list(summary.index) == ["h2", "e", "h1"]
    assert summary.loc["e", "kind"] == "exact" and summary.loc["h1", "kind"] == "heuristic"
    assert summary.loc["h2", "failed"] == 1 and summary.loc["h2", "reached"] == 2
    # h1 reached on c only (0.1 s); a and b count at the 10 s time limit
    sgm = np.exp(np.mean(np.log(np.array([10.0, 10.0, 0.1]) + 0.01))) - 0.01
    assert summary.loc["h1", "sgm_time_to_target_s"] == pytest.approx(sgm)
    assert summary.loc["h1", "mean_gap"] == pytest.approx((0.5 + 0.2 + 0.0) / 3)
    assert summary.loc["e", "median_retained_weight"] == 0.7


def test_parse_target():
    assert an.parse_target("1%") == an.Target(0.01)
    assert an.parse_target("0.05") == an.Target(0.05)
    assert an.parse_target("best-heuristic") == an.Target()
    for bad in ("fast", "-1%", "nan", "inf"):
        with pytest.raises(InputError, match="--target"):
            an.parse_target(bad)
