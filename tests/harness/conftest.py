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


def fixture_sweep(library_root: Path, out: Path, solvers, **settings):
    settings = {"timeout": 1.0, "grace_s": 1.0, "memory_mb": 1024, "jobs": 2, **settings}
    return plan(library_root, solvers, out, solver_dirs=[FIXTURES], **settings)


@pytest.fixture(scope="session")
def library_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("library")
    make_library(root)
    return root


@pytest.fixture(scope="session")
def swept(library_root, tmp_path_factory):
    """One sweep of every fixture solver on the stored instance: (out folder, table)."""
    out = tmp_path_factory.mktemp("bench")
    sweep = fixture_sweep(library_root, out, list(EXPECTED), limit=1)
    return out, run_bench(sweep)
