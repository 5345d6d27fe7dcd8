"""One benchmark run in its own process: ``python -m wdmoe_opt.harness.worker TASK.json``.

The task file names the instance file (and its expected hash), the solver file, the
time limit to hand to the method, the memory limit and where to write the solution and
the result. The worker caps its address space (``RLIMIT_AS``) first, solves, verifies
the solution with the independent checker (:func:`wdmoe_opt.check.check_solution`)
rather than trusting the solver's numbers, and writes the result atomically. A solver
that raises is recorded as ``error`` (``memout`` for a ``MemoryError``); a process that
dies or overruns is recorded by the parent (:mod:`wdmoe_opt.harness.runner`).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import threading
import time
import traceback
from pathlib import Path


def limit_memory(memory_mb: float | None) -> None:
    """Cap the address space of this process at ``memory_mb`` MiB (no-op for None)."""
    if memory_mb:
        limit = int(memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def versions(backends: dict | None = None) -> dict:
    """wdmoe_opt, Python, numpy, scipy and the method's backends (benchopt's metadata)."""
    from .._version import __version__
    from ..registry import backend_versions
    return {"wdmoe_opt": __version__, "python": platform.python_version(),
            **backend_versions(), **dict(backends or {})}


def is_exact(solver) -> bool:
    """Whether the solver's method proves optimality (the registry's ``exact`` flag);
    a :class:`~wdmoe_opt.harness.solvers.Custom` function counts as a heuristic."""
    from ..registry import get_method
    method = getattr(solver, "method", "")
    return bool(method) and get_method(method).exact


def bilevel_feasible(problem: str, doc: dict) -> bool:
    """Whether a point may set a best known value of its problem.

    P2 and P3 points are feasible when the checker accepts them. A P1 point must
    also be bilevel-feasible: a method says so in ``extra.bilevel_feasible``; otherwise,
    under the uniform lower level, a sequential point is feasible when its P2 step was
    solved to optimality (``extra.selection_status == "optimal"``).
    """
    if problem != "p1":
        return True
    extra = doc.get("extra") or {}
    if "bilevel_feasible" in extra:
        return bool(extra["bilevel_feasible"])
    return extra.get("lower_level") == "uniform" and extra.get("selection_status") == "optimal"


def warm_up(solver, instance) -> None:
    """Untimed, before the timed solve (benchopt's habit): the solver once on a tiny
    instance, so that importing its backends and first calls are not timed, and the
    instance's own caches (the router's Top-K and its weight total, the received
    powers). The problem's data (the loads of a selection) stay part of the solve."""
    from ..generate import generate
    tiny = generate("wdmoe-sim", seed=0, layers=2, tokens=4, devices=3, experts=3)
    try:
        solver.solve(tiny, 10.0)
    except Exception:  # not a result: the timed solve reports any failure
        pass
    _ = instance.router_topk_mask, instance.topk_weight_total, instance.received_power_w


def run_task(task: dict) -> dict:
    """Solve one (instance, solver) pair; return the result record (never raises)."""
    from ..check import check_solution
    from ..io import atomic_write_text, read_instance, solution_to_dict
    from ..model import Selection
    from .solvers import load_solver_file

    try:
        solver = load_solver_file(task["solver_path"])
        ok, why = solver.available()
        if not ok:
            return {"status": "unavailable", "error": why, "versions": versions()}
        instance = read_instance(task["instance_path"])
        if task.get("instance_hash") and instance.content_hash != task["instance_hash"]:
            return {"status": "error", "versions": versions(),
                    "error": f"instance hash {instance.content_hash} != {task['instance_hash']}"}
        warm_up(solver, instance)
        start = time.perf_counter()
        solution = solver.solve(instance, task.get("time_limit"))
        elapsed = time.perf_counter() - start
    except MemoryError:
        return {"status": "memout", "error": "MemoryError", "peak_mem_mb": peak_memory_mb(),
                "versions": versions()}
    except Exception as exc:  # the harness never crashes on a solver (STYLE habit 8)
        tail = traceback.format_exc(limit=-3)
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": tail,
                "peak_mem_mb": peak_memory_mb(), "versions": versions()}
    peak = peak_memory_mb()
    doc = solution_to_dict(solution)
    violations = check_solution(instance, doc, problem=solver.problem,
                                support=solver.support)
    if solver.problem == "p3" and doc.get("selection") != Selection.topk(instance).kept_lists():
        violations.append("selection: the P3 benchmark allocates for the router's Top-K")
    if task.get("solution_path"):
        atomic_write_text(task["solution_path"], json.dumps(doc))
    return {
        "status": "invalid" if violations else doc["status"],
        "solver_status": doc["status"], "violations": violations,
        "objective_s": doc["objective_s"], "lower_bound_s": doc["lower_bound_s"],
        "wlr_total": doc["wlr_total"], "wlr_upper_bound": doc["wlr_upper_bound"],
        "retained_weight": doc["retained_weight"], "gap": doc["gap"],
        "solve_time_s": doc["solve_time_s"] or elapsed, "peak_mem_mb": peak,
        "feasible": not violations and bilevel_feasible(solver.problem, doc),
        "exact": is_exact(solver),
        "versions": versions((doc.get("solver") or {}).get("backends")),
    }


def watch_parent(parent_pid: int, workdir: Path, period_s: float = 0.5) -> None:
    """A daemon thread: when the harness that started this worker dies (``kill -9``),
    kill what this worker started, remove its work folder and exit."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(period_s)
        import shutil

        import psutil
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
        shutil.rmtree(workdir, ignore_errors=True)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def main(argv: list[str]) -> int:
    from ..io import atomic_write_text
    task = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    if task.get("parent_pid"):
        watch_parent(int(task["parent_pid"]), Path(argv[0]).parent)
    limit_memory(task.get("memory_mb"))
    result = run_task(task)
    atomic_write_text(task["result_path"], json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
