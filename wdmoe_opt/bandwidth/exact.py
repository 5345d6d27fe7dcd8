"""``p3/exact``: a structure-exploiting interior-point solver with a certified bound.

P3 (eqs. 19-21) in epigraph form, normalized (:mod:`.structure`)::

    min_{b, s}  sum_i s_i   s.t.  t[i, k](b_k) <= s_i,  sum_k b_k = 1,

each ``t[i, k]`` a convex decreasing function of one variable with closed-form
first and second derivatives. A primal-dual interior-point method (Mehrotra's
predictor-corrector) keeps ``(b, s)`` strictly feasible; its Newton system has
a diagonal ``b``-block, a diagonal ``s``-block and an ``[U', I]`` coupling, so
eliminating ``s`` leaves a dense ``U' x U'`` system bordered by the budget row.

The iterate is *certified*: the multipliers are normalized per layer and the
Lagrangian dual function is evaluated exactly (:func:`.certificate.dual_bound`),
a valid lower bound whatever the multipliers. The status is ``optimal`` only
when the recomputed relative gap is at most ``tol``.
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

_TO_BOUNDARY = 0.995


@dataclass(frozen=True)
class ExactOptions(P3Options):
    """Options of ``p3/exact`` (``tol`` is the certified relative gap)."""


@dataclass
class IPMResult:
    """The last iterate of :func:`interior_point` (normalized units)."""

    b: np.ndarray          # [U'] bandwidth shares of the loaded devices
    lam: np.ndarray        # [I, U'] multipliers of t[i, k] <= s_i
    nu: float              # price of the budget sum b = 1
    bound: float           # certified lower bound g(lam, nu)
    objective: float       # sum_i max_k t[i, k](b)
    iterations: int
    status: Status


def interior_point(data: P3Data, tol: float = 1e-9, max_iter: int = 200,
                   time_limit: float = 60.0) -> IPMResult:
    """Solve normalized P3 to a certified relative gap ``tol`` (module docstring)."""
    deadline = time.perf_counter() + time_limit
    b = data.uniform_point()
    t = data.times(b)
    s = t.max(axis=1) + 0.1
    slack = s[:, None] - t
    lam = (1 / slack) / (1 / slack).sum(axis=1, keepdims=True)
    nu = 0.0
    m = lam.size
    best = None
    status = Status.FEASIBLE
    certified = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        t, t1, t2 = data.time_derivatives(b)
        residual = t - s[:, None] + slack            # primal residual of t - s + slack = 0
        gap = float((lam * slack).sum())
        certified = gap <= 0.1 * tol * s.sum()
        if certified:
            best = _certify(data, b, lam, nu, best)
            if best[1] - best[0] <= 0.5 * tol * best[1]:
                status = Status.OPTIMAL
                break
        if time.perf_counter() > deadline:
            status = Status.TIME_LIMIT
            break
        newton = _NewtonSystem(lam, slack, t1, t2, residual)
        aff = newton.direction(np.zeros_like(lam))
        alpha = _max_step(b, lam, slack, aff)
        gap_aff = float(((lam + alpha * aff.dlam) * (slack + alpha * aff.dslack)).sum())
        mu = (gap_aff / gap) ** 3 * gap / m
        step = newton.direction((mu - aff.dlam * aff.dslack) / slack)
        alpha = _TO_BOUNDARY * _max_step(b, lam, slack, step)
        b = b + alpha * step.db
        s = s + alpha * step.ds
        slack = slack + alpha * step.dslack
        lam = lam + alpha * step.dlam
        nu = nu + alpha * (step.nu - nu)
    if not certified:
        best = _certify(data, b, lam, nu, best)
    if status is Status.FEASIBLE and best[1] - best[0] <= 0.5 * tol * best[1]:
        status = Status.OPTIMAL
    bound, objective, b_best, lam_best, nu_best = best
    return IPMResult(b_best, lam_best, nu_best, bound, objective, iterations, status)


def _certify(data, b, lam, nu, best):
    """``(bound, objective, b, lam, nu)``: the best bound and best point so far."""
    bound, _ = dual_bound(data, lam, nu, start=b)
    objective = float(data.objective(b))
    if best is None:
        return bound, objective, b, lam, nu
    if bound < best[0]:
        bound, lam, nu = best[0], best[3], best[4]
    if objective > best[1]:
        objective, b = best[1], best[2]
    return bound, objective, b, lam, nu


@dataclass
class _Step:
    db: np.ndarray
    ds: np.ndarray
    nu: float
    dlam: np.ndarray
    dslack: np.ndarray


class _NewtonSystem:
    """The primal-dual Newton system at one iterate.

    Constraints ``t(b) - s + slack = 0`` with ``slack, lam > 0``. With
    ``d = lam / slack``, the ``b``-block is ``diag(sum_i lam t'' + d t'^2)``, the
    ``s``-block ``diag(sum_k d)`` and the coupling ``-d t'``; the larger diagonal
    block is eliminated, leaving a dense ``min(U', I) + 1`` system. Eliminating
    the slack and the multipliers, a direction for the complementarity target
    ``lam * slack -> w * slack`` has right-hand side ``-(sum_i w' t', 1 - sum_k w')``
    with ``w' = w + d * residual``, and returns the new ``nu`` directly.
    """

    def __init__(self, lam, slack, t1, t2, residual):
        self.lam, self.t1, self.residual = lam, t1, residual
        self.d = d = lam / slack
        self.hb = (lam * t2 + d * t1 * t1).sum(axis=0)   # [U'] diagonal b-block
        self.hs = d.sum(axis=1)                           # [I]  diagonal s-block
        self.coupling = c = -(d * t1).T                   # [U', I]
        # Eliminate the larger diagonal block; border the rest with the budget row.
        self.onto_b = c.shape[0] <= c.shape[1]
        if self.onto_b:
            reduced = np.diag(self.hb) - (c / self.hs) @ c.T
            border = np.ones(c.shape[0])
            corner = 0.0
        else:
            scaled = c.T / self.hb                        # [I, U']
            reduced = np.diag(self.hs) - scaled @ c
            border = -scaled.sum(axis=1)
            corner = -(1.0 / self.hb).sum()
        n = reduced.shape[0]
        kkt = np.empty((n + 1, n + 1))
        kkt[:n, :n] = reduced
        kkt[:n, n] = kkt[n, :n] = border
        kkt[n, n] = corner
        self.kkt = kkt  # at most min(U', I) + 1 square: two dense solves are cheap

    def direction(self, w: np.ndarray) -> _Step:
        w = w + self.d * self.residual
        rb = -(w * self.t1).sum(axis=0)
        rs = w.sum(axis=1) - 1.0
        c = self.coupling
        if self.onto_b:
            sol = np.linalg.solve(self.kkt, np.append(rb - c @ (rs / self.hs), 0.0))
            db, nu = sol[:-1], float(sol[-1])
            ds = (rs - c.T @ db) / self.hs
        else:
            rb_scaled = rb / self.hb
            sol = np.linalg.solve(self.kkt, np.append(rs - c.T @ rb_scaled, -rb_scaled.sum()))
            ds, nu = sol[:-1], float(sol[-1])
            db = rb_scaled - (c @ ds + nu) / self.hb
        linear = ds[:, None] - self.t1 * db              # -(t' db - ds)
        return _Step(db, ds, nu, w - self.lam - self.d * linear, linear - self.residual)


def _max_step(b, lam, slack, step: _Step) -> float:
    """Largest ``alpha <= 1`` keeping ``b``, ``lam`` and ``slack`` non-negative."""
    alpha = 1.0
    with np.errstate(divide="ignore"):
        for x, dx in ((b, step.db), (lam, step.dlam), (slack, step.dslack)):
            alpha = min(alpha, float(np.where(dx < 0, x / -dx, np.inf).min()))
    return alpha


@register("p3", "exact", options=ExactOptions, exact=True)
def solve_exact(problem: BandwidthProblem, options: ExactOptions) -> Solution:
    """Certified optimum: structured interior point plus a Lagrangian-dual lower bound."""
    data, done = prepare(problem, "p3/exact")
    if done is not None:
        return done
    start = time.perf_counter()
    try:
        res = interior_point(data, options.tol, options.max_iter, options.time_limit)
    except (FloatingPointError, np.linalg.LinAlgError, ValueError) as exc:
        sol = finish(problem, data, data.uniform_point(), method="p3/exact",
                     status=Status.ERROR, extra={"error": str(exc)})
        return sol
    status = None if res.status is not Status.TIME_LIMIT else Status.TIME_LIMIT
    return finish(problem, data, res.b, method="p3/exact", bound=res.bound, tol=options.tol,
                  status=status, extra={
                      "iterations": res.iterations,
                      "algorithm_time_s": time.perf_counter() - start,
                      "bandwidth_price_s_per_hz":
                          res.nu * data.time_scale_s / data.total_bandwidth_hz})
