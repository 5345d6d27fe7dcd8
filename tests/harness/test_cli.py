"""``wdmoe-opt bench`` and ``wdmoe-opt report`` end to end on a tiny run."""

from __future__ import annotations

import pandas as pd

from wdmoe_opt.cli import main

from .conftest import FIXTURES


def test_bench_then_report(library_root, tmp_path, capsys):
    args = ["bench", "--instances", str(library_root), "--solvers", "fix-p3-uniform",
            "--solvers-dir", str(FIXTURES), "--limit", "1", "--out", str(tmp_path / "runs")]
    assert main(args) == 0
    assert "1 feasible" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "runs" / "results.parquet")) == 1
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"),
                 "--no-update-index", "--target", "1%"]) == 0
    assert "within 1 % of the reference" in (tmp_path / "rep" / "index.html").read_text()


def test_bad_input_exits_2(library_root, tmp_path, capsys):
    args = ["bench", "--instances", str(library_root), "--solvers", "nope",
            "--solvers-dir", str(FIXTURES), "--out", str(tmp_path)]
    assert main(args) == 2
    assert "unknown solver" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r"),
                 "--target", "close"]) == 2
    assert "--target must be a relative gap" in capsys.readouterr().err
