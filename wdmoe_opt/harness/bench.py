"""The benchmark sweep: every (instance, solver, repeat) of a library, resumable.

``run_bench`` is what ``wdmoe-opt bench`` calls. Each run goes through
:func:`wdmoe_opt.harness.runner.execute` (a child process with time and memory limits),
on a local pool of ``jobs`` runs at a time or on a dask.distributed cluster
(``scheduler`` = its address); every finished row is written to the results table at
once. See ``docs/harness.md``.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import atomic_write_text
from .library import Library, materialize, read_library
from .runner import (
    METHOD_TIME_FRACTION,
    STARTUP_GRACE_S,
    begin_sweep,
    execute,
    kill_all,
    task_key,
)
from .solvers import SolverFile, discover, select
from .table import ResultsTable

META_FILE = "bench.json"
DEFAULT_SOLVERS_DIR = Path(__file__).resolve().parents[2] / "solvers"


@dataclass(frozen=True)
class Sweep:
    """What one ``bench`` call runs."""

    library: Library
    solvers: tuple[SolverFile, ...]
    out: Path
    repeat: int = 1
    timeout: float = 60.0
    memory_mb: float | None = 8192
    jobs: int = 1
    scheduler: str | None = None
    grace_s: float = STARTUP_GRACE_S


def default_solver_dirs() -> list[Path]:
    """``./solvers`` if it exists, else the repository's ``solvers/`` folder."""
    local = Path("solvers")
    return [local if local.is_dir() else DEFAULT_SOLVERS_DIR]


def plan(instances: str | Path, solvers: Iterable[str], out: str | Path, *,
         solver_dirs: Iterable[str | Path] | None = None, tiers: Iterable[str] | None = None,
         limit: int | None = None, **settings) -> Sweep:
    """Resolve the library, the solver files and the settings of a sweep."""
    names = [s.strip() for s in solvers if s.strip()]
    if not names:
        raise InputError("--solvers", "must name at least one solver")
    if limit is not None and limit < 1:
        raise InputError("--limit", "must be a positive integer", limit)
    for name, low in (("repeat", 1), ("jobs", 1)):
        if settings.get(name, low) < low:
            raise InputError(f"--{name}", "must be a positive integer", settings[name])
    if settings.get("timeout", 1) <= 0:
        raise InputError("--timeout", "must be a positive number of seconds", settings["timeout"])
    library = read_library(instances).select(tiers, limit)
    if not library.entries:
        raise InputError("--instances", "selects no instance", str(instances))
    found = discover(solver_dirs or default_solver_dirs())
    return Sweep(library, tuple(select(found, names)), Path(out), **settings)


def make_tasks(sweep: Sweep, done: set[tuple], paths: dict[str, Path]) -> Iterator[dict]:
    """The tasks not yet finished, instance-major (all solvers on one instance together)."""
    for entry in sweep.library.entries:
        for solver in sweep.solvers:
            problem = solver.spec.problem_key if solver.spec else "p1/unknown"
            best = (entry.best_known.get(problem) or {}).get("objective")
            for rep in range(sweep.repeat):
                task = {"instance": entry.name, "tier": entry.tier, "solver": solver.name,
                        "repeat": rep, "problem": problem, "instance_hash": entry.hash,
                        "instance_path": str(paths.get(entry.name, "")),
                        "solver_path": str(solver.path), "timeout": sweep.timeout,
                        "time_limit": sweep.timeout * METHOD_TIME_FRACTION,
                        "memory_mb": sweep.memory_mb, "grace_s": sweep.grace_s,
                        "best_known": best,
                        "solution_path": str(sweep.out / "solutions" / entry.name
                                             / f"{solver.name}-r{rep}.json")}
                if task_key(task) not in done:
                    yield task


def broken_row(task: dict, error: str) -> dict:
    """The row of a task that cannot start (its solver file does not import)."""
    return {k: task[k] for k in ("instance", "tier", "solver", "repeat", "problem",
                                 "instance_hash", "timeout")} | {
        "status": "unavailable", "error": error}


def run_bench(sweep: Sweep, on_event: Callable[[str, object], None] | None = None
              ) -> ResultsTable:
    """Run the sweep; rows go to ``sweep.out/results.parquet`` as they finish.

    ``on_event(kind, payload)`` reports progress: ``("instance", name)`` while
    materializing, ``("total", n)`` once the tasks are known, ``("row", row)`` per run.
    """
    notify = on_event or (lambda kind, payload: None)
    begin_sweep()
    sweep.out.mkdir(parents=True, exist_ok=True)
    _write_meta(sweep)
    table = ResultsTable(sweep.out)
    paths = {}
    for entry in sweep.library.entries:
        notify("instance", entry.name)
        paths[entry.name] = materialize(sweep.library, entry)
    tasks = list(make_tasks(sweep, table.finished(), paths))
    notify("total", len(tasks))
    broken = {s.name: s.error for s in sweep.solvers if s.spec is None}
    runnable = []
    for task in tasks:
        if task["solver"] in broken:
            _record(table, broken_row(task, broken[task["solver"]]), notify)
        else:
            runnable.append(task)
    try:
        for row in _results(sweep, runnable):
            _record(table, row, notify)
    except BaseException:
        kill_all()
        raise
    return table


def _record(table: ResultsTable, row: dict, notify) -> None:
    table.add(row)
    notify("row", row)


def _results(sweep: Sweep, tasks: list[dict]) -> Iterator[dict]:
    """Rows as the runs finish, from a local pool or a dask cluster."""
    if not tasks:
        return
    if sweep.scheduler:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
        with Client(sweep.scheduler) as client:
            futures = client.map(execute, tasks, pure=False)
            for fut in dask_completed(futures):
                yield fut.result()
        return
    with ThreadPoolExecutor(max_workers=sweep.jobs) as pool:
        futures = [pool.submit(execute, t) for t in tasks]
        pending = set(futures)
        try:
            for fut in as_completed(futures):
                pending.discard(fut)
                yield fut.result()
        except KeyboardInterrupt:            # stop the runs in flight now, record them
            for fut in futures:
                fut.cancel()
            kill_all()
            for fut in pending:
                if not fut.cancelled():
                    yield fut.result()
            raise
        finally:
            for fut in futures:
                fut.cancel()


def machine() -> dict:
    """The machine a local sweep runs on (benchopt's metadata): CPU, cores, memory, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib,
            "os": platform.platform(), "python": platform.python_version()}


def _write_meta(sweep: Sweep) -> None:
    """Record where the instances came from (so ``report`` can update their index), the
    settings and the machine (the scheduler's workers may differ from it)."""
    meta = {"index": str(sweep.library.path) if sweep.library.path else None,
            "solvers": [s.name for s in sweep.solvers], "repeat": sweep.repeat,
            "timeout": sweep.timeout, "memory_mb": sweep.memory_mb,
            "scheduler": sweep.scheduler, "jobs": sweep.jobs, "machine": machine()}
    atomic_write_text(sweep.out / META_FILE, json.dumps(meta, indent=1))


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
