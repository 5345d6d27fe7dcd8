"""``p3/cvxpy``: P3 as a DCP model, solved by a conic solver (Clarabel by default).

Normalized units (:mod:`.structure`) keep the cone solver well conditioned. With
``h(b) = b ln(1 + g / b) = -rel_entr(b, b + g)`` (concave, an exponential cone),
the normalized time ``kappa (inv_pos(h_down(b)) + inv_pos(h_up(b))) + pi`` is
convex (``inv_pos`` is convex and decreasing), and P3 (eqs. 19-21) reads::

    min sum_i s_i  s.t.  (inv_pos(h_down) + inv_pos(h_up))[i, k] <= (s_i - pi[i, k]) / kappa[i, k],
                         sum_k b_k = 1,  s >= 0,  s >= F (with ``local`` devices).

The model is built once per structure (layers, loaded devices, which pairs carry
load, slow or fast fading) and re-solved with new parameter values
(``g``, ``1 / kappa``, ``pi / kappa``) when only the data changes (DPP). The bound comes from
the solver's duals through the exact dual function (:mod:`.certificate`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..options import Options, option
from ..problems import BandwidthProblem
from ..registry import register
from ..solution import Solution, Status
from .certificate import dual_bound
from .common import finish, prepare
from .structure import P3Data

#: Exponential-cone solvers cvxpy may call, and how each names its limits.
SOLVERS = ("CLARABEL", "SCS", "ECOS", "MOSEK")
_LIMIT_NAMES = {"CLARABEL": ("max_iter", "time_limit"), "SCS": ("max_iters", "time_limit_secs"),
                "ECOS": ("max_iters", None), "MOSEK": (None, None)}
_CACHE_SIZE = 8
_MODELS: OrderedDict = OrderedDict()


@dataclass(frozen=True)
class CvxpyOptions(Options):
    """Options of ``p3/cvxpy``."""

    solver: str = option("CLARABEL", SOLVERS, "conic solver cvxpy calls")
    tol: float = option(1e-6, "positive", "certified relative gap reported as optimal")
    max_iter: int = option(200, "positive_int", "solver iteration limit")
    time_limit: float = option(60.0, "positive", "solver time limit in seconds")


@dataclass
class _Model:
    problem: object
    b: object
    fits: object          # the load constraints, one row per loaded pair
    budget: object        # sum b == 1
    params: dict          # cvxpy Parameters: g_down, g_up (per curve), kappa, pi (per pair)
    curve_rows: np.ndarray
    curve_cols: np.ndarray
    rows: np.ndarray      # layer of each loaded pair
    cols: np.ndarray      # loaded-device index of each loaded pair


def build_model(data: P3Data) -> _Model:
    """The parametrized DCP model for ``data``'s structure (cached by structure)."""
    key = _structure_key(data)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    import cvxpy as cp

    rows, cols = np.nonzero(data.active)
    curve_rows, curve_cols, curve_of_pair = _curves(data, rows, cols)
    n_curves = curve_rows.size
    b = cp.Variable(data.n_loaded, nonneg=True)
    s = cp.Variable(data.n_layers, nonneg=True)
    params = {name: cp.Parameter(n_curves, nonneg=True) for name in ("g_down", "g_up")}
    params.update(inv_kappa=cp.Parameter(rows.size, nonneg=True),
                  pi_over_kappa=cp.Parameter(rows.size))
    bc = b[curve_cols]
    inv_rate = (cp.inv_pos(-cp.rel_entr(bc, bc + params["g_down"]))
                + cp.inv_pos(-cp.rel_entr(bc, bc + params["g_up"])))
    # kappa f + pi <= s, divided by kappa so parameters multiply parameter-free terms (DPP)
    fits = (inv_rate[curve_of_pair]
            <= cp.multiply(params["inv_kappa"], s[rows]) - params["pi_over_kappa"])
    budget = cp.sum(b) == 1
    constraints = [fits, budget]
    if data.has_floor:   # the local devices' compute time (structure.py)
        params["floor"] = cp.Parameter(data.n_layers, nonneg=True)
        constraints.append(s >= params["floor"])
    model = _Model(cp.Problem(cp.Minimize(cp.sum(s)), constraints), b, fits, budget, params,
                   curve_rows, curve_cols, rows, cols)
    _MODELS[key] = model
    if len(_MODELS) > _CACHE_SIZE:
        _MODELS.popitem(last=False)
    return model


def _structure_key(data: P3Data) -> tuple:
    return (data.n_layers, data.n_loaded, data.g_down.shape[0], data.has_floor,
            np.packbits(data.active).tobytes())


def _curves(data: P3Data, rows, cols):
    """The distinct ``(gain row, device)`` rate curves the loaded pairs use."""
    if data.g_down.shape[0] == 1:
        return np.zeros(data.n_loaded, dtype=np.int64), np.arange(data.n_loaded), cols
    return rows, cols, np.arange(rows.size)


@register("p3", "cvxpy", options=CvxpyOptions, backends=("cvxpy", "p3kernel"))
def solve_cvxpy(problem: BandwidthProblem, options: CvxpyOptions) -> Solution:
    """DCP model (exponential cones via ``rel_entr``), Clarabel by default, DPP re-solves."""
    import cvxpy as cp

    data, done = prepare(problem, "p3/cvxpy")
    if done is not None:
        return done
    start = time.perf_counter()
    cached = _structure_key(data) in _MODELS
    model = build_model(data)
    for name in ("g_down", "g_up"):
        model.params[name].value = getattr(data, name)[model.curve_rows, model.curve_cols]
    kappa = data.kappa[model.rows, model.cols]
    model.params["inv_kappa"].value = 1.0 / kappa
    model.params["pi_over_kappa"].value = data.pi[model.rows, model.cols] / kappa
    if data.has_floor:
        model.params["floor"].value = data.floor
    iters, limit = _LIMIT_NAMES[options.solver]
    kwargs = {k: v for k, v in ((iters, options.max_iter), (limit, options.time_limit)) if k}
    uniform = data.uniform_point()
    try:
        model.problem.solve(solver=options.solver, **kwargs)
    except (cp.error.SolverError, cp.error.DCPError, ValueError) as exc:
        return finish(problem, data, uniform, method="p3/cvxpy", status=Status.ERROR,
                      extra={"error": str(exc)})
    extra = {"solver_status": str(model.problem.status), "solver": options.solver,
             "solver_time_s": _solver_time(model.problem)}
    b = model.b.value
    if model.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or b is None \
            or not np.isfinite(b).all():
        limited = model.problem.status == cp.USER_LIMIT
        return finish(problem, data, uniform if b is None else b, method="p3/cvxpy",
                      status=Status.TIME_LIMIT if limited else Status.ERROR, extra=extra)
    lam = np.zeros(data.active.shape)
    lam[model.rows, model.cols] = model.fits.dual_value / kappa  # the row was divided by kappa
    bound, _ = dual_bound(data, lam, float(model.budget.dual_value), start=np.clip(b, 1e-12, None))
    extra.update(algorithm_time_s=time.perf_counter() - start, model_cached=cached)
    return finish(problem, data, b, method="p3/cvxpy", bound=bound, tol=options.tol,
                  extra=extra)


def _solver_time(problem) -> float | None:
    stats = problem.solver_stats
    return None if stats is None or stats.solve_time is None else float(stats.solve_time)
