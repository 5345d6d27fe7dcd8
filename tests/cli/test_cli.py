"""The CLI end to end: exit codes, one-line errors, JSON output."""

import json

import numpy as np
import pytest

from wdmoe_opt.cli import main


@pytest.fixture
def sim(tmp_path):
    path = tmp_path / "sim.json"
    assert main(["generate", "wdmoe-sim", "--seed", "1", "--tokens", "32", "--layers", "3",
                 "-o", str(path)]) == 0
    return path


def test_generate_solve_check_round(sim, tmp_path, capsys):
    sol = tmp_path / "sol.json"
    assert main(["solve", str(sim), "--selection", "topk", "--bandwidth", "uniform",
                 "-o", str(sol)]) == 0
    out = capsys.readouterr().out
    assert "latency per batch" in out and "slowest device" in out
    assert main(["check", str(sim), str(sol)]) == 0
    assert "OK" in capsys.readouterr().out


def test_solve_json_prints_the_solution_document(sim, capsys):
    assert main(["solve", str(sim), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "wdmoe-solution/1"
    assert len(doc["layer_latency_s"]) == 3
    assert doc["method"] == "p1/sequential"


def test_check_fails_on_a_tampered_solution(sim, tmp_path, capsys):
    sol = tmp_path / "sol.json"
    main(["solve", str(sim), "-o", str(sol)])
    doc = json.loads(sol.read_text())
    doc["objective_s"] /= 2
    sol.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["check", str(sim), str(sol)]) == 1
    assert "INVALID: objective_s" in capsys.readouterr().err


def test_generate_npz_and_info(tmp_path, capsys):
    path = tmp_path / "tb.npz"
    assert main(["generate", "wdmoe-testbed", "--tokens", "16", "-o", str(path)]) == 0
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shared placement" in out and "per device" in out
    assert main(["info", "--methods"]) == 0
    assert "p3/uniform" in capsys.readouterr().out


def test_generate_from_recorded_gating_and_channels(tmp_path):
    logits = np.random.default_rng(0).normal(size=(2, 8, 4))
    np.save(tmp_path / "logits.npy", logits)
    (tmp_path / "ch.csv").write_text("device,gain_down,gain_up\n" + "".join(
        f"{k},{1e-9 * (k + 1)},{2e-9 * (k + 1)}\n" for k in range(4)))
    out = tmp_path / "rec.json"
    assert main(["generate", "wdmoe-sim", "--gating-from", str(tmp_path / "logits.npy"),
                 "--channels-from", str(tmp_path / "ch.csv"), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert np.asarray(doc["gating"]["weights"]).shape == (2, 8, 4)
    assert doc["system"]["devices"][3]["gain_up"] == pytest.approx(8e-9)


@pytest.mark.parametrize("argv, message", [
    (["solve", "missing.json"], "does not exist"),
    (["solve", "{sim}", "--selection", "magic"], "--selection is not a p2 method; known: "),
    (["solve", "{sim}", "--joint", "nope"], "--joint is not a p1 method"),
    (["solve", "{sim}", "--bandwidth-option", "x"], "NAME=VALUE"),
    (["generate", "wdmoe-sim", "--tokens", "0", "-o", "{tmp}/x.json"], "tokens"),
    (["generate", "wdmoe-sim", "--set", "colour=3", "-o", "{tmp}/x.json"],
     "not a generator parameter"),
    (["generate", "wdmoe-sim", "--distances", "1,x", "-o", "{tmp}/x.json"], "--distances"),
    (["solve", "{sim}", "--support", "some"], "Invalid value for '--support'"),
])
def test_bad_input_exits_2_with_one_line(sim, tmp_path, capsys, argv, message):
    argv = [a.format(sim=sim, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_a_bad_instance_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "wdmoe-instance/0"}))
    assert main(["info", str(bad)]) == 2
    assert "schema must be 'wdmoe-instance/1'" in capsys.readouterr().err


def test_exponential_methods_refuse_paper_scale_with_one_line(tmp_path, capsys):
    path = tmp_path / "paper.json"
    main(["generate", "wdmoe-sim", "--tokens", "64", "-o", str(path)])
    for argv in (["--joint", "exact"], ["--selection", "brute-force"]):
        capsys.readouterr()
        assert main(["solve", str(path), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is too large for" in err and "10^" in err


def test_time_limit_must_be_positive(sim, capsys):
    assert main(["solve", str(sim), "--time-limit", "-1"]) == 2
    assert "--time-limit" in capsys.readouterr().err
