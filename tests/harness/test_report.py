"""Reports: the page, its figures and CSV files, sections in words, index updates."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from wdmoe_opt.harness.analysis import Target, best_known_updates
from wdmoe_opt.harness.library import read_library
from wdmoe_opt.harness.report import (
    fmt_ci,
    fmt_gap,
    fmt_time,
    problem_title,
    update_index,
    write_report,
)
from wdmoe_opt.harness.table import RESULTS_FILE, as_frame, read_results


def _links(page: str, attr: str) -> set[str]:
    return set(re.findall(rf'{attr}="([^"#:]+)"', page))


@pytest.fixture(scope="module")
def rendered(swept, library_root, tmp_path_factory):
    """The report of the fixture bench (one render for the tests below): (folder, Report)."""
    out, _ = swept
    folder = tmp_path_factory.mktemp("report")
    return folder, write_report(out, folder, library=read_library(library_root))


def test_every_figure_is_referenced_and_non_empty(rendered):
    """The report of a small bench: each PNG written is shown on the page and holds an
    image; each image and CSV link of the page points to a non-empty file."""
    folder, report = rendered
    page = report.page.read_text(encoding="utf-8")
    written = {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}
    assert written == {f.relative_to(folder).as_posix() for f in report.figures}
    assert written == _links(page, "src")
    for name in written:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (folder / name).stat().st_size > 1000
    csvs = _links(page, "href")
    assert csvs == {t.relative_to(folder).as_posix() for t in report.tables}
    assert all((folder / c).stat().st_size > 0 for c in csvs)
    # one time profile, quality profile and scatter per problem
    for problem in ("p1_topk_uniform", "p2_topk", "p3"):
        for kind in ("time-profile", "quality-profile", "time-vs-gap"):
            assert f"{problem}-{kind}.png" in written


def test_report_page_tables_and_updates(rendered):
    folder, report = rendered
    page = report.page.read_text(encoding="utf-8")
    assert "P3, bandwidth allocation for the router&#x27;s Top-K selection" in page
    assert "P1, Top-K support, uniform lower level" in page
    assert "fix-missing" in page  # listed under "Methods not run"
    assert "time limit" in page and "1 s per run" in page and "machine" in page
    summary = pd.read_csv(folder / "p3-methods.csv", index_col=0)
    assert summary.loc["fix-p3-uniform", "solved"] == 1
    assert summary.loc["fix-wrong", "solved"] == 0 and summary.loc["fix-slow", "failed"] == 1
    assert summary.index[0] == "fix-p3-uniform"  # the one that reached the target first
    assert summary.loc["fix-p3-uniform", "kind"] == "heuristic"
    assert set(report.updates) == {("t-stored", "p3"), ("t-stored", "p2/topk")}
    assert all(v["solver"].startswith("fix-") for v in report.updates.values())


def test_update_index_writes_the_best_known(swept, rendered, tmp_path):
    from .conftest import make_library
    out, _ = swept
    library = make_library(tmp_path)
    update_index(library, rendered[1].updates)
    best = read_library(tmp_path).get("t-stored").best_known
    assert best["p3"]["status"] == "feasible" and best["p3"]["objective"] > 0
    assert best_known_updates(read_results(out), read_library(tmp_path)) == {}


def _row(instance, tier, solver, repeat, objective, time, *, best=1.0, exact=False, gap=None):
    return {"instance": instance, "tier": tier, "solver": solver, "repeat": repeat,
            "problem": "p1/topk/uniform", "status": "feasible", "feasible": False,
            "exact": exact, "objective": objective, "sense": "min", "best_known": best,
            "gap": gap, "bound": None if gap is None else objective / (1 + gap),
            "solve_time_s": time, "timeout": 60.0,
            "versions": '{"numpy": "2.0", "wdmoe_opt": "0.1.0"}'}


def test_report_of_repeats_and_seeds_states_spreads_and_intervals(tmp_path):
    """Three repeats on four instances (seeds) of two tiers: time spreads over repeats,
    confidence intervals on mean gaps, tiers as rows, the target stated."""
    rows = []
    for i, (tier, slow) in enumerate([("tiny", 1.0), ("tiny", 1.5), ("small", 1.2),
                                      ("small", 1.1)]):
        for k, jitter in enumerate((1.0, 1.1, 0.9)):
            rows.append(_row(f"i{i}", tier, "fast", k, 1.5 + 0.1 * i, 1e-3 * jitter))
            rows.append(_row(f"i{i}", tier, "good", k, 1.0 + 0.002 * i, 2e-3 * slow * jitter,
                             exact=True, gap=0.0))
    folder = tmp_path / "runs"
    folder.mkdir()
    as_frame(rows).to_parquet(folder / RESULTS_FILE, index=False)
    report = write_report(folder, tmp_path / "rep", target=Target(0.01))
    page = report.page.read_text(encoding="utf-8")
    assert "within 1 % of the reference" in page
    assert "over 3 repeats" in page and "95 % CI" in page
    summary = pd.read_csv(tmp_path / "rep" / "p1_topk_uniform-methods.csv", index_col=0)
    assert list(summary.index) == ["good", "fast"]
    assert summary.loc["good", "reached"] == 4 and summary.loc["fast", "reached"] == 0
    assert abs(summary.loc["fast", "time_spread"] - 0.2) < 1e-9
    tiers = pd.read_csv(tmp_path / "rep" / "p1_topk_uniform-tiers.csv", index_col=[0, 1])
    assert tiers.loc[("tiny", "fast"), "mean_gap"] == 0.55
    # two instances per tier: the 95 % interval is 12.706 standard errors wide each side
    assert abs(tiers.loc[("small", "fast"), "mean_gap_ci"] - 12.706 * 0.05) < 1e-3
    assert "<th>tier</th>" in page and "<th>tiny</th>" in page


def test_a_bench_where_every_run_failed_still_renders(tmp_path):
    rows = [{"instance": i, "tier": "tiny", "solver": s, "repeat": 0, "problem": p,
             "status": "timeout", "sense": "min", "timeout": 1.0, "error": "killed"}
            for i in ("a", "b") for s, p in (("x", "p3"), ("y", "p3"), ("z", "p1/all/coupled"))]
    folder = tmp_path / "runs"
    folder.mkdir()
    as_frame(rows).to_parquet(folder / RESULTS_FILE, index=False)
    report = write_report(folder, tmp_path / "rep")
    assert len(report.figures) == 2 * (3 + 2)
    assert all(f.stat().st_size > 1000 for f in report.figures)
    summary = pd.read_csv(tmp_path / "rep" / "p3-methods.csv", index_col=0)
    assert summary["failed"].tolist() == [2, 2] and summary["reached"].tolist() == [0, 0]
    assert "P1, any-expert support, coupled lower level" in report.page.read_text()


def test_titles_and_rounding():
    assert problem_title("p1/topk/uniform") == "P1, Top-K support, uniform lower level"
    assert problem_title("p2/all") == "P2, any-expert support, total WLR at the uniform split"
    assert problem_title("p9/x") == "p9/x"
    assert fmt_gap(0.123456) == "12.3 %" and fmt_gap(3e-9) == "0 %"
    assert fmt_gap(12.5) == "1250 %" and fmt_gap(float("nan")) == "-"
    assert fmt_ci(0.5, 0.04) == "50 % ± 4" and fmt_ci(0.5, float("nan")) == "50 %"
    assert fmt_time(5.2e-4) == "0.52 ms" and fmt_time(61.0) == "61 s"
