"""Reports: profiles, shifted geometric means, tables, figures, HTML, index updates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wdmoe_opt.harness import analysis as an
from wdmoe_opt.harness.library import read_library
from wdmoe_opt.harness.report import update_index, write_report


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


def test_report_writes_page_figures_tables_and_updates(swept, tmp_path, library_root):
    out, _ = swept
    library = read_library(library_root)
    report = write_report(out, tmp_path, library=library)
    page = report.page.read_text()
    assert "performance profile" in page and "fix-p3-uniform" in page
    assert "fix-missing" in page  # listed under "Solvers not run"
    assert all(f.exists() and f.suffix == ".png" for f in report.figures)
    assert (tmp_path / "p3-profile.png").exists()
    summary = pd.read_csv(tmp_path / "p3-solvers.csv", index_col=0)
    assert summary.loc["fix-p3-uniform", "solved"] == 1
    assert summary.loc["fix-wrong", "solved"] == 0 and summary.loc["fix-slow", "failed"] == 1
    assert set(report.updates) == {("t-stored", "p3"), ("t-stored", "p2/topk")}
    assert all(v["solver"].startswith("fix-") for v in report.updates.values())


def test_update_index_writes_the_best_known(swept, tmp_path):
    from .conftest import make_library
    out, _ = swept
    library = make_library(tmp_path)
    report = write_report(out, tmp_path / "r", library=library)
    update_index(library, report.updates)
    best = read_library(tmp_path).get("t-stored").best_known
    assert best["p3"]["status"] == "feasible" and best["p3"]["objective"] > 0
    again = write_report(out, tmp_path / "r2", library=read_library(tmp_path))
    assert again.updates == {}
