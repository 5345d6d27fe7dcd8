"""A lower bound on P3 from any Lagrange multipliers (weak duality).

In epigraph form P3 reads ``min sum_i s_i`` s.t. ``t[i, k](b_k) <= s_i``,
``sum_k b_k = 1``, ``b >= 0`` (normalized units, see :mod:`.structure`). For
multipliers ``lambda[i, k] >= 0`` with ``sum_k lambda[i, k] = 1`` in every layer
and a bandwidth price ``nu >= 0``, the Lagrangian dual function is

    ``g(lambda, nu) = sum_k min_{b_k >= 0} (sum_i lambda[i, k] t[i, k](b_k) + nu b_k) - nu``,

and ``g <= `` the P3 optimum whatever the multipliers. Each inner problem is a
1-D convex minimization; it is solved by safeguarded Newton on a bracket of the
minimizer, and its value is bounded from below by the tangent at the final point
over the bracket, so an inexact 1-D solve cannot overstate the bound; a relative
``1e-13`` is taken off for the round-off of the double-precision sums.
"""

from __future__ import annotations

import numpy as np

from .structure import P3Data

#: Relative allowance for floating-point round-off in evaluating ``g`` (sums of
#: ``I x U'`` terms in double precision), taken off the bound so it stays valid.
ROUNDOFF_MARGIN = 1e-13
_MAX_BRACKET_STEPS = 2100
_MAX_NEWTON_STEPS = 50
_MAX_BISECTION_STEPS = 2100
_BRACKET_WIDTH = 1e-9


def normalize_multipliers(lam: np.ndarray) -> np.ndarray:
    """Clip to ``>= 0`` and rescale each layer's row to sum to 1 (uniform if all zero)."""
    lam = np.clip(np.nan_to_num(np.asarray(lam, dtype=np.float64)), 0.0, None)
    sums = lam.sum(axis=1, keepdims=True)
    uniform = np.full_like(lam, 1.0 / lam.shape[1])
    return np.where(sums > 0, lam / np.where(sums > 0, sums, 1.0), uniform)


def dual_bound(data: P3Data, lam: np.ndarray, nu: float,
               start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The dual function ``g(lambda, nu)`` (module docstring), a valid P3 lower bound.

    Parameters
    ----------
    data : P3Data
    lam : array [I, U']
        Multipliers of ``t[i, k] <= s_i``; normalized here per layer.
    nu : float
        Price of the budget ``sum b = 1`` (normalized units); clipped at 0.
    start : array [U'], optional
        Where the 1-D searches start (e.g. the primal point).

    Returns
    -------
    bound : float
        Normalized lower bound (multiply by ``data.time_scale_s`` for seconds).
    minimizers : array [U']
        The inner minimizers ``b_k(lambda, nu)`` (``inf`` where ``nu = 0``).
    """
    lam = normalize_multipliers(lam)
    nu = max(float(nu), 0.0) if np.isfinite(nu) else 0.0
    weight = lam * data.kappa                       # [I, U']
    const = (lam * data.pi).sum(axis=0)             # [U']
    comm = weight.any(axis=0)
    if nu == 0.0:
        # inf over b of a decreasing function: the limit b -> inf, h(b) -> g.
        limit = (weight * (1.0 / data.g_down + 1.0 / data.g_up)).sum(axis=0)
        return float((const + limit).sum()), np.full(data.n_loaded, np.inf)

    # Slow fading: one curve per device, so the layer sum of the weights comes first.
    rows = weight if data.g_down.shape[0] > 1 else weight.sum(axis=0, keepdims=True)

    def slope(b):
        val, minus_d1, d2 = (rows * data.curve_stack(b)).sum(axis=-2)
        return val, nu - minus_d1, d2

    x = data.uniform_point() if start is None else np.asarray(start, dtype=np.float64)
    x = np.where(comm & np.isfinite(x) & (x > 0), x, 1.0)
    x = _newton(slope, x, comm)
    # Certify the bracket [lo, hi] of the minimizer by the signs of the slope; fall
    # back to bracketing and bisection where Newton did not land close enough.
    lo, hi = x * (1 - _BRACKET_WIDTH), x * (1 + _BRACKET_WIDTH)
    vals, d1s, _ = slope(np.stack([x, lo, hi]))
    val, d1 = vals[0], d1s[0]
    if not ((d1s[1] <= 0) & (d1s[2] >= 0) | ~comm).all():
        lo, hi, x = _bisect(slope, x, comm)
        val, d1, _ = slope(x)
    tangent = np.minimum(d1 * (lo - x), d1 * (hi - x))  # <= 0: covers the bracket
    inner = np.where(comm, val + nu * x + tangent, 0.0) + const  # no comm: min at b = 0
    bound = float(inner.sum() - nu)
    return bound - ROUNDOFF_MARGIN * abs(bound), np.where(comm, x, 0.0)


def _newton(slope, x, comm):
    """Newton steps on ``slope = 0`` (convex objective), kept positive; stops after a
    step below ``1e-11`` relative (quadratic convergence: the point is then far
    inside the certified bracket)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(_MAX_NEWTON_STEPS):
            _, d1, d2 = slope(x)
            step = d1 / d2
            x_new = np.where(x - step > 0, x - step, 0.5 * x)
            if np.all((np.abs(x_new - x) <= 1e-11 * x) | ~comm):
                return np.where(comm, x_new, x)
            x = x_new
    return x


def _bisect(slope, x, comm):
    """Safeguarded Newton on a bracket of the minimizer: ``(lo, hi, x)``."""
    lo, hi = _bracket(slope, x, comm)
    x = np.clip(x, lo, hi)
    for _ in range(_MAX_BISECTION_STEPS):
        _, d1, d2 = slope(x)
        lo = np.where(d1 <= 0, x, lo)
        hi = np.where(d1 >= 0, x, hi)
        step = x - d1 / d2
        x = np.where((step > lo) & (step < hi), step, np.sqrt(lo * hi))
        if np.all((hi - lo <= 4e-16 * hi) | ~comm):
            break
    return lo, hi, x


def _bracket(slope, x, comm):
    """``lo <= argmin <= hi`` per device: halve/double from ``x`` until the slope
    changes sign (the slope tends to -inf at 0 and to ``nu > 0`` at infinity)."""
    lo, hi = x.copy(), x.copy()
    for _ in range(_MAX_BRACKET_STEPS):
        d_lo = slope(lo)[1]
        d_hi = slope(hi)[1]
        low_ok = (d_lo <= 0) | ~comm
        high_ok = (d_hi >= 0) | ~comm
        if low_ok.all() and high_ok.all():
            return lo, hi
        lo = np.where(low_ok, lo, lo * 0.5)
        hi = np.where(high_ok, hi, hi * 2.0)
    raise FloatingPointError("could not bracket the inner minimizer of the dual function")
