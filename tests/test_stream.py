"""Streams of batches: lazy batches, results written as they go, resume after a stop."""

import json

import numpy as np
import pytest

from tests.conftest import small_instance
from wdmoe_opt import InputError, JointProblem, Selection, solve
from wdmoe_opt.io import (
    instance_to_dict,
    read_instance,
    read_solution_dict,
    selection_mask,
    solution_to_dict,
    write_instance,
)
from wdmoe_opt.stream import MANIFEST, batches, count_batches, solve_stream

LABEL = "p1/sequential topk+exact"


def _solve(instance):
    return solve(JointProblem(instance), "sequential", selection="alg1", bandwidth="exact")


def _doc(solution):
    """The solution document without the run's timing."""
    doc = json.loads(json.dumps(solution_to_dict(solution)))
    del doc["solve_time_s"]
    return doc


def _file_doc(path):
    doc = read_solution_dict(path)
    doc.pop("solve_time_s")
    if isinstance(doc["selection"], np.ndarray):
        doc["selection"] = Selection(doc["selection"]).kept_lists()
        doc.pop("selection_shape")
    return doc


@pytest.fixture
def long_file(tmp_path):
    inst = small_instance(3, tokens=50)
    write_instance(inst, tmp_path / "trace.npz")
    return inst, tmp_path / "trace.npz"


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_one_batch_that_fits_equals_the_whole_batch_run(tmp_path, long_file, suffix):
    inst, path = long_file
    report = solve_stream(path, 64, _solve, tmp_path / "out", label=LABEL, suffix=suffix)
    assert report.solved_now == 1 and report.tokens == 50
    got = read_solution_dict(tmp_path / "out" / f"trace{suffix}")
    want = _solve(inst)
    assert np.array_equal(selection_mask(got["selection"], inst.gating_weights.shape),
                          want.selection.mask)
    assert got["objective_s"] == want.objective_s
    assert got["instance"]["hash"] == inst.content_hash
    assert report.total_latency_s == want.objective_s


def test_each_batch_equals_solving_its_slice(tmp_path, long_file):
    inst, path = long_file
    report = solve_stream(path, 16, _solve, tmp_path / "out", label=LABEL)
    assert [r["tokens"] for r in report.rows] == [[0, 16], [16, 32], [32, 48], [48, 50]]
    for row in report.rows:
        j0, j1 = row["tokens"]
        part = inst.replace(gating_weights=inst.gating_weights[:, j0:j1])
        want = _solve(part)
        got = read_solution_dict(tmp_path / "out" / row["file"])
        assert got["instance"]["hash"] == part.content_hash
        assert np.array_equal(got["selection"], want.selection.mask)
        assert got["objective_s"] == want.objective_s
    assert report.total_latency_s == pytest.approx(
        sum(r["objective_s"] for r in report.rows), rel=1e-12)


def test_a_per_token_method_streamed_equals_the_whole_batch_selection(tmp_path, long_file):
    inst, path = long_file

    def topk(instance):
        return solve(JointProblem(instance), "sequential", selection="topk",
                     bandwidth="uniform")
    report = solve_stream(path, 7, topk, tmp_path / "out", label="topk")
    parts = [read_solution_dict(tmp_path / "out" / r["file"])["selection"]
             for r in report.rows]
    assert np.array_equal(np.concatenate(parts, axis=1), topk(inst).selection.mask)


def test_batches_are_read_lazily_from_the_file(long_file, monkeypatch):
    inst, path = long_file
    import wdmoe_opt.stream as stream
    monkeypatch.setattr(stream, "read_instance", None)    # the .npz is never read whole
    parts = list(batches(path, 20))
    assert [(b.start, b.stop) for b in parts] == [(0, 20), (20, 40), (40, 50)]
    second = parts[1].load()
    assert np.array_equal(second.gating_weights, inst.gating_weights[:, 20:40])
    assert second.name == f"{inst.name}[20:40]"
    assert second.provenance["batch_of"] == inst.name


def test_a_folder_of_json_and_npz_and_compressed_files(tmp_path):
    src = tmp_path / "trace"
    src.mkdir()
    insts = [small_instance(s, tokens=10) for s in range(3)]
    (src / "a.json").write_text(json.dumps(instance_to_dict(insts[0])))
    write_instance(insts[1], src / "b.npz")
    doc = instance_to_dict(insts[2], include_weights=False)    # an older, compressed file
    np.savez_compressed(src / "c.npz", header=np.frombuffer(json.dumps(doc).encode(), np.uint8),
                        gating_weights=insts[2].gating_weights)
    assert count_batches(src, 4) == 9
    report = solve_stream(src, 100, _solve, tmp_path / "out", label=LABEL)
    for row, inst in zip(report.rows, insts, strict=True):
        assert _file_doc(tmp_path / "out" / row["file"]) == _doc(_solve(inst))


def test_resume_after_an_interruption_solves_only_the_rest(tmp_path, long_file):
    inst, path = long_file
    calls = []

    def interrupted(instance):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(instance.name)
        return _solve(instance)

    with pytest.raises(KeyboardInterrupt):
        solve_stream(path, 16, interrupted, tmp_path / "out", label=LABEL)
    manifest = tmp_path / "out" / MANIFEST
    with open(manifest, "a") as f:                     # a line cut short by the stop
        f.write('{"key": "trace.t0000000')
    resumed = []

    def rest(instance):
        resumed.append(instance.name)
        return _solve(instance)
    report = solve_stream(path, 16, rest, tmp_path / "out", label=LABEL)
    assert report.solved_now == 2 and len(resumed) == 2
    assert not set(resumed) & set(calls)
    fresh = solve_stream(path, 16, _solve, tmp_path / "fresh", label=LABEL)
    for a, b in zip(report.rows, fresh.rows, strict=True):
        assert _file_doc(tmp_path / "out" / a["file"]) == _file_doc(tmp_path / "fresh" / b["file"])


def test_a_folder_of_another_run_is_refused(tmp_path, long_file):
    _, path = long_file
    solve_stream(path, 16, _solve, tmp_path / "out", label=LABEL)
    with pytest.raises(InputError, match="batch_size"):
        solve_stream(path, 8, _solve, tmp_path / "out", label=LABEL)
    with pytest.raises(InputError, match="label"):
        solve_stream(path, 16, _solve, tmp_path / "out", label="other")


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_batch_size(long_file, size):
    with pytest.raises(InputError, match="batch-size"):
        list(batches(long_file[1], size))


def test_the_output_folder_may_not_be_the_source(tmp_path, long_file):
    with pytest.raises(InputError, match="source folder"):
        solve_stream(tmp_path, 16, _solve, tmp_path, label=LABEL)


def test_a_read_instance_of_a_batch_file_matches(tmp_path, long_file):
    inst, path = long_file
    part = next(iter(batches(path, 64))).load()
    assert part.content_hash == read_instance(path).content_hash == inst.content_hash
