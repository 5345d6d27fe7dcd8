"""Faults: two writers on one table, a killed bench, Ctrl-C in the middle of runs."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.harness.conftest import FIXTURES
from wdmoe_opt.harness.table import ResultsTable, read_results

ROOT = Path(__file__).resolve().parents[2]


def _writer(folder: str, who: str, n: int) -> None:
    table = ResultsTable(folder)
    for r in range(n):
        table.add({"instance": f"i{r}", "solver": who, "repeat": 0, "status": "feasible"})


def test_two_processes_writing_one_table_lose_no_row(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), who, 20)) for who in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = read_results(tmp_path)
    assert len(rows) == 40 and set(rows["solver"]) == {"a", "b"}


_BENCH = """
import sys
from wdmoe_opt.harness.bench import plan, run_bench
sweep = plan(sys.argv[1], ["fix-slow", "fix-p3-uniform"], sys.argv[2],
             solver_dirs=[sys.argv[3]], timeout=300.0, grace_s=5.0, jobs=2)
print("started", flush=True)
run_bench(sweep)
"""


def _bench(library_root, out) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _BENCH, str(library_root), str(out),
                             str(FIXTURES)], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _workers(proc: subprocess.Popen, timeout: float = 120.0,
             solver: str | None = None) -> list[psutil.Process]:
    """The bench's worker processes (of ``solver`` only, if given) once one runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = []
        for k in psutil.Process(proc.pid).children(recursive=True):
            try:
                cmd = k.cmdline()
                if "wdmoe_opt.harness.worker" not in " ".join(cmd):
                    continue
                if solver is None or f"{solver}.py" in Path(cmd[-1]).read_text():
                    kids.append(k)
            except (psutil.Error, OSError):
                continue
        if kids:
            return kids
        time.sleep(0.2)
    raise AssertionError("no worker started")


def test_a_killed_bench_takes_its_workers_and_their_folders_with_it(library_root, tmp_path):
    proc = _bench(library_root, tmp_path / "out")
    workers = _workers(proc, solver="fix-slow")     # the one still running when killed
    task_dirs = [Path(w.cmdline()[-1]).parent for w in workers]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, [w.pid for w in alive]
    time.sleep(0.5)
    assert not any(d.exists() for d in task_dirs)


def test_ctrl_c_stops_the_runs_in_flight_and_records_them(library_root, tmp_path):
    proc = _bench(library_root, tmp_path / "out")
    workers = _workers(proc)
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    assert time.monotonic() - started < 60          # not the slow run's 300 s time limit
    psutil.wait_procs(workers, timeout=30)
    rows = read_results(tmp_path / "out")
    assert "interrupted" in set(rows["status"])
    table = ResultsTable(tmp_path / "out")
    assert not any(k[1] == "fix-slow" for k in table.finished())   # it runs again next time


def test_a_grandchild_that_left_the_process_group_is_killed_too(library_root, tmp_path,
                                                                 monkeypatch):
    from tests.harness.conftest import fixture_sweep
    from wdmoe_opt.harness.bench import run_bench

    note = tmp_path / "pid"
    monkeypatch.setenv("WDMOE_TEST_ESCAPE_PID_FILE", str(note))
    sweep = fixture_sweep(library_root, tmp_path / "out", ["fix-escape"], timeout=20.0,
                          limit=1)
    rows = run_bench(sweep).frame()
    assert list(rows["status"]) == ["timeout"]
    pid = int(note.read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the grandchild survived"
        time.sleep(0.2)


def test_a_killed_bench_resumes_where_it_stopped(library_root, tmp_path):
    out = tmp_path / "out"
    proc = _bench(library_root, out)
    _workers(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from tests.harness.conftest import fixture_sweep
    from wdmoe_opt.harness.bench import run_bench

    rows = run_bench(fixture_sweep(library_root, out, ["fix-p3-uniform"], timeout=60.0)).frame()
    assert set(rows.loc[rows["solver"] == "fix-p3-uniform", "status"]) == {"feasible"}


def test_a_damaged_results_table_is_one_clear_error(tmp_path):
    import pytest

    from wdmoe_opt.errors import InputError

    (tmp_path / "results.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputError, match="is not a readable results table"):
        ResultsTable(tmp_path)
