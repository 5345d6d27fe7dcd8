"""The same sweep on a dask.distributed cluster (an in-process LocalCluster)."""

from __future__ import annotations

import pytest

from wdmoe_opt.harness.bench import run_bench

from .conftest import fixture_sweep


def test_sweep_on_a_dask_cluster(library_root, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        sweep = fixture_sweep(library_root, tmp_path, ["fix-p3-uniform", "fix-raise"],
                              scheduler=cluster.scheduler_address)
        table = run_bench(sweep)
    assert sorted(r["status"] for r in table.rows.values()) == \
        ["error", "error", "feasible", "feasible"]
