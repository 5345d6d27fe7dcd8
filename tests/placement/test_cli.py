"""P5 on the command line: solve a trace, check it, solve another trace under it."""

import json

from wdmoe_opt.cli import main


def _generate(path, tokens):
    assert main(["generate", "wdmoe-sim", "--seed", "1", "--tokens", str(tokens), "--layers",
                 "2", "--devices", "8", "--experts", "4", "--placement", "round-robin",
                 "-o", str(path)]) == 0


def test_train_check_and_solve_under_the_placement(tmp_path, capsys):
    train, test = tmp_path / "train.json", tmp_path / "test.json"
    _generate(train, 32)
    _generate(test, 16)
    placed, sol = tmp_path / "placed.json", tmp_path / "sol.json"
    assert main(["solve", str(train), "--problem", "p5", "--placement-method", "local-search",
                 "--capacity-experts", "1", "--batch-tokens", "16", "--time-limit", "5",
                 "-o", str(placed)]) == 0
    doc = json.loads(placed.read_text())
    assert doc["problem"] == "p5" and len(doc["placement"]) == 2
    assert all(len(set(row)) == 4 for row in doc["placement"])         # capacity 1
    assert doc["solver"]["options"]["time_limit"] == 5
    assert main(["check", str(train), str(placed)]) == 0
    assert main(["solve", str(test), "--placement-from", str(placed), "-o", str(sol)]) == 0
    assert json.loads(sol.read_text())["placement"] == doc["placement"]
    assert main(["check", str(test), str(sol)]) == 0
    # a capacity violation is found by check (exit 1)
    doc["placement"][0] = [0, 0, 1, 2]
    placed.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["check", str(train), str(placed)]) == 1
    assert "hosts 2 experts" in capsys.readouterr().err


def test_p5_flags_are_refused_where_unused(tmp_path, capsys):
    train = tmp_path / "train.json"
    _generate(train, 16)
    assert main(["solve", str(train), "--capacity-experts", "2"]) == 2
    assert main(["solve", str(train), "--problem", "p5", "--support", "all"]) == 2
    assert main(["solve", str(train), "--problem", "p5", "--batch-tokens", "5"]) == 2
    assert main(["solve", str(train), "--problem", "p5", "--placement-method", "warp"]) == 2
    assert main(["solve", str(train), "--problem", "p5", "--placement-method", "greedy",
                 "--time-limit", "3"]) == 2          # greedy takes no time limit
    assert "--time-limit" in capsys.readouterr().err
