"""What every ``p3/*`` solver shares: options, trivial cases, building the result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import Options, option
from ..problems import BandwidthProblem
from ..solution import Solution, Status, relative_gap
from .structure import P3Data

#: A lower bound above the objective by more than this (relative) is a solver bug.
_BOUND_ROUNDOFF = 1e-12


@dataclass(frozen=True)
class P3Options(Options):
    """Options shared by the iterative P3 methods."""

    tol: float = option(1e-9, "positive", "relative optimality gap accepted as optimal")
    max_iter: int = option(200, "positive_int", "iteration limit")
    time_limit: float = option(60.0, "positive", "wall-clock limit in seconds")


def finish(problem: BandwidthProblem, data: P3Data, b: np.ndarray, *, method: str,
           bound: float | None = None, tol: float = 0.0, status: Status | None = None,
           extra: dict | None = None) -> Solution:
    """The :class:`Solution` at normalized point ``b`` (rescaled onto the simplex).

    ``bound`` is a normalized lower bound. Without ``status``, the status is
    ``optimal`` when the recomputed relative gap is at most ``tol``, else
    ``feasible``. A bound above the objective beyond round-off is reported as
    ``error`` (the bound is dropped), never as a negative gap. A point that is not
    a usable allocation (NaN, nothing positive) is replaced by the uniform split,
    reported ``error`` unless the status already says why the solver stopped.
    """
    b = np.asarray(b, dtype=np.float64)
    if data.n_loaded and not (np.isfinite(b).all() and np.clip(b, 0, None).sum() > 0):
        b, bound = data.uniform_point(), None
        status = Status.TIME_LIMIT if status is Status.TIME_LIMIT else Status.ERROR
    lb = None if bound is None or not np.isfinite(bound) else bound * data.time_scale_s
    sol = Solution.evaluate(problem.instance, problem.selection, data.bandwidth_hz(b),
                            problem="p3", method=method, tolerance=tol, extra=extra)
    if lb is not None and lb > sol.objective_s:
        if lb > sol.objective_s * (1 + _BOUND_ROUNDOFF):
            return sol.with_run_info(status=Status.ERROR, extra={
                **sol.extra, "error": f"lower bound {lb!r} above the objective"})
        lb = sol.objective_s
    if status is None:
        optimal = lb is not None and relative_gap(sol.objective_s, lb) <= tol
        status = Status.OPTIMAL if optimal else Status.FEASIBLE
    return sol.with_run_info(lower_bound_s=lb, status=status)


def prepare(problem: BandwidthProblem, method: str) -> tuple[P3Data, Solution | None]:
    """The normalized data, and the solution already when the case is trivial."""
    data = P3Data.from_problem(problem)
    return data, trivial(problem, data, method)


def trivial(problem: BandwidthProblem, data: P3Data, method: str) -> Solution | None:
    """The optimum when at most one linked device is loaded, else ``None``.

    No linked load: every layer latency is its floor ``F_i`` (0 without ``local``
    devices) whatever the split (uniform, any is optimal). One loaded linked device:
    its times decrease in its bandwidth, so it takes all of it; the objective is then
    its own lower bound.
    """
    if data.n_loaded > 1:
        return None
    sol = finish(problem, data, np.ones(data.n_loaded), method=method)
    return sol.with_run_info(lower_bound_s=sol.objective_s, status=Status.OPTIMAL)

