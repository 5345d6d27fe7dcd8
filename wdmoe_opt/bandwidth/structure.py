"""P3 (eqs. 19-21) in normalized form, shared by the ``p3/*`` solvers.

For a fixed selection, device ``k``'s time in layer ``i`` (eq. 10) is
``t[i, k](B_k) = u[i, k] c[i, k](B_k) + p[i, k] a_k``, with the per-token link
time of eq. (6) ``c = L / R_down + L / R_up`` and ``R(B) = B log2(1 + S / (N0 B))``
(eqs. 2-3). Each ``t[i, k]`` is a convex, decreasing function of the one
variable ``B_k``; P3 minimizes ``sum_i max_k t[i, k]`` on the bandwidth simplex.

Hz (~1e7) and seconds (~1e-3..10) span many orders of magnitude, so the solvers
work in normalized units: bandwidth ``b = B / B_total`` (the simplex
``sum b = 1``) and time ``t / T0`` with ``T0`` the mean layer latency of the
uniform split. With ``h(b) = b ln(1 + g / b)`` and ``g = S / (N0 B_total)``,
``R = B_total h(b) / ln 2`` and the normalized time is

    ``t~[i, k](b) = kappa[i, k] (1 / h_down(b) + 1 / h_up(b)) + pi[i, k]``,
    ``kappa = u L ln 2 / (B_total T0)``, ``pi = p a / T0``.

Only *loaded linked* devices (some ``u[i, k] > 0``) are variables; idle devices get
0 Hz. Pairs with no load keep ``t~ = 0``, a redundant constraint ``s_i >= 0`` in the
epigraph form, so every array is a dense ``[I, U']``.

A ``local`` device (SPEC §6: no wireless link, e.g. the base station's own compute)
takes no bandwidth: its time ``p[i, k] a_k`` does not depend on ``b``, so it is no
variable and gets 0 Hz (the whole band goes to the linked devices). The loaded local
devices enter as a per-layer constant, the *floor*
``F~_i = max_{k local} p[i, k] a_k / T0``, and P3 becomes

    ``min_b sum_i max(F~_i, max_k t~[i, k](b))``,

still convex (a maximum of convex functions), in epigraph form with the extra
constraints ``s_i >= F~_i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..model import latency as lat
from ..problems import BandwidthProblem

#: Below this ``x = g / b`` the derivative of ``h`` uses a series (no cancellation).
_SERIES_X = 1e-3


def inverse_rate_derivatives(b: np.ndarray, g: np.ndarray):
    """``1 / h(b)`` and its first two derivatives, with ``h(b) = b ln(1 + g / b)``.

    ``h' = ln(1 + x) - x / (1 + x)`` and ``h'' = -g^2 / (b (b + g)^2)`` with
    ``x = g / b``; ``(1/h)' = -h' / h^2``, ``(1/h)'' = (2 h'^2 - h h'') / h^3``.
    Returns ``(f, f', f'')`` broadcast over ``b`` and ``g``.
    """
    f, minus_f1, f2 = inverse_rate_stack(b, g)
    return f, -minus_f1, f2


def inverse_rate_stack(b: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``[f, -f', f'']`` of :func:`inverse_rate_derivatives`, stacked on a new first axis.

    One pass with few array operations (the solvers call it on small arrays, where
    the per-call overhead dominates): with ``y = x / (1 + x)``, ``-h h'' = ln(1 + x) y^2``,
    so ``f'' = f (2 (h' f)^2 + f y^2 / b)`` and ``-f' = (h' f) f``.
    """
    x = g / b
    lg = np.log1p(x)
    out = np.empty((3,) + x.shape)
    inv = np.divide(1.0, b * lg, out=out[0])
    y = x / (1.0 + x)
    h1 = lg - y
    if x.min() < _SERIES_X:  # low SNR: the difference above cancels
        series = x * x * (0.5 - x * (2 / 3 - x * (0.75 - x * (0.8 - x * 5 / 6))))
        h1 = np.where(x < _SERIES_X, series, h1)
    q = h1 * inv
    np.multiply(q, inv, out=out[1])
    y *= y
    y /= b
    y *= inv
    q *= q
    q *= 2.0
    q += y
    np.multiply(q, inv, out=out[2])
    return out


@dataclass(frozen=True, eq=False)
class P3Data:
    """The normalized P3 data of one (instance, selection).

    Attributes
    ----------
    loaded : int array [U']
        Linked device ids with some load; every other device gets 0 Hz.
    kappa, pi : arrays [I, U']
        Normalized communication and compute coefficients (module docstring).
    g_down, g_up : arrays [R, U']
        Normalized SNR bandwidths ``S / (N0 B_total)``; ``R = I`` under fast
        fading, else 1 (broadcast over layers).
    floor : array [I]
        ``F~_i``, the normalized compute time of the loaded local devices (0 without).
    time_scale_s, total_bandwidth_hz : float
        ``T0`` and ``B_total``.
    n_devices : int
        ``U``, all devices.
    """

    loaded: np.ndarray
    kappa: np.ndarray
    pi: np.ndarray
    g_down: np.ndarray
    g_up: np.ndarray
    floor: np.ndarray
    time_scale_s: float
    total_bandwidth_hz: float
    n_devices: int

    @classmethod
    def from_problem(cls, problem: BandwidthProblem) -> P3Data:
        """Loads from :func:`~wdmoe_opt.model.latency.device_loads`, gains per layer."""
        inst = problem.instance
        s = inst.system
        u, p = lat.device_loads(inst, problem.selection)   # p > 0 exactly where u > 0
        local = s.local_mask
        loaded = np.flatnonzero(u.any(axis=0) & ~local)
        total = s.total_bandwidth_hz
        # [2, R, U']: S / (N0 B_total), downlink then uplink
        g = inst.received_power_w[:, :, loaded] / (s.noise_psd_w_per_hz * total)
        a = lat.compute_time_per_token_s(inst)
        data = cls(
            loaded=loaded,
            kappa=u[:, loaded] * (inst.model.token_bits * lat.LN2 / total),
            pi=p[:, loaded] * a[loaded],
            g_down=g[0], g_up=g[1],
            # a local device (SPEC §6) has no link: its compute time is a constant floor
            floor=(p[:, local] * a[local]).max(axis=1, initial=0.0),
            time_scale_s=1.0, total_bandwidth_hz=total, n_devices=inst.n_devices)
        if not loaded.size:
            return data
        # T0: the mean layer latency (seconds) of the uniform split B / U (idle devices
        # take no time), from the unscaled coefficients at b = 1 / U.
        t_uniform = data.kappa * data.curve_value(np.full(loaded.size, 1.0 / inst.n_devices))
        t_uniform += data.pi
        scale = float(np.maximum(t_uniform.max(axis=1), data.floor).mean()) or 1.0
        np.divide(data.kappa, scale, out=data.kappa)
        np.divide(data.pi, scale, out=data.pi)
        np.divide(data.floor, scale, out=data.floor)
        object.__setattr__(data, "time_scale_s", scale)
        return data

    @property
    def n_layers(self) -> int:
        return int(self.kappa.shape[0])

    @property
    def n_loaded(self) -> int:
        return int(self.loaded.size)

    @cached_property
    def active(self) -> np.ndarray:
        """``[I, U']``: pairs with load (``kappa > 0``)."""
        return self.kappa > 0

    @property
    def has_floor(self) -> bool:
        """Whether a loaded local device sets a positive floor in some layer."""
        return bool(self.floor.any())

    @property
    def n_multipliers(self) -> int:
        """Multipliers of the epigraph constraints: ``I U'`` pairs, plus ``I`` floors."""
        return self.n_layers * (self.n_loaded + self.has_floor)

    @cached_property
    def kernel_arrays(self) -> tuple[np.ndarray, ...]:
        """``(kappa, pi, g_down, g_up)`` as C-contiguous float64, for ``_p3kernel``."""
        return tuple(np.ascontiguousarray(a, dtype=np.float64)
                     for a in (self.kappa, self.pi, self.g_down, self.g_up))

    @cached_property
    def kernel_floor(self) -> np.ndarray | None:
        """The floor for ``_p3kernel`` (``None`` without a loaded local device, so that
        those instances solve exactly as before)."""
        return np.ascontiguousarray(self.floor, dtype=np.float64) if self.has_floor else None

    @cached_property
    def _gains(self) -> np.ndarray:
        """``[2R, U']``: ``g_down`` then ``g_up``, evaluated in one pass."""
        return np.concatenate([self.g_down, self.g_up])

    def curve_stack(self, b: np.ndarray) -> np.ndarray:
        """``[f, -f', f'']`` of ``f = 1/h_down + 1/h_up`` at ``b`` (``[..., U']``):
        ``[3, ..., R, U']``."""
        r = self.g_down.shape[0]
        both = inverse_rate_stack(b[..., None, :], self._gains)
        return both[..., :r, :] + both[..., r:, :]

    def curve_value(self, b: np.ndarray) -> np.ndarray:
        """``f = 1/h_down + 1/h_up`` alone at ``b > 0`` (``[U']``): ``[R, U']``."""
        r = self.g_down.shape[0]
        inv = 1.0 / (b * np.log1p(self._gains / b))
        return inv[:r] + inv[r:]

    def curve(self, b: np.ndarray):
        """``f = 1/h_down + 1/h_up`` and derivatives at ``b`` (``[..., U']``), each
        ``[..., R, U']``."""
        f, minus_f1, f2 = self.curve_stack(b)
        return f, -minus_f1, f2

    def times(self, b: np.ndarray) -> np.ndarray:
        """Normalized device times ``t~[..., I, U']`` at ``b`` (``[..., U']``, ``b > 0``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            f = 1.0 / _h(b[..., None, :], self.g_down) + 1.0 / _h(b[..., None, :], self.g_up)
        return np.where(self.active, self.kappa * f, 0.0) + self.pi

    def time_derivatives(self, b: np.ndarray):
        """``(t~, t~', t~'')``, each ``[I, U']``, at ``b`` (``[U']``, ``b > 0``)."""
        f, f1, f2 = self.curve(b)
        return self.kappa * f + self.pi, self.kappa * f1, self.kappa * f2

    def layer_times(self, b: np.ndarray) -> np.ndarray:
        """Normalized layer latencies ``max(F~_i, max_k t~[i, k])`` (eq. 11), ``[..., I]``."""
        return np.maximum(self.times(b).max(axis=-1, initial=0.0), self.floor)

    def objective(self, b: np.ndarray) -> np.ndarray:
        """Normalized P3 objective ``sum_i max(F~_i, max_k t~[i, k])`` (eq. 19)."""
        return self.layer_times(b).sum(axis=-1)

    def uniform_point(self) -> np.ndarray:
        """``b`` split evenly over the loaded devices (a feasible start)."""
        return np.full(self.n_loaded, 1.0 / max(self.n_loaded, 1))

    def bandwidth_hz(self, b: np.ndarray) -> np.ndarray:
        """Full ``[U]`` allocation in Hz: ``b`` rescaled onto the simplex, idle and local
        devices 0 (with no loaded linked device, any split is optimal: uniform)."""
        out = np.zeros(self.n_devices)
        if self.n_loaded == 0:
            return np.full(self.n_devices, self.total_bandwidth_hz / self.n_devices)
        b = np.clip(np.asarray(b, dtype=np.float64), 0.0, None)
        out[self.loaded] = b / b.sum() * self.total_bandwidth_hz
        return out


def _h(b, g):
    return b * np.log1p(g / b)
