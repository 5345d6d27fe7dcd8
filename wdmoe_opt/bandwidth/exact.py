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
from scipy.linalg import lapack

from ..problems import BandwidthProblem
from ..registry import register
from ..solution import Solution, Status
from .certificate import dual_bound
from .common import P3Options, finish, prepare
from .structure import P3Data

_TO_BOUNDARY = 0.995
#: The certificate is evaluated once the duality gap is below ``_CERTIFY_AT * tol``
#: (relative): the certified gap is then about the duality gap, so it usually
#: passes; it is accepted at ``_ACCEPT * tol``, a margin for the recomputation of
#: the gap in seconds by :func:`.common.finish`.
_CERTIFY_AT = 1.0
_ACCEPT = 0.9


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
    ipm = _Iterate(data)
    best = None
    status = Status.FEASIBLE
    certified = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        gap = ipm.linearize()
        certified = gap <= _CERTIFY_AT * tol * ipm.s.sum()
        if certified:
            best = _certify(data, ipm, best)
            if best[1] - best[0] <= _ACCEPT * tol * best[1]:
                status = Status.OPTIMAL
                break
        if time.perf_counter() > deadline:
            status = Status.TIME_LIMIT
            break
        ipm.step(gap)
    if not certified:
        ipm.linearize()
        best = _certify(data, ipm, best)
    if status is Status.FEASIBLE and best[1] - best[0] <= _ACCEPT * tol * best[1]:
        status = Status.OPTIMAL
    bound, objective, b_best, lam_best, nu_best = best
    return IPMResult(b_best, lam_best, nu_best, bound, objective, iterations, status)


def _certify(data, ipm: _Iterate, best):
    """``(bound, objective, b, lam, nu)``: the best bound and best point so far."""
    b, lam, nu = ipm.b.copy(), ipm.lam.copy(), ipm.nu
    bound, _ = dual_bound(data, lam, nu, start=b)
    objective = float(ipm.t.max(axis=1).sum())
    if best is None:
        return bound, objective, b, lam, nu
    if bound < best[0]:
        bound, lam, nu = best[0], best[3], best[4]
    if objective > best[1]:
        objective, b = best[1], best[2]
    return bound, objective, b, lam, nu


