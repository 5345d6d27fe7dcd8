"""A lower bound on P3 from any Lagrange multipliers (weak duality).

In epigraph form P3 reads ``min sum_i s_i`` s.t. ``t[i, k](b_k) <= s_i``,
``sum_k b_k = 1``, ``b >= 0`` (normalized units, see :mod:`.structure`). For
multipliers ``lambda[i, k] >= 0`` with ``sum_k lambda[i, k] = 1`` in every layer
and a bandwidth price ``nu >= 0``, the Lagrangian dual function is

    ``g(lambda, nu) = sum_k min_{b_k >= 0} (sum_i lambda[i, k] t[i, k](b_k) + nu b_k) - nu``,

With ``local`` devices the epigraph also has ``F_i <= s_i`` (the floor of
:mod:`.structure`); its multiplier ``mu_i >= 0`` joins the layer's,
``sum_k lambda[i, k] + mu_i = 1`` (so the ``s_i`` terms of the Lagrangian still
cancel), and the constant ``sum_i mu_i F_i`` is added to ``g``.

and ``g <= `` the P3 optimum whatever the multipliers. Each inner problem is a
1-D convex minimization; it is solved by safeguarded Newton on a bracket of the
minimizer, and its value is bounded from below by the tangent at the final point
over the bracket, so an inexact 1-D solve cannot overstate the bound; a relative
``1e-13`` is taken off for the round-off of the double-precision sums.

The evaluation is compiled (``_p3kernel.c``, shared with ``p3/exact``, which
certifies inside its loop); this module is its entry point for every P3 method.
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendUnavailable
from .structure import P3Data

try:
    from . import _p3kernel
except ImportError:  # a source tree that was never built: every other method still works
    _p3kernel = None


def compiled_kernel():
    """The compiled ``_p3kernel`` module, or a clear error when it was not built."""
    if _p3kernel is None:
        raise BackendUnavailable(
            "the compiled P3 kernel (wdmoe_opt/bandwidth/_p3kernel.c) is not built: "
            "install the package with `pip install -e .` or `make install` (needs a C compiler)")
    return _p3kernel


def dual_bound(data: P3Data, lam: np.ndarray, nu: float, start: np.ndarray | None = None,
               lam_floor: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The dual function ``g(lambda, nu)`` (module docstring), a valid P3 lower bound.

    Parameters
    ----------
    data : P3Data
        With at least one loaded device.
    lam : array [I, U']
        Multipliers of ``t[i, k] <= s_i``; made valid by the kernel (NaN and negatives
        to 0, +inf to the largest double) and normalized per layer.
    nu : float
        Price of the budget ``sum b = 1`` (normalized units); clipped at 0.
    start : array [U'], optional
        Where the 1-D searches start (e.g. the primal point).
    lam_floor : array [I], optional
        Multipliers of the floor ``F_i <= s_i``, normalized with ``lam`` (ignored
        without a floor). Default: from stationarity in ``s_i``,
        ``max(1 - sum_k lam[i, k], 0)``, for solvers that do not report them.

    Returns
    -------
    bound : float
        Normalized lower bound (multiply by ``data.time_scale_s`` for seconds).
    minimizers : array [U']
        The inner minimizers ``b_k(lambda, nu)`` (``inf`` where ``nu = 0``).

    Raises
    ------
    FloatingPointError
        When an inner minimizer cannot be bracketed or the value is not finite.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if data.has_floor:
        extra = np.maximum(1.0 - lam.sum(axis=1), 0.0) if lam_floor is None else lam_floor
        lam = np.concatenate([lam.ravel(), np.asarray(extra, dtype=np.float64)])
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    nu = max(float(nu), 0.0) if np.isfinite(nu) else 0.0
    x = data.uniform_point() if start is None else start
    minimizers = np.empty(data.n_loaded)
    bound = compiled_kernel().dual_bound(*data.kernel_arrays, lam, nu,
                                         np.ascontiguousarray(x, dtype=np.float64), minimizers,
                                         data.kernel_floor)
    return bound, minimizers
