"""``p3/slsqp``: SciPy's SLSQP on the epigraph form of P3, as the paper solves it.

The max in eq. (19) is not differentiable, so SLSQP gets the smooth epigraph
form in normalized units (:mod:`.structure`)::

    min_{b, s} sum_i s_i   s.t.  s_i - t[i, k](b_k) >= 0 (loaded pairs),
                                 sum_k b_k = 1,  b_min <= b <= 1,  s >= 0,

with analytic gradients and the feasible start ``b`` uniform over the loaded
devices, ``s_i = max_k t[i, k](b)``. SLSQP's own status is reported as is:
``success`` gives ``feasible`` (``optimal`` when the Lagrangian-dual bound from
its multipliers certifies ``tol``), an iteration limit or any other failure
``error``, the time limit ``time_limit``; every point is rescaled onto the simplex
and re-evaluated, so no number is taken from the solver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..problems import BandwidthProblem
from ..registry import register
from ..solution import Solution, Status
from .certificate import dual_bound
from .common import P3Options, finish, prepare
from .structure import P3Data

#: Smallest normalized share SLSQP may give a loaded device (its times blow up at 0).
B_MIN = 1e-9


@dataclass(frozen=True)
class SlsqpOptions(P3Options):
    """Options of ``p3/slsqp`` (``tol`` is SLSQP's ``ftol`` and the certified gap)."""


class _TimeUp(Exception):
    pass


@register("p3", "slsqp", options=SlsqpOptions, backends=("scipy", "p3kernel"))
def solve_slsqp(problem: BandwidthProblem, options: SlsqpOptions) -> Solution:
    """SciPy SLSQP on the epigraph form (the paper's solver), feasible start."""
    from scipy.optimize import minimize

    data, done = prepare(problem, "p3/slsqp")
    if done is not None:
        return done
    n, layers = data.n_loaded, data.n_layers
    rows, cols = np.nonzero(data.active)
    jac_rows = np.arange(rows.size)

    def constraint(x):
        return x[n:][rows] - data.times(x[:n])[rows, cols]

    def constraint_jac(x):
        _, t1, _ = data.time_derivatives(x[:n])
        jac = np.zeros((rows.size, n + layers))
        jac[jac_rows, cols] = -t1[rows, cols]
        jac[jac_rows, n + rows] = 1.0
        return jac

    b0 = data.uniform_point()
    x0 = np.concatenate([b0, data.layer_times(b0)])
    grad = np.concatenate([np.zeros(n), np.ones(layers)])
    budget = 1.0 - grad
    deadline = time.perf_counter() + options.time_limit
    last = [x0]

    def callback(x):
        last[0] = np.array(x, copy=True)
        if time.perf_counter() > deadline:
            raise _TimeUp

    start = time.perf_counter()
    try:
        res = minimize(
            lambda x: x[n:].sum(), x0, jac=lambda x: grad, method="SLSQP",
            bounds=[(B_MIN, 1.0)] * n + [(f, None) for f in data.floor],
            constraints=[{"type": "eq", "fun": lambda x: x[:n].sum() - 1.0,
                          "jac": lambda x: budget},
                         {"type": "ineq", "fun": constraint, "jac": constraint_jac}],
            options={"ftol": options.tol, "maxiter": options.max_iter}, callback=callback)
    except _TimeUp:
        return finish(problem, data, last[0][:n], method="p3/slsqp", status=Status.TIME_LIMIT,
                      extra={"message": "time limit reached"})
    extra = {"iterations": int(res.nit), "message": str(res.message),
             "scipy_status": int(res.status)}
    b = res.x[:n]
    if not np.isfinite(b).all():
        return finish(problem, data, last[0][:n], method="p3/slsqp", status=Status.ERROR,
                      extra=extra)
    bound = _bound_from_multipliers(data, res, rows, cols, b)
    extra["algorithm_time_s"] = time.perf_counter() - start
    return finish(problem, data, b, method="p3/slsqp", bound=bound, tol=options.tol,
                  status=None if res.success else Status.ERROR, extra=extra)


def _bound_from_multipliers(data: P3Data, res, rows, cols, b) -> float | None:
    """The dual bound at SLSQP's multipliers: equality first, then inequalities,
    for the Lagrangian ``f - sum mult * c`` (so the budget price is ``-mult[0]``)."""
    mult = getattr(res, "multipliers", None)
    if mult is None or len(mult) != rows.size + 1:
        return None
    lam = np.zeros(data.active.shape)
    lam[rows, cols] = mult[1:]
    return dual_bound(data, lam, -float(mult[0]), start=b)[0]