class _Iterate:
    """The primal-dual iterate and its Newton system (Mehrotra predictor-corrector).

    Constraints ``t(b) - s + slack = 0`` with ``slack, lam > 0``. With
    ``d = lam / slack``, the ``b``-block of the Newton matrix is
    ``diag(sum_i lam t'' + d t'^2)``, the ``s``-block ``diag(sum_k d)`` and the
    coupling ``-d t'``; the larger diagonal block is eliminated, leaving a dense
    ``min(U', I) + 1`` system (bordered by the budget row), solved for the predictor
    and the corrector (by LU: an explicit inverse lets ``sum b`` drift from 1 when
    the system is ill-conditioned near the optimum). Eliminating the slack
    and the multipliers, a direction for the complementarity target
    ``lam * slack -> w * slack`` has right-hand side ``-(sum_i w' t', 1 - sum_k w')``
    with ``w' = w + d * residual``, and returns the new ``nu`` directly.

    The state ``[s, b, lam, slack]`` is one flat vector (and so is a direction), so
    the step to the boundary and the update are one array operation each.
    """

    def __init__(self, data: P3Data):
        self.data = data
        n_layers, n = data.kappa.shape
        self.n_layers, self.n, m = n_layers, n, n_layers * n
        self.onto_b = n <= n_layers
        self.ones_i, self.ones_n = np.ones(n_layers), np.ones(n)
        self.z = np.empty(n_layers + n + 2 * m)
        self.dz = np.empty_like(self.z)
        self.s, self.b, self.lam, self.slack = self._split(self.z)
        self.ds, self.db, self.dlam, self.dslack = self._split(self.dz)
        self.s_col, self.ds_col = self.s[:, None], self.ds[:, None]
        self.lam_flat, self.slack_flat = self.lam.reshape(-1), self.slack.reshape(-1)
        self.positive, self.dpositive = self.z[n_layers:], self.dz[n_layers:]
        self.curve = np.empty((3, n_layers, n))
        self.residual = np.empty((n_layers, n))
        # Start: P3Data.start_point, every layer 0.1 above its bottleneck, multipliers
        # centred per layer (lam * slack constant) and summing to 1.
        self.b[:] = data.start_point()
        t = data.kappa * data.curve_value(self.b) + data.pi
        self.s[:] = t.max(axis=1) + 0.1
        np.subtract(self.s[:, None], t, out=self.slack)
        inv = 1.0 / self.slack
        np.divide(inv, inv.sum(axis=1, keepdims=True), out=self.lam)
        self.nu = 0.0
        k = min(n, n_layers)
        self.kkt = np.zeros((k + 1, k + 1))
        if self.onto_b:
            self.kkt[:k, k] = self.kkt[k, :k] = -1.0
        self.rhs = np.zeros(k + 1)
        self.diagonal = self.kkt.reshape(-1)[:-1:k + 2][:k]

    def _split(self, v):
        """Views ``s [I], b [U'], lam [I, U'], slack [I, U']`` of a flat state ``v``."""
        i, n = self.n_layers, self.n
        m = i * n
        return (v[:i], v[i:i + n], v[i + n:i + n + m].reshape(i, n),
                v[i + n + m:].reshape(i, n))

    def linearize(self) -> float:
        """Derivatives, residual and Newton matrix at the iterate; the duality gap."""
        data = self.data
        curve = np.multiply(data.kappa, data.curve_stack(self.b), out=self.curve)
        self.t = t = curve[0]                           # curve: t, -t', t''
        t += data.pi
        self.t1, t2 = t1, _ = curve[1], curve[2]        # t1 = -t' > 0
        lam, slack = self.lam, self.slack
        np.subtract(t, self.s_col, out=self.residual)   # of t - s + slack = 0
        self.residual += slack
        self.d = d = lam / slack
        self.dres = d * self.residual
        self.dt1 = dt1 = d * t1
        lam_t2 = lam * t2
        lam_t2 += dt1 * t1
        self.hb = hb = self.ones_i @ lam_t2               # [U'] diagonal b-block
        self.hs = hs = d @ self.ones_n                   # [I]  diagonal s-block
        # self.kkt and self.rhs hold the negated system (saves a negation)
        k = self.kkt.shape[0] - 1
        if self.onto_b:
            self.dt1_hs = dt1_hs = dt1 / hs[:, None]
            np.matmul(dt1.T, dt1_hs, out=self.kkt[:k, :k])
            self.diagonal -= hb
        else:
            scaled = dt1 / hb                            # [I, U']
            np.matmul(scaled, dt1.T, out=self.kkt[:k, :k])
            self.diagonal -= hs
            self.kkt[:k, k] = self.kkt[k, :k] = scaled @ self.ones_n
            self.kkt[k, k] = (1.0 / hb).sum()
        # LU once, two triangular solves (LAPACK getrf/getrs: np.linalg.solve's
        # algorithm without its per-call overhead)
        self.lu, self.pivots, info = lapack.dgetrf(self.kkt)
        if info != 0:
            raise np.linalg.LinAlgError(f"singular Newton system (getrf info {info})")
        return float(self.lam_flat @ self.slack_flat)

    def direction(self, w: np.ndarray) -> float:
        """The direction for target ``w`` (``w' = w + d * residual``, ``[I, U']``) into
        ``self.dz``; returns the new budget price ``nu``."""
        k = self.kkt.shape[0] - 1
        rb = self.ones_i @ (w * self.t1)                # -(sum_i w' t')
        rs = w @ self.ones_n
        rs -= 1.0
        dt1, hs = self.dt1, self.hs
        ds, db, dlam, dslack = self.ds, self.db, self.dlam, self.dslack
        if self.onto_b:
            np.subtract(self.dt1_hs.T @ rs, rb, out=self.rhs[:k])
            sol = self._solve()
            db[:] = sol[:k]
            rs -= dt1 @ db
            np.divide(rs, hs, out=ds)
        else:
            rb /= self.hb
            np.subtract(dt1 @ rb, rs, out=self.rhs[:k])
            self.rhs[k] = rb.sum()
            sol = self._solve()
            ds[:] = sol[:k]
            np.subtract(rb, (dt1.T @ ds + sol[k]) / self.hb, out=db)
        linear = np.multiply(self.t1, db, out=dslack)
        linear += self.ds_col                            # -(t' db - ds)
        np.multiply(self.d, linear, out=dlam)
        np.subtract(w, dlam, out=dlam)
        dlam -= self.lam
        dslack -= self.residual
        return float(sol[k])

    def _solve(self) -> np.ndarray:
        """The reduced system for ``self.rhs`` (LU: backward stable, keeps sum b = 1)."""
        return lapack.dgetrs(self.lu, self.pivots, self.rhs)[0]

    def max_step(self) -> float:
        """Largest ``alpha <= 1`` keeping ``b``, ``lam`` and ``slack`` non-negative."""
        worst = float((self.dpositive / self.positive).min())
        return 1.0 if worst >= -1.0 else -1.0 / worst

    def step(self, gap: float) -> None:
        """One predictor-corrector step from the linearized iterate."""
        self.direction(self.dres)                        # predictor (affine scaling)
        alpha = self.max_step()
        cross = self.dlam * self.dslack
        # sum (lam + a dlam)(slack + a dslack); lam dslack + slack dlam = -lam slack
        gap_aff = gap * (1.0 - alpha) + alpha * alpha * float(cross.sum())
        mu = (max(gap_aff, 0.0) / gap) ** 3 * gap / self.lam.size
        np.subtract(mu, cross, out=cross)
        cross /= self.slack
        cross += self.dres
        nu = self.direction(cross)                       # corrector
        alpha = _TO_BOUNDARY * self.max_step()
        self.z += alpha * self.dz
        self.nu += alpha * (nu - self.nu)


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
