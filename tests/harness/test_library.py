"""The instance library: index, stored and regenerated instances, hashes, best knowns."""

from __future__ import annotations

import json

import pytest

from wdmoe_opt import InputError
from wdmoe_opt.harness.bench import DEFAULT_SOLVERS_DIR
from wdmoe_opt.harness.library import (
    CACHE_DIR,
    SCHEMA,
    TIERS,
    improves,
    materialize,
    read_library,
    with_best_known,
    write_library,
)
from wdmoe_opt.io import read_instance

from .conftest import make_library

REPO_INDEX = DEFAULT_SOLVERS_DIR.parent / "instances" / "index.json"


def test_regenerated_instance_is_cached_and_verified(library_root):
    lib = read_library(library_root)
    entry = lib.get("t-regen")
    assert entry.file is None
    path = materialize(lib, entry)
    assert path.parent.name == CACHE_DIR
    assert read_instance(path).content_hash == entry.hash


def test_tampered_stored_file_fails_the_hash_check(tmp_path):
    lib = make_library(tmp_path)
    entry = lib.get("t-stored")
    doc = json.loads((tmp_path / entry.file).read_text())
    doc["system"]["bs_power_w"] = 20.0
    (tmp_path / entry.file).write_text(json.dumps(doc))
    with pytest.raises(InputError, match="does not match the index hash"):
        materialize(lib, entry)


def test_folder_of_instance_files_is_a_library(library_root):
    lib = read_library(library_root / "tiny")
    assert [e.name for e in lib.entries] == ["t-stored"] and lib.path is None


def test_best_known_round_trip(tmp_path):
    lib = make_library(tmp_path)
    value = {"objective": 1.5, "sense": "min", "status": "feasible", "bound": None,
             "solver": "x"}
    write_library(with_best_known(lib, {("t-regen", "p3"): value}))
    again = read_library(tmp_path)
    assert again.get("t-regen").best_known["p3"]["objective"] == 1.5
    assert again.get("t-stored").best_known == {}


@pytest.mark.parametrize("candidate, improved", [
    ({"objective": 0.9, "status": "feasible"}, True),
    ({"objective": 1.1, "status": "optimal"}, False),
    ({"objective": 1.0, "status": "optimal"}, True),
    ({"objective": 1.0, "status": "feasible", "bound": 0.95}, True),
    ({"objective": 1.0, "status": "feasible", "bound": 0.8}, False),
])
def test_improves_for_minimization(candidate, improved):
    current = {"objective": 1.0, "sense": "min", "status": "feasible", "bound": 0.9}
    assert improves({"sense": "min", **candidate}, current) is improved


def test_improves_for_maximization():
    current = {"objective": 10.0, "sense": "max", "status": "feasible"}
    assert improves({"objective": 11.0, "sense": "max", "status": "feasible"}, current)
    assert not improves({"objective": 9.0, "sense": "max", "status": "optimal"}, current)


def test_repository_index_is_consistent():
    doc = json.loads(REPO_INDEX.read_text())
    assert doc["schema"] == SCHEMA
    lib = read_library(REPO_INDEX)
    assert {e.tier for e in lib.entries} == set(TIERS)
    stored = [e for e in lib.entries if e.file]
    assert stored and all(e.tier in ("tiny", "small", "fast-fading", "recorded") for e in stored)
    for entry in stored:
        assert read_instance(lib.root / entry.file).content_hash == entry.hash
    for entry in lib.entries:
        for value in entry.best_known.values():
            assert value["status"] in ("optimal", "feasible")
            assert value["sense"] in ("min", "max")


def test_recorded_tier_carries_similarity_tables():
    from wdmoe_opt import solve
    from wdmoe_opt.energy import EnergyProblem

    lib = read_library(REPO_INDEX)
    recorded = [e for e in lib.entries if e.tier == "recorded"]
    assert recorded
    for entry in recorded:
        inst = read_instance(lib.root / entry.file)
        sim = inst.similarity
        assert sim is not None and sim.source.startswith("measured")
        assert (sim.skip > 0).all() and (sim.sensitivity >= 1).all()
    one = read_instance(lib.root / min(recorded, key=lambda e: e.sizes["tokens"]).file)
    sol = solve(EnergyProblem(one, 1.0), "relax")
    assert sol.status in ("optimal", "feasible")


def test_added_similarity_block_keeps_best_known(tmp_path):
    pytest.importorskip("transformers")
    from wdmoe_opt.harness.library import Entry, make_recorded_entry

    rec = {"model_spec": "tiny-mixtral", "tokens": 8, "context": 8, "seed": 0}
    best = {"p3": {"objective": 1.0, "sense": "min", "status": "optimal"}}
    plain = make_recorded_entry(tmp_path, "a", "recorded", rec)
    prev = Entry(plain.name, plain.tier, plain.hash, plain.sizes, file=plain.file,
                 best_known=best)
    with_sim = make_recorded_entry(tmp_path, "a", "recorded", {**rec, "similarity": True}, prev)
    assert with_sim.hash != prev.hash and with_sim.best_known == best
    # another recording (other channels) is another instance: its values are dropped
    other = make_recorded_entry(tmp_path, "a", "recorded",
                                {**rec, "seed": 1, "similarity": True}, prev)
    assert other.best_known == {}
