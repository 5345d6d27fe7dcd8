"""``wdmoe-opt solve --problem``: each problem on its own; no flag is ever ignored."""

from __future__ import annotations

import json

import pytest

from wdmoe_opt.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("solve")
    inst = tmp / "i.json"
    assert main(["generate", "wdmoe-sim", "--seed", "2", "--layers", "3", "--tokens", "12",
                 "--experts", "4", "--devices", "4", "-o", str(inst)]) == 0
    wdmoe = tmp / "wdmoe.json"
    assert main(["solve", str(inst), "--selection", "alg1", "--bandwidth", "exact",
                 "-o", str(wdmoe)]) == 0
    return inst, wdmoe, tmp


@pytest.mark.parametrize("argv, flag", [
    (["--joint", "exact", "--selection", "alg1"], "--selection"),
    (["--joint", "exact", "--bandwidth", "slsqp"], "'bandwidth' option of p1/exact"),
    (["--problem", "p1-floor", "--selection", "alg1"], "--selection"),
    (["--joint-option", "selection=alg1", "--selection", "topk"], "--joint-option"),
    (["--problem", "p2", "--bandwidth", "exact"], "--bandwidth"),
    (["--problem", "p2", "--lower-level", "coupled"], "--lower-level"),
    (["--problem", "p3", "--joint", "exact"], "--joint"),
    (["--problem", "p3", "--selection-from", "{wdmoe}", "--support", "all"], "--support"),
    (["--problem", "p3", "--selection-from", "{wdmoe}", "--selection", "alg1"], "--selection"),
    (["--problem", "p3", "--bandwidth", "uniform", "--time-limit", "3"], "--time-limit"),
    (["--problem", "p2", "--selection", "topk", "--selection-option", "x=1"], "'x' option"),
    (["--min-retained-weight", "0.5"], "--min-retained-weight"),
    (["--problem", "p1", "--bandwidth-from", "{wdmoe}"], "--bandwidth-from"),
])
def test_a_flag_nothing_uses_exits_2_naming_it(files, capsys, argv, flag):
    inst, wdmoe, _ = files
    argv = [a.format(wdmoe=wdmoe) for a in argv]
    assert main(["solve", str(inst), *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and err.count("\n") == 1 and "Traceback" not in err


def _solve_json(capsys, argv) -> dict:
    assert main(["solve", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_p3_alone_reports_its_own_status_and_bound(files, capsys, tmp_path):
    inst, wdmoe, _ = files
    doc = _solve_json(capsys, [inst, "--problem", "p3", "--bandwidth", "exact",
                               "--selection-from", wdmoe])
    p1 = json.loads(wdmoe.read_text())
    assert doc["problem"] == "p3" and doc["status"] == "optimal"
    assert doc["selection"] == p1["selection"]
    assert doc["lower_bound_s"] <= doc["objective_s"] and doc["tolerance"] == 1e-9
    assert doc["objective_s"] == pytest.approx(p1["objective_s"], rel=1e-9)
    out = tmp_path / "p3.json"
    out.write_text(json.dumps(doc))
    assert main(["check", str(inst), str(out)]) == 0


def test_p2_alone_reports_its_own_status_and_bound(files, capsys, tmp_path):
    inst, wdmoe, _ = files
    doc = _solve_json(capsys, [inst, "--problem", "p2", "--selection", "milp",
                               "--bandwidth-from", wdmoe])
    assert doc["problem"] == "p2" and doc["status"] == "optimal"
    assert doc["bandwidth_hz"] == json.loads(wdmoe.read_text())["bandwidth_hz"]
    assert doc["wlr_upper_bound"] >= doc["wlr_total"] * (1 - 1e-9)
    out = tmp_path / "p2.json"
    out.write_text(json.dumps(doc))
    assert main(["check", str(inst), str(out)]) == 0


def test_p1_floor_has_its_own_problem_key(files, capsys):
    inst, _, _ = files
    doc = _solve_json(capsys, [inst, "--problem", "p1-floor", "--min-retained-weight", "0.8"])
    assert doc["problem"] == "p1-floor" and doc["method"] == "p1-floor/greedy"
    assert doc["retained_weight"] >= 0.8 - 1e-12


def test_a_solution_of_another_instance_is_refused(files, capsys, tmp_path):
    inst, wdmoe, _ = files
    other = tmp_path / "o.json"
    assert main(["generate", "wdmoe-sim", "--seed", "3", "--layers", "3", "--tokens", "12",
                 "--experts", "4", "--devices", "4", "-o", str(other)]) == 0
    capsys.readouterr()
    assert main(["solve", str(other), "--problem", "p3", "--selection-from", str(wdmoe)]) == 2
    assert "--selection-from is a solution of another instance" in capsys.readouterr().err


def test_the_time_limit_reaches_the_selection_step(files, capsys):
    inst, _, _ = files
    doc = _solve_json(capsys, [inst, "--selection", "milp", "--time-limit", "9"])
    assert doc["solver"]["options"]["selection"]["options"]["time_limit"] == 9.0


@pytest.mark.parametrize("argv, message", [
    (["solve", "{inst}", "--time-limit", "nan"], "not a finite number"),
    (["solve", "{inst}", "--problem", "p1-floor", "--min-retained-weight", "inf"], "finite"),
    (["solve", "{inst}", "-o", "{inst}"], "would overwrite the instance file"),
    (["solve"], "Missing argument"),
    (["solve", "{inst}", "--problem", "p9"], "Invalid value for '--problem'"),
])
def test_usage_errors_are_one_line(files, capsys, argv, message):
    inst, _, _ = files
    assert main([a.format(inst=inst) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_p3_refuses_a_selection_that_leaves_a_token_without_expert(files):
    from wdmoe_opt import BandwidthProblem, InputError, Selection
    from wdmoe_opt.io import read_instance

    inst = read_instance(files[0])
    mask = Selection.topk(inst).mask.copy()
    mask[1, 2] = False
    with pytest.raises(InputError, match=r"selection\[1\]\[2\] keeps no expert"):
        BandwidthProblem(inst, Selection(mask))


@pytest.mark.parametrize("argv, message", [
    (["--distances=-1,2,3,4,5,6,7,8"], "distances_m[0] must be a positive number; got -1.0"),
    (["--popularity-skew", "nan"], "popularity_skew must be a finite number"),
    (["--set", "precision_bits=1e308"], "precision_bits times hidden_dim"),
    (["--tokens", "1000000000000"], "tokens make a gating array of"),
])
def test_generator_errors_name_the_parameter_the_user_wrote(tmp_path, capsys, argv, message):
    assert main(["generate", "wdmoe-sim", *argv, "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()


def test_a_placement_out_of_range_is_shown_as_written(files, capsys, tmp_path):
    doc = json.loads(files[0].read_text())
    doc["placement"] = [[0, 1, 2, 1e308]] * 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["info", str(bad)]) == 2
    assert "placement[0][3] names a missing device (devices are 0..3); got 1e+308" in (
        capsys.readouterr().err)
