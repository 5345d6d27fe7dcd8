"""The benchmark worker: an untimed warm-up before the timed solve."""

from __future__ import annotations

from tests.conftest import small_instance
from wdmoe_opt import BandwidthProblem, Selection, get_method
from wdmoe_opt.harness import solvers, worker
from wdmoe_opt.io import write_instance


class _Spy:
    """A solver spec that records the instances it is asked to solve."""

    problem, support = "p3", "topk"

    def __init__(self):
        self.tokens = []

    def available(self):
        return True, ""

    def solve(self, instance, time_limit=None):
        self.tokens.append(instance.n_tokens)
        return get_method("p3/uniform")(BandwidthProblem(instance, Selection.topk(instance)))


def test_the_solver_warms_up_on_a_tiny_instance_before_the_timed_solve(tmp_path, monkeypatch):
    inst = small_instance(tokens=16)
    path = tmp_path / "inst.json"
    write_instance(inst, path)
    spy = _Spy()
    monkeypatch.setattr(solvers, "load_solver_file", lambda _path: spy)
    result = worker.run_task({"instance_path": str(path), "solver_path": "spy.py"})
    assert spy.tokens == [4, 16]            # the warm-up first, then the instance
    assert result["status"] == "feasible" and result["violations"] == []


class _WrongProblem(_Spy):
    """Claims the P3 benchmark but returns another selection than the router's Top-K."""

    def solve(self, instance, time_limit=None):
        mask = Selection.topk(instance).mask.copy()
        mask[0, 0, mask[0, 0].argmax()] = False          # keep one expert of token 0
        return get_method("p3/uniform")(BandwidthProblem(instance, Selection(mask)))


def test_the_benchmark_problem_not_the_document_decides_what_is_checked(tmp_path, monkeypatch):
    inst = small_instance(tokens=16)
    path = tmp_path / "inst.json"
    write_instance(inst, path)
    monkeypatch.setattr(solvers, "load_solver_file", lambda _path: _WrongProblem())
    result = worker.run_task({"instance_path": str(path), "solver_path": "wrong.py"})
    assert result["status"] == "invalid"
    assert any("router's Top-K" in v for v in result["violations"])
