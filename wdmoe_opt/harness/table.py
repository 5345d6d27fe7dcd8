"""The results table: one row per (instance, solver, repeat), Parquet, written atomically.

Every finished run is written at once (temporary file + rename), so an interrupted
sweep loses nothing and a re-run skips the rows already there. Rows whose status is in
:data:`RETRY_STATUSES` (a method not registered yet, a solver file that does not
import, a run stopped by Ctrl-C) do not count as finished: a later sweep runs them again.

Several processes may write one table (two ``bench`` runs on one ``--out``): each write
takes an exclusive lock (``results.parquet.lock``), re-reads the table and adds its row
to what is there, so no process loses another's rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
from pathlib import Path

import pandas as pd

from ..io import atomic_write_bytes

RESULTS_FILE = "results.parquet"
KEY = ("instance", "solver", "repeat")
RETRY_STATUSES = frozenset({"unavailable", "interrupted"})
#: Column order of the table (columns beyond these are kept after them).
COLUMNS = ("instance", "tier", "solver", "repeat", "problem", "status", "solver_status",
           "feasible", "exact", "objective", "sense", "bound", "gap", "best_known", "gap_to_best",
           "objective_s", "lower_bound_s", "wlr_total", "wlr_upper_bound", "retained_weight",
           "solve_time_s", "wall_s", "timeout", "peak_mem_mb", "violations", "error",
           "instance_hash", "solution_path", "versions", "finished_at")


class ResultsTable:
    """The rows of ``DIR/results.parquet``; each add re-reads and rewrites it under a lock."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / RESULTS_FILE
        self.rows: dict[tuple, dict] = {}
        with self._locked():
            self._load()

    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(RESULTS_FILE + ".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            frame = pd.read_parquet(self.path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            from ..errors import InputError
            raise InputError(str(self.path), f"is not a readable results table ({exc}); "
                             "move it away to start a new one") from None
        for row in frame.to_dict("records"):
            self.rows[_key(row)] = {k: _none_if_nan(v) for k, v in row.items()}

    def finished(self) -> set[tuple]:
        """Keys of the runs that need not run again."""
        return {k for k, r in self.rows.items() if r.get("status") not in RETRY_STATUSES}

    def add(self, row: dict) -> None:
        """Add (or replace) one row: under the lock, merge the table as it is on disk
        (rows other processes wrote), then write it atomically."""
        with self._locked():
            self._load()
            self.rows[_key(row)] = row
            atomic_write_bytes(self.path, to_parquet_bytes(self.frame()))

    def frame(self) -> pd.DataFrame:
        return as_frame(list(self.rows.values()))


def as_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with the standard column order."""
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra]


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def read_results(folder: str | Path) -> pd.DataFrame:
    """The results table of a bench folder (an error if there is none)."""
    from ..errors import InputError
    path = Path(folder) / RESULTS_FILE
    if not path.exists():
        raise InputError("results folder", f"holds no {RESULTS_FILE}", str(folder))
    return pd.read_parquet(path)


def _key(row: dict) -> tuple:
    return tuple(int(row[k]) if k == "repeat" else row[k] for k in KEY)


def _none_if_nan(v):
    return None if isinstance(v, float) and v != v else v
