"""``wdmoe-opt solve --batch-size``: a long recording solved as a stream of batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import small_instance
from wdmoe_opt.cli import main
from wdmoe_opt.io import read_instance, read_solution_dict, write_instance
from wdmoe_opt.stream import MANIFEST, batches


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trace")
    inst = tmp / "t.npz"
    write_instance(small_instance(1, layers=3, tokens=40), inst)
    return inst, tmp


def test_batches_are_written_checked_and_resumed(trace, capsys):
    inst, tmp = trace
    out = tmp / "out"
    argv = ["solve", str(inst), "--selection", "alg1", "--batch-size", "16", "-o", str(out)]
    assert main(argv) == 0
    assert "3 batches, 40 tokens (3 solved now" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()[1:]]
    assert [r["tokens"] for r in rows] == [[0, 16], [16, 32], [32, 40]]
    for batch, row in zip(batches(inst, 16), rows, strict=True):
        part = batch.load()
        doc = read_solution_dict(out / row["file"])
        assert doc["instance"]["hash"] == part.content_hash
        single = tmp / f"{batch.key}.json"     # the same batch solved alone: the same point
        part_file = tmp / f"{batch.key}.inst.npz"
        write_instance(part, part_file)
        assert main(["solve", str(part_file), "--selection", "alg1", "-o", str(single)]) == 0
        assert main(["check", str(part_file), str(out / row["file"])]) == 0
        alone = read_solution_dict(single)
        assert doc["objective_s"] == alone["objective_s"]
    (out / rows[1]["file"]).unlink()             # as if stopped before this batch
    assert main(argv) == 0
    assert "(1 solved now, 2 from an earlier run)" in capsys.readouterr().out


@pytest.mark.parametrize("extra, flag", [
    (["--json"], "--json"), (["--brief"], "--brief"),
    (["--selection-from", "x.json"], "--selection-from"),
])
def test_flags_of_a_single_solve_are_refused(trace, capsys, extra, flag):
    inst, tmp = trace
    assert main(["solve", str(inst), "--batch-size", "8", "-o", str(tmp / "no"), *extra]) == 2
    assert f"error: {flag} cannot be used with --batch-size" in capsys.readouterr().err


def test_an_output_folder_is_required(trace, capsys):
    inst, _ = trace
    assert main(["solve", str(inst), "--batch-size", "8"]) == 2
    assert "--output is required" in capsys.readouterr().err


def test_a_whole_file_in_one_batch_is_the_plain_solve(trace):
    inst, tmp = trace
    assert main(["solve", str(inst), "--batch-size", "1000", "-o", str(tmp / "one")]) == 0
    assert main(["solve", str(inst), "-o", str(tmp / "plain.npz")]) == 0
    streamed = read_solution_dict(tmp / "one" / "t.npz")
    plain = read_solution_dict(tmp / "plain.npz")
    assert np.array_equal(streamed["selection"], plain["selection"])
    assert streamed["objective_s"] == plain["objective_s"]
    assert streamed["instance"]["hash"] == read_instance(inst).content_hash


def test_a_compact_solution_feeds_the_next_solve(trace, capsys):
    inst, tmp = trace
    for suffix in (".npz", ".json"):
        assert main(["solve", str(inst), "--selection", "alg1", "-o",
                     str(tmp / f"w{suffix}")]) == 0
    for suffix in (".npz", ".json"):
        assert main(["solve", str(inst), "--problem", "p3", "--selection-from",
                     str(tmp / f"w{suffix}"), "-o", str(tmp / f"p3{suffix}")]) == 0
        assert main(["check", str(inst), str(tmp / f"p3{suffix}")]) == 0
    a, b = (read_solution_dict(tmp / f"p3{s}") for s in (".npz", ".json"))
    assert a["objective_s"] == b["objective_s"] and a["bandwidth_hz"] == b["bandwidth_hz"]
