"""``solve --problem p4`` and ``check`` end to end: exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest

from wdmoe_opt.cli import main


@pytest.fixture
def sift(tmp_path):
    path = tmp_path / "sift.json"
    assert main(["generate", "wdmoe-sift", "--tokens", "4", "--layers", "3",
                 "-o", str(path)]) == 0
    return path


@pytest.mark.parametrize("method", ["exact", "relax", "topk", "substitute"])
def test_solve_and_check_round(sift, tmp_path, capsys, method):
    sol = tmp_path / "sol.json"
    assert main(["solve", str(sift), "--problem", "p4", "--selection", method,
                 "--deviation-budget", "1.5", "--deadline-s", "0.3", "-o", str(sol)]) == 0
    assert "energy" in capsys.readouterr().out
    doc = json.loads(sol.read_text())
    assert doc["problem"] == "p4" and doc["method"] == f"p4/{method}"
    assert len(doc["actions"]) == 3 and len(doc["deviation_budget"]) == 3
    assert doc["deadline_s"] == [0.3] * 3
    assert main(["check", str(sift), str(sol)]) == 0


def test_infeasible_deadline_gives_status_infeasible(sift, capsys):
    assert main(["solve", str(sift), "--problem", "p4", "--selection", "exact",
                 "--deviation-budget", "0", "--deadline-s", "1e-6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "infeasible"


def test_check_rejects_a_violation(sift, tmp_path, capsys):
    sol = tmp_path / "sol.json"
    main(["solve", str(sift), "--problem", "p4", "--selection", "exact",
          "--deviation-budget", "1.5", "--deadline-s", "0.3", "-o", str(sol)])
    doc = json.loads(sol.read_text())
    assert doc["status"] == "optimal" and max(doc["deviation_max"]) > 0
    doc["deviation_budget"] = [0.0] * 3          # now every skip breaks the claimed budget
    sol.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["check", str(sift), str(sol)]) != 0


@pytest.mark.parametrize("args, flag", [
    (["--problem", "p4"], "--deviation-budget"),
    (["--problem", "p4", "--deviation-budget", "1", "--support", "all"], "--support"),
    (["--problem", "p2", "--deviation-budget", "1"], "--deviation-budget"),
    (["--problem", "p4", "--deviation-budget", "1", "--selection", "nope"], "nope"),
])
def test_bad_flags_exit_2_naming_the_flag(sift, capsys, args, flag):
    assert main(["solve", str(sift), *args]) == 2
    assert flag in capsys.readouterr().err


def test_instance_without_similarity_is_refused(tmp_path, capsys):
    path = tmp_path / "sim.json"
    main(["generate", "wdmoe-sim", "--tokens", "2", "--layers", "2", "-o", str(path)])
    assert main(["solve", str(path), "--problem", "p4", "--deviation-budget", "1"]) == 2
    assert "similarity" in capsys.readouterr().err


def test_npz_solution_round_trip(sift, tmp_path):
    sol = tmp_path / "sol.npz"
    assert main(["solve", str(sift), "--problem", "p4", "--selection", "relax",
                 "--deviation-budget", "1.5", "-o", str(sol)]) == 0
    assert main(["check", str(sift), str(sol)]) == 0
