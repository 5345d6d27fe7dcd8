"""``p3/exact``: a structure-exploiting interior-point solver with a certified bound.

P3 (eqs. 19-21) in epigraph form, normalized (:mod:`.structure`)::

    min_{b, s}  sum_i s_i   s.t.  t[i, k](b_k) <= s_i,  F_i <= s_i,  sum_k b_k = 1,

with ``F_i`` the floor of the ``local`` devices (:mod:`.structure`; without one the
floor rows are left out). A floor row is a pair whose time does not depend on ``b``:
it adds its own slack and multiplier, ``d = lam / slack`` to the ``s``-block and
nothing to the ``b``-block; its multiplier joins the layer's in the certificate.

each ``t[i, k]`` a convex decreasing function of one variable with closed-form
first and second derivatives. A primal-dual interior-point method (Mehrotra's
predictor-corrector) keeps ``(b, s)`` strictly feasible, with constraints
``t(b) - s + slack = 0``, ``slack, lam > 0``. With ``d = lam / slack`` its Newton
matrix has a diagonal ``b``-block ``diag(sum_i lam t'' + d t'^2)``, a diagonal
``s``-block ``diag(sum_k d)`` and the coupling ``-d t'``; the larger diagonal
block is eliminated, leaving a dense ``min(U', I) + 1`` system bordered by the
budget row, LU-factored once per iteration and solved for the predictor and the
corrector (an explicit inverse lets ``sum b`` drift from 1 when the system is
ill-conditioned near the optimum). Eliminating the slack and the multipliers, a
direction for the complementarity target ``lam * slack -> w * slack`` has
right-hand side ``-(sum_i w' t', 1 - sum_k w')`` with ``w' = w + d * residual``
and returns the new budget price ``nu`` directly.

The start is in closed form: at the uniform split ``b0`` a device's communication
time is about ``a / b`` with ``a[i, k] = kappa f(b0) b0``; equal finish times in a
layer give ``b ~ a[i]``, the sum over layers ``b ~ sqrt(sum_i a)``; the start takes
``b ~ (sum_i a[i, k])^0.75`` between the two, floored at ``1e-3 / U'``, every layer
0.1 above its bottleneck, the multipliers centred per layer.

The iterate is *certified*: the multipliers are normalized per layer and the
Lagrangian dual function is evaluated exactly (:mod:`.certificate`), a valid
lower bound whatever the multipliers, once the duality gap is below ``tol``
(relative); it is accepted at ``0.9 tol``, a margin for the recomputation of the
gap in seconds by :func:`.common.finish`. The status is ``optimal`` only when
the recomputed relative gap is at most ``tol``.

The iterations run in compiled code (``_p3kernel.c``, following this docstring
step by step): on these small arrays a numpy implementation costs one call per
array operation, about 80 per iteration, where the arithmetic itself takes
microseconds (``docs/bandwidth.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..problems import BandwidthProblem
from ..registry import register
from ..solution import Solution, Status
from .certificate import compiled_kernel
from .common import P3Options, finish, prepare
from .structure import P3Data

#: Return codes of ``_p3kernel.interior_point``: a status, or why it failed
#: (``_AFTER_INCUMBENT +`` a failure: after a certified point, which is returned).
_STATUS = {0: Status.OPTIMAL, 1: Status.FEASIBLE, 2: Status.TIME_LIMIT}
_FAILURE = {3: "singular Newton system", 4: "non-finite iterate",
            5: "the certificate could not bracket an inner minimizer"}
_AFTER_INCUMBENT = 10


@dataclass(frozen=True)
class ExactOptions(P3Options):
    """Options of ``p3/exact`` (``tol`` is the certified relative gap)."""


@dataclass
class IPMResult:
    """The outcome of :func:`interior_point` (normalized units)."""

    b: np.ndarray          # [U'] best bandwidth shares of the loaded devices
    lam: np.ndarray        # [I, U'] multipliers of t[i, k] <= s_i of the best bound
    lam_floor: np.ndarray  # [I] multipliers of F_i <= s_i (empty without a floor)
    nu: float              # price of the budget sum b = 1 of the best bound
    bound: float           # certified lower bound g(lam, nu)
    objective: float       # sum_i max_k t[i, k](b)
    iterations: int
    status: Status
    stopped: str | None = None   # why it stopped early after a certified point


def interior_point(data: P3Data, tol: float = 1e-9, max_iter: int = 200,
                   time_limit: float = 60.0) -> IPMResult:
    """Solve normalized P3 (at least two loaded devices) to a certified relative gap
    ``tol``; the module docstring says how.

    A numerical breakdown (a singular Newton system, a non-finite iterate, a
    certificate that cannot bracket its inner minimizers) after a certified point
    returns that point, ``feasible`` unless it meets ``tol``, with ``stopped``
    saying why; before one, it raises ``FloatingPointError``.
    """
    b = np.empty(data.n_loaded)
    multipliers = np.empty(data.n_multipliers)
    code, nu, bound, objective, iterations = compiled_kernel().interior_point(
        *data.kernel_arrays, b, multipliers, tol, max_iter, time_limit, data.kernel_floor)
    pairs = data.kappa.size
    lam, lam_floor = multipliers[:pairs].reshape(data.kappa.shape), multipliers[pairs:]
    if code in _FAILURE:
        raise FloatingPointError(f"p3/exact: {_FAILURE[code]} (iteration {iterations})")
    if code - _AFTER_INCUMBENT in _FAILURE:
        return IPMResult(b, lam, lam_floor, nu, bound, objective, iterations, Status.FEASIBLE,
                         stopped=f"{_FAILURE[code - _AFTER_INCUMBENT]} (iteration {iterations})")
    return IPMResult(b, lam, lam_floor, nu, bound, objective, iterations, _STATUS[code])


@register("p3", "exact", options=ExactOptions, backends=("p3kernel",), exact=True)
def solve_exact(problem: BandwidthProblem, options: ExactOptions) -> Solution:
    """Certified optimum: structured interior point plus a Lagrangian-dual lower bound."""
    data, done = prepare(problem, "p3/exact")
    if done is not None:
        return done
    start = time.perf_counter()
    try:
        res = interior_point(data, options.tol, options.max_iter, options.time_limit)
    except (FloatingPointError, ValueError) as exc:
        sol = finish(problem, data, data.uniform_point(), method="p3/exact",
                     status=Status.ERROR, extra={"error": str(exc)})
        return sol
    status = None if res.status is not Status.TIME_LIMIT else Status.TIME_LIMIT
    return finish(problem, data, res.b, method="p3/exact", bound=res.bound, tol=options.tol,
                  status=status, extra={
                      "iterations": res.iterations,
                      **({"stopped": res.stopped} if res.stopped else {}),
                      "algorithm_time_s": time.perf_counter() - start,
                      "bandwidth_price_s_per_hz":
                          res.nu * data.time_scale_s / data.total_bandwidth_hz})
