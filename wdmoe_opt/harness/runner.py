"""Run one benchmark task in a child process with a time and memory limit.

:func:`execute` is the one run function, called by the local pool and by dask
workers alike: it starts ``python -m wdmoe_opt.harness.worker`` in a new session,
kills the whole process group when the time limit passes (status ``timeout``), records
a process that dies without a result as ``crash`` and returns one results-table row.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..io import atomic_write_text
from .solvers import SENSE

#: Default seconds given to the process to start, load and verify beyond the time limit.
STARTUP_GRACE_S = 5.0
#: Fraction of the time limit handed to methods with a ``time_limit`` option, so they
#: can return their incumbent before the process is killed.
METHOD_TIME_FRACTION = 0.9
#: One BLAS/OpenMP thread per run: fair timings and no oversubscription with ``--jobs``.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()
#: Set by :func:`kill_all` (Ctrl-C): the runs it stops are recorded as ``interrupted``.
_INTERRUPTED = threading.Event()


def task_key(task: dict) -> tuple[str, str, int]:
    return task["instance"], task["solver"], int(task["repeat"])


def _run_child(task: dict, workdir: Path) -> tuple[dict | None, float, str]:
    """Run the worker; return (its result or None, wall seconds, harness status or '')."""
    task_path, result_path = workdir / "task.json", workdir / "result.json"
    atomic_write_text(task_path, json.dumps({**task, "result_path": str(result_path),
                                             "parent_pid": os.getpid()}))
    env = {**os.environ, **{v: "1" for v in _THREAD_VARS}}
    start = time.perf_counter()
    with open(workdir / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "wdmoe_opt.harness.worker",
                                 str(task_path)], stdout=subprocess.DEVNULL, stderr=err,
                                env=env, start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        if _INTERRUPTED.is_set():       # Ctrl-C came while this run was starting
            kill(proc)
        try:
            proc.wait(timeout=task["timeout"] + task.get("grace_s", STARTUP_GRACE_S))
            outcome = ""
        except subprocess.TimeoutExpired:
            kill(proc)
            outcome = "timeout"
        finally:
            if _INTERRUPTED.is_set():
                outcome = "interrupted"
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    wall = time.perf_counter() - start
    if outcome:
        return None, wall, outcome
    if not result_path.exists():
        return None, wall, f"crash (exit code {proc.returncode})"
    return json.loads(result_path.read_text(encoding="utf-8")), wall, ""


def kill_tree(pid: int) -> None:
    """Kill process ``pid``, its process group and every descendant (one that left the
    group with its own session too), as far as they can be found."""
    import psutil
    try:
        family = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        family = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.kill()


def kill(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started, then reap it."""
    kill_tree(proc.pid)
    proc.wait()


def begin_sweep() -> None:
    """Forget an earlier Ctrl-C of this process before a new sweep starts."""
    _INTERRUPTED.clear()


def kill_all() -> None:
    """Stop every run in flight now (Ctrl-C): they end as ``interrupted``; the rows
    already written are kept."""
    _INTERRUPTED.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        kill(proc)


def execute(task: dict) -> dict:
    """Run one task (see :func:`wdmoe_opt.harness.bench.make_tasks`); return its row."""
    with tempfile.TemporaryDirectory(prefix="wdmoe-run-") as tmp:
        workdir = Path(tmp)
        result, wall, outcome = _run_child(task, workdir)
        stderr = (workdir / "stderr.txt").read_text(encoding="utf-8", errors="replace")
    row = {k: task[k] for k in ("instance", "tier", "solver", "repeat", "problem",
                                "instance_hash", "timeout")}
    row["wall_s"] = wall
    if result is None:
        grace = task.get("grace_s", STARTUP_GRACE_S)
        status, _, code = outcome.partition(" ")
        why = {"timeout": f"killed after {task['timeout']:g} s (+{grace:g} s grace)",
               "interrupted": "stopped by the user (Ctrl-C); runs again next time"}.get(
                   status, f"process died {code}: {_tail(stderr)}")
        row.update(status=status, error=why)
        return _finish(row, task)
    row.update({k: v for k, v in result.items() if k not in ("traceback", "versions")})
    row["violations"] = "; ".join(result.get("violations") or [])
    row["versions"] = json.dumps(result.get("versions") or {}, sort_keys=True)
    if result.get("solver_status") is not None and task.get("solution_path"):
        row["solution_path"] = task["solution_path"]
    if "traceback" in result:
        row["error"] = f"{result['error']} | {_tail(result['traceback'])}"
    return _finish(row, task)


def _finish(row: dict, task: dict) -> dict:
    """Add the compared objective and bound (in the problem's sense) and gap to best known."""
    sense = SENSE[task["problem"].split("/")[0]]
    row["sense"] = sense
    if sense == "max":
        row["objective"], row["bound"] = row.get("wlr_total"), row.get("wlr_upper_bound")
    else:
        row["objective"], row["bound"] = row.get("objective_s"), row.get("lower_bound_s")
    best = task.get("best_known")
    row["best_known"] = best
    row["gap_to_best"] = gap_to_best(row["objective"], best, sense)
    row["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return row


def gap_to_best(objective: float | None, best: float | None, sense: str) -> float | None:
    """Relative distance to the best known value, positive when worse:
    ``(obj - best)/|best|`` for minimization, ``(best - obj)/|best|`` for maximization."""
    if objective is None or best is None:
        return None
    diff = objective - best if sense == "min" else best - objective
    return diff / abs(best) if best else (0.0 if diff == 0 else float("inf"))


def _tail(text: str, lines: int = 3) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:])
