"""The benchmark harness: instance library, solver plug-ins, resumable sweeps, reports.

* :mod:`.library` — the instance index (tiers, hashes, best known values);
* :mod:`.solvers` — :class:`Config` / :class:`Custom` solver files and their discovery;
* :mod:`.bench` — the sweep (local process pool or dask.distributed);
* :mod:`.runner` / :mod:`.worker` — one run in a child process with time and memory limits;
* :mod:`.table` — the Parquet results table (atomic, resumable);
* :mod:`.analysis` — references, targets, time and quality profiles, summaries;
* :mod:`.figures` / :mod:`.report` — the PNG figures, CSV tables and HTML page;
* :mod:`.screenshot` — the page in headless Chromium (``make report-check``).

See ``docs/harness.md``.
"""

from .solvers import Config, Custom

__all__ = ["Config", "Custom"]
