"""Shared fixtures: a two-instance tiny library and one sweep over the fixture solvers."""

from __future__ import annotations

from pathlib import Path

import pytest

from wdmoe_opt.harness.bench import plan, run_bench
from wdmoe_opt.harness.library import build_library

FIXTURES = Path(__file__).parent / "solvers_fixture"

#: The fixture solvers and the status each one's run must end with.
EXPECTED = {"fix-p3-uniform": "feasible", "fix-p2-topk": "feasible",
            "fix-topk-uniform": "feasible", "fix-raise": "error", "fix-die": "crash",
            "fix-slow": "timeout", "fix-hog": "memout", "fix-missing": "unavailable",
            "fix-broken": "unavailable", "fix-wrong": "invalid"}


def tiny_spec(name: str, seed: int, store: bool) -> dict:
    return {"name": name, "tier": "tiny", "store": store,
            "generator": {"preset": "wdmoe-sim", "seed": seed,
                          "params": {"layers": 2, "tokens": 4, "experts": 3}}}


def make_library(root: Path):
    return build_library(root, [tiny_spec("t-stored", 0, True), tiny_spec("t-regen", 1, False)])


#: The one fixture about time-outs, run with a short limit; every other run gets limits
#: generous enough for a slow or loaded machine (Python start-up and imports included).
TIMED_OUT = "fix-slow"
SHORT_LIMITS = {"timeout": 1.0, "grace_s": 1.0}
GENEROUS_LIMITS = {"timeout": 120.0, "grace_s": 10.0, "memory_mb": 8192}


def fixture_sweep(library_root: Path, out: Path, solvers, **settings):
    settings = {**GENEROUS_LIMITS, "jobs": 2, **settings}
    return plan(library_root, solvers, out, solver_dirs=[FIXTURES], **settings)


@pytest.fixture(scope="session")
def library_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("library")
    make_library(root)
    return root


@pytest.fixture(scope="session")
def swept(library_root, tmp_path_factory):
    """One sweep of every fixture solver on the stored instance: (out folder, table); the
    others under generous limits, then the time-out fixture under ``SHORT_LIMITS`` (the
    table resumes; the folder's recorded settings are the last sweep's, 1 s per run)."""
    out = tmp_path_factory.mktemp("bench")
    others = [name for name in EXPECTED if name != TIMED_OUT]
    run_bench(fixture_sweep(library_root, out, others, limit=1))
    return out, run_bench(fixture_sweep(library_root, out, [TIMED_OUT], limit=1, **SHORT_LIMITS))
