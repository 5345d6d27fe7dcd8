"""The benchmark harness: instance library, solver plug-ins, resumable sweeps, reports.

* :mod:`.library` — the instance index (tiers, hashes, best known values);
* :mod:`.solvers` — :class:`Config` / :class:`Custom` solver files and their discovery;
* :mod:`.bench` — the sweep (local process pool or dask.distributed);
* :mod:`.runner` / :mod:`.worker` — one run in a child process with time and memory limits;
* :mod:`.table` — the Parquet results table (atomic, resumable);
* :mod:`.report` — performance profiles, shifted geometric means, gap tables, HTML.

See ``docs/harness.md``.
"""

from .solvers import Config, Custom

__all__ = ["Config", "Custom"]
