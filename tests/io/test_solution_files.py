"""Both ``wdmoe-solution/1`` forms (JSON lists, ``.npz`` bits): lossless, same verdict."""

import json
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import small_instance
from wdmoe_opt import InputError, Selection, Solution
from wdmoe_opt.check import check_solution
from wdmoe_opt.io import read_solution_dict, selection_mask, solution_to_dict, write_solution
from wdmoe_opt.model import latency as lat
from wdmoe_opt.model.selection import mask_from_lists

SHAPES = [(1, 1, 1), (2, 5, 3), (3, 4, 8), (2, 3, 9), (1, 7, 17)]


@cache
def _instance(I, J, E):
    return small_instance(0, layers=I, tokens=J, experts=E, devices=E, top_k=1)


@st.composite
def masks(draw):
    """A random ``[I, J, E]`` mask where some tokens keep nothing and some keep all."""
    I, J, E = draw(st.sampled_from(SHAPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    m = rng.random((I, J, E)) < draw(st.sampled_from([0.1, 0.5, 0.9]))
    kind = rng.integers(0, 3, size=(I, J))      # 0: random, 1: empty, 2: all kept
    m[kind == 1] = False
    m[kind == 2] = True
    return m


def _reference_lists(m):
    """Kept ids written out token by token (independent of the package)."""
    return [[[e for e in range(m.shape[2]) if m[i, j, e]] for j in range(m.shape[1])]
            for i in range(m.shape[0])]


def _solution(mask):
    inst = _instance(*mask.shape)
    return inst, Solution.evaluate(inst, Selection(mask), lat.uniform_bandwidth_hz(inst),
                                   problem="p2", method="test", extra={"support": "all"})


@settings(max_examples=60, deadline=None)
@given(m=masks())
def test_kept_lists_and_back_are_exact(m):
    lists = Selection(m).kept_lists()
    assert lists == _reference_lists(m)
    assert np.array_equal(mask_from_lists(lists, m.shape), m)


@settings(max_examples=25, deadline=None)
@given(m=masks(), suffix=st.sampled_from([".json", ".npz"]))
def test_file_round_trip_is_lossless(tmp_path_factory, m, suffix):
    inst, sol = _solution(m)
    path = tmp_path_factory.mktemp("sol") / f"sol{suffix}"
    write_solution(sol, path)
    doc = read_solution_dict(path)
    assert np.array_equal(selection_mask(doc["selection"], m.shape), m)
    reference = json.loads(json.dumps(solution_to_dict(sol)))
    for key, value in reference.items():
        if key != "selection":
            assert doc[key] == value, key


@settings(max_examples=25, deadline=None)
@given(m=masks(), tamper=st.sampled_from([None, "objective_s", "wlr_total", "hash"]))
def test_check_gives_the_same_verdict_on_both_forms(tmp_path_factory, m, tamper):
    inst, sol = _solution(m)
    folder = tmp_path_factory.mktemp("verdict")
    verdicts = []
    for suffix in (".json", ".npz"):
        write_solution(sol, folder / f"sol{suffix}")
        doc = read_solution_dict(folder / f"sol{suffix}")
        if tamper == "hash":
            doc["instance"]["hash"] = "sha256:0"
        elif tamper:
            doc[tamper] = doc[tamper] * 1.01 + 1.0
        verdicts.append(check_solution(inst, doc))
    assert verdicts[0] == verdicts[1]
    empty = not m.any(axis=2).all()
    assert bool(verdicts[0]) == (empty or tamper is not None)


def test_the_npz_form_is_bits_with_the_json_header(tmp_path):
    m = np.zeros((2, 3, 9), dtype=bool)
    m[0, 0, [0, 8]] = True
    m[1, 2, :] = True
    _, sol = _solution(m)
    write_solution(sol, tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        bits = z["selection"]
        header = json.loads(z["header"].tobytes())
    assert bits.dtype == np.uint8 and bits.shape == (2, 3, 2)
    assert bits[0, 0].tolist() == [1, 1]            # expert 0 in bit 0, expert 8 in byte 1
    assert bits[1, 2].tolist() == [255, 1]
    assert header["selection"] == "npz:selection"
    assert header["selection_shape"] == [2, 3, 9]


def test_kept_lists_are_fresh_lists():
    m = np.ones((1, 3, 2), dtype=bool)
    lists = Selection(m).kept_lists()
    lists[0][0].append(99)
    assert lists[0][1] == [0, 1]


@pytest.mark.parametrize("lists, expected", [
    ([[[0, 0]]], "repeats"),
    ([[[4]]], "outside 0..3"),
    ([[[-1]]], "outside 0..3"),
    ([[[2**70]]], "outside 0..3"),
    ([[[True]]], "integer expert ids"),
    ([[[1.0]]], "integer expert ids"),
    ([[5]], "list of expert ids"),
    ([["ab"]], "list of expert ids"),
    ([[[0], [1]]], "one entry per token"),
    ([], "one entry per layer"),
])
def test_malformed_lists_name_the_token(lists, expected):
    with pytest.raises(InputError, match=expected):
        mask_from_lists(lists, (1, 1, 4))


def test_malformed_npz_selection_is_refused(tmp_path):
    _, sol = _solution(np.ones((2, 5, 3), dtype=bool))
    write_solution(sol, tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        header = json.loads(z["header"].tobytes())
    header["selection_shape"] = [2, 6, 3]
    np.savez(tmp_path / "bad.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8),
             selection=np.zeros((2, 5, 1), np.uint8))
    with pytest.raises(InputError, match="selection"):
        read_solution_dict(tmp_path / "bad.npz")


def test_check_names_a_mask_of_the_wrong_shape():
    inst, sol = _solution(np.ones((2, 5, 3), dtype=bool))
    doc = solution_to_dict(sol)
    doc["selection"] = np.ones((2, 4, 3), dtype=bool)
    problems = check_solution(inst, doc)
    assert problems and "selection" in problems[0]
