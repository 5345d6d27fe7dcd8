"""The benchmark worker: an untimed warm-up before the timed solve."""

from __future__ import annotations

from tests.conftest import small_instance
from wdmoe_opt import BandwidthProblem, Selection, get_method
from wdmoe_opt.harness import solvers, worker
from wdmoe_opt.io import write_instance


class _Spy:
    """A solver spec that records the instances it is asked to solve."""

    problem = "p3"

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
