"""The sweep: isolation (errors, crashes, time-outs, memory), verification, resume."""

from __future__ import annotations

import pandas as pd
import pytest

from wdmoe_opt.harness.bench import read_meta, run_bench
from wdmoe_opt.harness.runner import gap_to_best
from wdmoe_opt.harness.table import RESULTS_FILE, ResultsTable

from .conftest import EXPECTED, fixture_sweep


def test_every_run_ends_with_its_expected_status(swept):
    _, table = swept
    got = {r["solver"]: r["status"] for r in table.rows.values()}
    assert got == EXPECTED


def test_rows_carry_objective_time_memory_and_versions(swept):
    _, table = swept
    row = next(r for r in table.rows.values() if r["solver"] == "fix-p3-uniform")
    assert row["objective"] == row["objective_s"] > 0
    assert row["sense"] == "min" and row["problem"] == "p3"
    assert row["solve_time_s"] > 0 and row["peak_mem_mb"] > 0
    assert '"wdmoe_opt"' in row["versions"] and row["feasible"]
    assert row["exact"] is False  # p3/uniform is a heuristic in the registry
    p2 = next(r for r in table.rows.values() if r["solver"] == "fix-p2-topk")
    assert p2["sense"] == "max" and p2["objective"] == p2["wlr_total"]


def test_failures_are_recorded_with_their_reason(swept):
    _, table = swept
    rows = {r["solver"]: r for r in table.rows.values()}
    assert "deliberate failure" in rows["fix-raise"]["error"]
    assert "exit code 3" in rows["fix-die"]["error"]
    assert "killed after 1 s" in rows["fix-slow"]["error"]
    assert "p2/not-registered" in rows["fix-missing"]["error"]
    assert "objective_s" in rows["fix-wrong"]["violations"]
    assert not rows["fix-wrong"]["feasible"]


def test_settings_and_machine_are_recorded(swept):
    out, _ = swept
    meta = read_meta(out)
    assert meta["timeout"] == 1.0 and meta["repeat"] == 1
    assert meta["machine"]["cores"] >= 1 and meta["machine"]["cpu"]


def test_table_on_disk_matches_and_solutions_are_written(swept):
    out, table = swept
    df = pd.read_parquet(out / RESULTS_FILE)
    assert len(df) == len(EXPECTED) == len(table.rows)
    path = df.loc[df["solver"] == "fix-p3-uniform", "solution_path"].iloc[0]
    assert path and (out / "solutions").is_dir()


def test_rerun_skips_finished_runs_and_retries_unavailable(library_root, swept):
    out, _ = swept
    events = []
    table = run_bench(fixture_sweep(library_root, out, list(EXPECTED), limit=1),
                      lambda kind, payload: events.append((kind, payload)))
    assert ("total", 2) in events  # only fix-missing and fix-broken run again
    assert len(table.rows) == len(EXPECTED)


def test_interrupted_sweep_keeps_finished_rows_and_resumes(library_root, tmp_path):
    solvers = ["fix-p3-uniform", "fix-p2-topk"]

    def stop_after_first(kind, payload):
        if kind == "row":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(fixture_sweep(library_root, tmp_path, solvers, jobs=1), stop_after_first)
    assert len(ResultsTable(tmp_path).rows) == 1
    table = run_bench(fixture_sweep(library_root, tmp_path, solvers, repeat=2))
    assert sorted((r["instance"], r["solver"], r["repeat"]) for r in table.rows.values()) == \
        sorted((i, s, k) for i in ("t-stored", "t-regen") for s in solvers for k in (0, 1))


def test_gap_to_best_is_positive_when_worse():
    assert gap_to_best(11.0, 10.0, "min") == pytest.approx(0.1)
    assert gap_to_best(9.0, 10.0, "max") == pytest.approx(0.1)
    assert gap_to_best(None, 10.0, "min") is None
